//! `HealthReporter`: the serving status of each service, as the application sets it.
//!
//! One `tokio::sync::watch` channel per service name, so every `Watch` call sees each change
//! without polling. A `Watch` for a name nobody reported yet makes an entry holding "unknown"
//! (gRPC's `SERVICE_UNKNOWN`) so that a later report reaches it. Those entries are what clients
//! can make, so they are what is bounded: at most [`MAX_SERVICES`] of them, each named in at
//! most [`MAX_WATCHED_NAME`] bytes (the name is the entry's key, held while the call lasts: a
//! 4 MiB name per `Watch` would let one connection hold gigabytes). An entry that holds no status
//! and that nobody watches any more (its watchers left, or it was cleared) is dropped when room
//! is needed, so names clients watched and left do not fill the map for good. What the
//! application reports is always kept: a client watching [`MAX_SERVICES`] made-up names must
//! not make the server's own report of a service vanish (`Check` would say `NOT_FOUND`, and a
//! balancer take the server out of rotation).

use crate::ServingStatus;
use sockrpc::Status;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// How many service names nobody reported (made by `Watch` calls) a reporter tracks at most.
pub const MAX_SERVICES: usize = 1024;

/// The longest name a `Watch` call may add (one nobody reported yet), in bytes: a
/// fully qualified service name is far shorter. Longer ones fail `INVALID_ARGUMENT`.
pub const MAX_WATCHED_NAME: usize = 1024;

/// Sets and reads the serving status of each service; cloning shares the state. The server's
/// overall health is the service named `""`, `SERVING` from the start.
#[derive(Clone, Debug)]
pub struct HealthReporter {
    services: Arc<Mutex<HashMap<String, watch::Sender<Option<ServingStatus>>>>>,
}

impl Default for HealthReporter {
    fn default() -> Self {
        HealthReporter::new()
    }
}

