//! `HealthReporter`: the serving status of each service, as the application sets it.
//!
//! One `tokio::sync::watch` channel per service name, so every `Watch` call sees each change
//! without polling. A `Watch` for a name nobody reported yet makes an entry holding "unknown"
//! (gRPC's `SERVICE_UNKNOWN`) so that a later report reaches it. Those entries are what clients
//! can make, so they are what is bounded: at most [`MAX_SERVICES`] of them, each named in at
//! most [`MAX_WATCHED_NAME`] bytes (the name is the entry's key, held while the call lasts: a
//! 4 MiB name per `Watch` would let one connection hold gigabytes). An entry that holds no status
//! goes when nobody watches it any more (its last watcher leaves, or it is cleared unwatched),
//! so names clients watched and left do not fill the map, and room is a count, never a scan of
//! the map under its lock (which every refused `Watch` once cost). What the
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

/// One service's status channel: `None` while nobody reported it (or after `clear`).
type Sender = watch::Sender<Option<ServingStatus>>;

/// The names tracked, and how many of them hold no status.
///
/// An entry that holds no status exists only while someone watches it: the last watcher to
/// leave removes it ([`Watched`]'s drop), and [`HealthReporter::clear`] removes an unwatched
/// one at once. So `unreported` is exactly what clients hold, and checking it for room is one
/// comparison. (Room used to be made by scanning the whole map, reports included, twice, under
/// this lock, for every `Watch` of a new name once the map held [`MAX_SERVICES`] names: a
/// client holding that many watches made each further one cost two scans, as did every `Watch`
/// of a new name on a server reporting that many services.)
#[derive(Debug, Default)]
struct Services {
    /// Keyed by a shared name, so a watcher can find its entry again without a copy.
    map: HashMap<Arc<str>, Sender>,
    /// Entries of `map` holding `None`.
    unreported: usize,
    /// Shut down ([`HealthReporter::shutdown`]): every status `NOT_SERVING`, reports ignored
    /// until [`HealthReporter::resume`].
    shut: bool,
}

/// Sets and reads the serving status of each service; cloning shares the state. The server's
/// overall health is the service named `""`, `SERVING` from the start.
#[derive(Clone, Debug)]
pub struct HealthReporter {
    services: Arc<Mutex<Services>>,
}

impl Default for HealthReporter {
    fn default() -> Self {
        HealthReporter::new()
    }
}

/// A receiver of one service's status, from [`HealthReporter::subscribe`]; dropping it leaves,
/// and the last to leave an entry holding no status removes it.
#[derive(Debug)]
pub(crate) struct Watched {
    // Fields drop in order: the receiver goes before `leave` counts what is left.
    /// Sees every change of the service's status.
    pub(crate) receiver: watch::Receiver<Option<ServingStatus>>,
    _leave: Leave,
}

/// Removes its entry, if it holds no status and nobody watches it any more, when dropped.
#[derive(Debug)]
struct Leave {
    reporter: HealthReporter,
    name: Arc<str>,
}

