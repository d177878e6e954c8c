//! `HealthReporter`: the serving status of each service, as the application sets it.
//!
//! One `tokio::sync::watch` channel per service name, so every `Watch` call sees each change
//! without polling. A `Watch` for a name nobody reported yet makes an entry holding "unknown"
//! (gRPC's `SERVICE_UNKNOWN`) so that a later report reaches it; entries are bounded by
//! [`MAX_SERVICES`] so clients cannot grow the map without end. An entry that holds no status
//! and that nobody watches any more (its watchers left, or it was cleared) is dropped when room
//! is needed: names clients watched and left must not fill the map for good, or a service the
//! application reports later (or a name another client watches) would be refused.

use crate::ServingStatus;
use sockrpc::Status;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// How many service names (reported or watched) a reporter tracks at most.
pub const MAX_SERVICES: usize = 1024;

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

    /// Sets `service`'s status; watchers hear of it only when it changed. A new name is ignored
    /// while [`MAX_SERVICES`] names are reported or watched, since a server has a handful of
    /// services.
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
        if !make_room(&mut services) {
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
    /// `ResourceExhausted` when [`MAX_SERVICES`] names are tracked already.
    pub(crate) fn subscribe(
        &self,
        service: &str,
    ) -> Result<watch::Receiver<Option<ServingStatus>>, Status> {
        let mut services = self.lock();
        if let Some(sender) = services.get(service) {
            return Ok(sender.subscribe());
        }
        if !make_room(&mut services) {
            return Err(Status::resource_exhausted(format!(
                "the health service tracks at most {MAX_SERVICES} service names"
            )));
        }
        let sender = watch::Sender::new(None);
        let receiver = sender.subscribe();
        services.insert(service.to_owned(), sender);
        Ok(receiver)
    }
}

/// Whether `services` has room for one more name, once entries that hold no status and have no
/// watcher left are dropped (only when it is full: most reports find their name).
fn make_room(services: &mut HashMap<String, watch::Sender<Option<ServingStatus>>>) -> bool {
    if services.len() >= MAX_SERVICES {
        services.retain(|_, sender| sender.borrow().is_some() || sender.receiver_count() > 0);
    }
    services.len() < MAX_SERVICES
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
    fn watched_names_are_bounded() {
        let reporter = HealthReporter::new();
        // Watched still: these names hold their entries.
        let _watching: Vec<_> = (1..MAX_SERVICES)
            .map(|i| reporter.subscribe(&format!("s{i}")).expect("room"))
            .collect();
        let err = reporter.subscribe("one.too.many").expect_err("full");
        assert_eq!(err.code(), sockrpc::Code::ResourceExhausted);
        reporter.set_serving("also.too.many");
        assert_eq!(reporter.status("also.too.many"), None);
        assert_eq!(reporter.status(""), Some(ServingStatus::Serving));
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
