//! The tables a run has finished, kept where Ctrl-C can find them. A run given `--json F` and
//! interrupted wrote nothing: minutes of finished rows were lost with the one being measured.
//! Now, on SIGINT or SIGTERM, the tables finished so far (each payload × concurrency whose
//! rows have all run) go to F with `"partial": true`, before the process exits with the
//! signal's status. The row being measured is left out: its figures are not a row's yet.

use crate::report::{self, Group, Machine, Setup};
use std::error::Error;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The groups finished so far; `None` once the run has taken them to write its own report.
type Shared = Arc<Mutex<Option<Vec<Group>>>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Option<Vec<Group>>> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The groups a run has finished, written as a partial report if it is interrupted.
pub(super) struct Finished {
    shared: Shared,
}

impl Finished {
    /// Keeps the groups to come; with a `json` path, writes them there (with `setup`) on
    /// SIGINT or SIGTERM.
    pub(super) fn new(json: Option<&PathBuf>, setup: Setup) -> Result<Finished, Box<dyn Error>> {
        let shared: Shared = Arc::new(Mutex::new(Some(Vec::new())));
        if let Some(path) = json {
            let (path, kept) = (path.clone(), Arc::clone(&shared));
            crate::interrupt::on_interrupt(Box::new(move || {
                // Taken by the run: it is writing the whole report.
                let Some(groups) = lock(&kept).take() else {
                    return;
                };
                let rows: usize = groups.iter().map(|group| group.rows.len()).sum();
                match report::write_partial_json(&path, &Machine::this(), &setup, &groups) {
                    Ok(()) => crate::out::errln!(
                        "sockrpc bench: wrote {} (partial: the {rows} rows finished before the \
                         signal)",
                        path.display()
                    ),
                    Err(err) => {
                        crate::out::errln!("sockrpc bench: cannot write {}: {err}", path.display())
                    }
                }
            }))?;
        }
        Ok(Finished { shared })
    }

    /// Adds a group whose rows have all run.
    pub(super) fn push(&self, group: Group) {
        if let Some(groups) = lock(&self.shared).as_mut() {
            groups.push(group);
        }
    }

    /// Every group, for the run's own report: an interrupt from now on writes none.
    pub(super) fn take(self) -> Vec<Group> {
        lock(&self.shared).take().unwrap_or_default()
    }
}