impl Drop for Leave {
    fn drop(&mut self) {
        let mut services = self.reporter.lock();
        let dead = services
            .map
            .get(&*self.name)
            .is_some_and(|sender| sender.borrow().is_none() && sender.receiver_count() == 0);
        if dead {
            services.map.remove(&*self.name);
            services.unreported -= 1;
        }
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Services> {
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
        if services.shut {
            // Ignored, as grpc-go's health server ignores them after `Shutdown`.
            return;
        }
        if let Some(sender) = services.map.get(service) {
            let mut was_unreported = false;
            sender.send_if_modified(|current| {
                was_unreported = current.is_none();
                let changed = *current != Some(status);
                *current = Some(status);
                changed
            });
            if was_unreported {
                services.unreported -= 1;
            }
            return;
        }
        services
            .map
            .insert(Arc::from(service), watch::Sender::new(Some(status)));
    }

    /// Forgets `service`: `Check` answers `NOT_FOUND` again and watchers see `SERVICE_UNKNOWN`.
    pub fn clear(&self, service: &str) {
        let mut services = self.lock();
        let Some(sender) = services.map.get(service) else {
            return;
        };
        if !sender.send_if_modified(|current| current.take().is_some()) {
            return;
        }
        if sender.receiver_count() == 0 {
            services.map.remove(service);
        } else {
            services.unreported += 1;
        }
    }

    /// Sets every reported service (the overall `""` included) to `NOT_SERVING`: what a server
    /// does first when it begins to shut down, so balancers stop sending before it closes. A
    /// later report still counts; [`shutdown`](HealthReporter::shutdown) holds them off.
    pub fn set_all_not_serving(&self) {
        set_all(&self.lock(), ServingStatus::NotServing);
    }

    /// Sets every reported service to `NOT_SERVING` and ignores reports until
    /// [`resume`](HealthReporter::resume), as grpc-go's health server's `Shutdown` does: a
    /// component that reports `SERVING` while the server shuts down cannot bring traffic back.
    pub fn shutdown(&self) {
        let mut services = self.lock();
        services.shut = true;
        set_all(&services, ServingStatus::NotServing);
    }

    /// Takes reports again after [`shutdown`](HealthReporter::shutdown), and sets every
    /// reported service to `SERVING` (grpc-go's `Resume`).
    pub fn resume(&self) {
        let mut services = self.lock();
        services.shut = false;
        set_all(&services, ServingStatus::Serving);
    }

    /// `service`'s status, if it was reported.
    pub fn status(&self, service: &str) -> Option<ServingStatus> {
        *self.lock().map.get(service)?.borrow()
    }

    /// Every reported service and its status.
    pub fn statuses(&self) -> BTreeMap<String, ServingStatus> {
        self.lock()
            .map
            .iter()
            .filter_map(|(name, sender)| Some((name.to_string(), (*sender.borrow())?)))
            .collect()
    }

    /// A receiver of `service`'s status (`None` while unknown), which sees every later change.
    /// For a name not tracked yet: `InvalidArgument` past [`MAX_WATCHED_NAME`] bytes,
    /// `ResourceExhausted` when [`MAX_SERVICES`] names nobody reported are watched already.
    /// One lookup and a comparison, whatever the number of names.
    pub(crate) fn subscribe(&self, service: &str) -> Result<Watched, Status> {
        let mut services = self.lock();
        if let Some((name, sender)) = services.map.get_key_value(service) {
            return Ok(Watched {
                receiver: sender.subscribe(),
                _leave: Leave {
                    reporter: self.clone(),
                    name: Arc::clone(name),
                },
            });
        }
        if service.len() > MAX_WATCHED_NAME {
            return Err(Status::invalid_argument(format!(
                "a service name of {} bytes: the health service watches unreported names of at \
                 most {MAX_WATCHED_NAME} bytes",
                service.len()
            )));
        }
        if services.unreported >= MAX_SERVICES {
            return Err(Status::resource_exhausted(format!(
                "the health service tracks at most {MAX_SERVICES} service names nobody reported"
            )));
        }
        let name: Arc<str> = Arc::from(service);
        let sender = watch::Sender::new(None);
        let receiver = sender.subscribe();
        services.map.insert(Arc::clone(&name), sender);
        services.unreported += 1;
        Ok(Watched {
            receiver,
            _leave: Leave {
                reporter: self.clone(),
                name,
            },
        })
    }

    /// Names tracked: those reported and those clients watch.
    #[cfg(test)]
    fn tracked(&self) -> (usize, usize) {
        let services = self.lock();
        (services.map.len(), services.unreported)
    }
}

/// Sets every reported service to `status` (entries nobody reported stay unknown).
fn set_all(services: &Services, status: ServingStatus) {
    for sender in services.map.values() {
        sender.send_if_modified(|current| match current {
            Some(now) if *now != status => {
                *now = status;
                true
            }
            _ => false,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_holds_every_service_not_serving_until_resumed() {
        let reporter = HealthReporter::new();
        reporter.set_serving("a.B");
        let mut watched = reporter.subscribe("a.B").expect("room");
        let rx = &mut watched.receiver;
        rx.borrow_and_update();
        reporter.shutdown();
        assert_eq!(*rx.borrow_and_update(), Some(ServingStatus::NotServing));
        assert_eq!(reporter.status(""), Some(ServingStatus::NotServing));
        // A component that reports while the server shuts down brings no traffic back.
        reporter.set_serving("a.B");
        reporter.set_serving("c.D");
        assert_eq!(reporter.status("a.B"), Some(ServingStatus::NotServing));
        assert_eq!(reporter.status("c.D"), None);
        assert!(!rx.has_changed().expect("open"));
        reporter.resume();
        assert_eq!(*rx.borrow_and_update(), Some(ServingStatus::Serving));
        assert_eq!(reporter.status(""), Some(ServingStatus::Serving));
        reporter.set_not_serving("a.B");
        assert_eq!(reporter.status("a.B"), Some(ServingStatus::NotServing));
        // set_all_not_serving, unlike shutdown, lets later reports count.
        reporter.set_all_not_serving();
        reporter.set_serving("a.B");
        assert_eq!(reporter.status("a.B"), Some(ServingStatus::Serving));
    }

    #[test]
    fn overall_health_starts_serving_and_changes_are_seen() {
        let reporter = HealthReporter::new();
        assert_eq!(reporter.status(""), Some(ServingStatus::Serving));
        assert_eq!(reporter.status("a.B"), None);
        let mut watched = reporter.subscribe("a.B").expect("room");
        let rx = &mut watched.receiver;
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
                watching.push(rx.receiver);
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

    #[test]
    fn a_name_nobody_reported_goes_with_its_last_watcher() {
        let reporter = HealthReporter::new();
        let first = reporter.subscribe("made.up").expect("room");
        let second = reporter.subscribe("made.up").expect("the same entry");
        assert_eq!(reporter.tracked(), (2, 1));
        drop(first);
        assert_eq!(reporter.tracked(), (2, 1), "still watched");
        drop(second);
        assert_eq!(reporter.tracked(), (1, 0), "gone with its last watcher");
        // Reported meanwhile: kept when its watchers leave, until cleared.
        let watched = reporter.subscribe("app.S").expect("room");
        reporter.set_serving("app.S");
        assert_eq!(reporter.tracked(), (2, 0));
        drop(watched);
        assert_eq!(reporter.status("app.S"), Some(ServingStatus::Serving));
        // Cleared while watched: an unreported name its watcher holds, then gone.
        let watched = reporter.subscribe("app.S").expect("a reported name");
        reporter.clear("app.S");
        assert_eq!(reporter.tracked(), (2, 1));
        assert_eq!(*watched.receiver.borrow(), None);
        drop(watched);
        assert_eq!(reporter.tracked(), (1, 0));
        // Cleared unwatched: gone at once; watched again, it is a new name.
        reporter.set_serving("app.T");
        reporter.clear("app.T");
        assert_eq!(reporter.tracked(), (1, 0));
        let again = reporter.subscribe("app.T").expect("room");
        assert_eq!(*again.receiver.borrow(), None);
        reporter.set_not_serving("app.T");
        assert_eq!(reporter.tracked(), (2, 0));
    }

    #[test]
    fn reports_take_no_room_and_a_leaving_watcher_frees_some() {
        let reporter = HealthReporter::new();
        for i in 0..4 * MAX_SERVICES {
            reporter.set_serving(&format!("app.S{i}"));
        }
        let mut held: Vec<_> = (0..MAX_SERVICES)
            .map(|i| reporter.subscribe(&format!("made.up.{i}")).expect("room"))
            .collect();
        for i in 0..100 {
            let err = reporter
                .subscribe(&format!("one.more.{i}"))
                .expect_err("full");
            assert_eq!(err.code(), sockrpc::Code::ResourceExhausted);
        }
        // Reports are watched whatever the count, and a watcher leaving makes room at once.
        reporter.subscribe("app.S7").expect("a reported name");
        held.pop();
        let _more = reporter.subscribe("one.more").expect("room again");
        assert_eq!(reporter.tracked(), (5 * MAX_SERVICES + 1, MAX_SERVICES));
    }
}
