//! `HealthReporter`: the serving status of each service, as the application sets it.
//!
//! One `tokio::sync::watch` channel per service name, so every `Watch` call sees each change
//! without polling. A `Watch` for a name nobody reported yet makes an entry holding "unknown"
//! (gRPC's `SERVICE_UNKNOWN`) so that a later report reaches it; entries are bounded by
//! [`MAX_SERVICES`] so clients cannot grow the map without end.

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

    /// Sets `service`'s status; watchers hear of it only when it changed. A new name past
    /// [`MAX_SERVICES`] is ignored (and logged), since a server has a handful of services.
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
        if services.len() >= MAX_SERVICES {
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
        if services.len() >= MAX_SERVICES {
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
        for i in 1..MAX_SERVICES {
            reporter.subscribe(&format!("s{i}")).expect("room");
        }
        let err = reporter.subscribe("one.too.many").expect_err("full");
        assert_eq!(err.code(), sockrpc::Code::ResourceExhausted);
        reporter.set_serving("also.too.many");
        assert_eq!(reporter.status("also.too.many"), None);
        assert_eq!(reporter.status(""), Some(ServingStatus::Serving));
    }
}