impl HealthReporter {
    /// A reporter where only the overall health (`""`) is known, and `SERVING`.
    pub fn new() -> HealthReporter {
        let reporter = HealthReporter {
            services: Arc::default(),
        };
        reporter.set_serving("");
        reporter
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<Option<ServingStatus>>>> {
        self.services.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets `service` to `SERVING`.
    pub fn set_serving(&self, service: &str) {
        self.set_status(service, ServingStatus::Serving);
    }

    /// Sets `service` to `NOT_SERVING`.
    pub fn set_not_serving(&self, service: &str) {
        self.set_status(service, ServingStatus::NotServing);
    }

    /// Sets `service`'s status; watchers hear of it only when it changed. Always kept, however
    /// many names clients watch (a server reports a handful of services).
    pub fn set_status(&self, service: &str, status: ServingStatus) {
        let mut services = self.lock();
        if let Some(sender) = services.get(service) {
            sender.send_if_modified(|current| {
                let changed = *current != Some(status);
                *current = Some(status);
                changed
            });
            return;
        }
        services.insert(service.to_owned(), watch::Sender::new(Some(status)));
    }

    /// Forgets `service`: `Check` answers `NOT_FOUND` again and watchers see `SERVICE_UNKNOWN`.
    pub fn clear(&self, service: &str) {
        if let Some(sender) = self.lock().get(service) {
            sender.send_if_modified(|current| current.take().is_some());
        }
    }

    /// Sets every reported service (the overall `""` included) to `NOT_SERVING`: what a server
    /// does first when it begins to shut down, so balancers stop sending before it closes.
    pub fn set_all_not_serving(&self) {
        for sender in self.lock().values() {
            sender.send_if_modified(|current| match current {
                Some(status) if *status != ServingStatus::NotServing => {
                    *status = ServingStatus::NotServing;
                    true
                }
                _ => false,
            });
        }
    }

    /// `service`'s status, if it was reported.
    pub fn status(&self, service: &str) -> Option<ServingStatus> {
        *self.lock().get(service)?.borrow()
    }

    /// Every reported service and its status.
    pub fn statuses(&self) -> BTreeMap<String, ServingStatus> {
        self.lock()
            .iter()
            .filter_map(|(name, sender)| Some((name.clone(), (*sender.borrow())?)))
            .collect()
    }

    /// A receiver of `service`'s status (`None` while unknown), which sees every later change.
    /// For a name not tracked yet: `InvalidArgument` past [`MAX_WATCHED_NAME`] bytes,
    /// `ResourceExhausted` when [`MAX_SERVICES`] names nobody reported are tracked already.
    pub(crate) fn subscribe(
        &self,
        service: &str,
    ) -> Result<watch::Receiver<Option<ServingStatus>>, Status> {
        let mut services = self.lock();
        if let Some(sender) = services.get(service) {
            return Ok(sender.subscribe());
        }
        if service.len() > MAX_WATCHED_NAME {
            return Err(Status::invalid_argument(format!(
                "a service name of {} bytes: the health service watches unreported names of at \
                 most {MAX_WATCHED_NAME} bytes",
                service.len()
            )));
        }
        if !make_room(&mut services) {
            return Err(Status::resource_exhausted(format!(
                "the health service tracks at most {MAX_SERVICES} service names nobody reported"
            )));
        }
        let sender = watch::Sender::new(None);
        let receiver = sender.subscribe();
        services.insert(service.to_owned(), sender);
        Ok(receiver)
    }
}

/// Whether `services` has room for one more name nobody reported, once entries that hold no
/// status and have no watcher left are dropped (only when the map is that full: most calls
/// find their name).
fn make_room(services: &mut HashMap<String, watch::Sender<Option<ServingStatus>>>) -> bool {
    if services.len() < MAX_SERVICES {
        return true;
    }
    services.retain(|_, sender| sender.borrow().is_some() || sender.receiver_count() > 0);
    let unreported = services.values().filter(|s| s.borrow().is_none()).count();
    unreported < MAX_SERVICES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overall_health_starts_serving_and_changes_are_seen() {
        let reporter = HealthReporter::new();
        assert_eq!(reporter.status(""), Some(ServingStatus::Serving));
        assert_eq!(reporter.status("a.B"), None);
        let mut rx = reporter.subscribe("a.B").expect("room");
        assert_eq!(*rx.borrow_and_update(), None);
        reporter.set_not_serving("a.B");
        assert!(rx.has_changed().expect("open"));
        assert_eq!(*rx.borrow_and_update(), Some(ServingStatus::NotServing));
        reporter.set_not_serving("a.B");
        assert!(
            !rx.has_changed().expect("open"),
            "no news for the same status"
        );
        reporter.set_all_not_serving();
        assert_eq!(reporter.status(""), Some(ServingStatus::NotServing));
        reporter.clear("a.B");
        assert_eq!(*rx.borrow_and_update(), None);
        assert_eq!(reporter.statuses().len(), 1);
    }

    #[test]
    fn watched_names_are_bounded_but_reports_are_kept() {
        let reporter = HealthReporter::new();
        // Watched still: these names hold their entries.
        let _watching: Vec<_> = (0..MAX_SERVICES)
            .map(|i| reporter.subscribe(&format!("s{i}")).expect("room"))
            .collect();
        let err = reporter.subscribe("one.too.many").expect_err("full");
        assert_eq!(err.code(), sockrpc::Code::ResourceExhausted);
        // The application's own report is kept all the same, and can be watched.
        reporter.set_serving("reported.later");
        assert_eq!(
            reporter.status("reported.later"),
            Some(ServingStatus::Serving)
        );
        reporter
            .subscribe("reported.later")
            .expect("a reported name");
        assert_eq!(reporter.status(""), Some(ServingStatus::Serving));
    }

    #[test]
    fn long_unreported_names_are_refused() {
        let reporter = HealthReporter::new();
        reporter
            .subscribe(&"n".repeat(MAX_WATCHED_NAME))
            .expect("at the bound");
        let long = "n".repeat(MAX_WATCHED_NAME + 1);
        let err = reporter.subscribe(&long).expect_err("too long");
        assert_eq!(err.code(), sockrpc::Code::InvalidArgument);
        // Reported by the application, any name can be watched.
        reporter.set_serving(&long);
        reporter.subscribe(&long).expect("a reported name");
    }

    #[test]
    fn names_nobody_watches_any_more_make_room() {
        let reporter = HealthReporter::new();
        let mut watching = Vec::new();
        for i in 1..MAX_SERVICES {
            let rx = reporter.subscribe(&format!("s{i}")).expect("room");
            if i % 2 == 0 {
                watching.push(rx);
            }
        }
        reporter.set_serving("reported.later");
        assert_eq!(
            reporter.status("reported.later"),
            Some(ServingStatus::Serving)
        );
        reporter.subscribe("watched.later").expect("room again");
        // Names still watched keep their entries, and see later reports.
        reporter.set_serving("s2");
        assert!(watching[0].has_changed().expect("open"));
    }
}
