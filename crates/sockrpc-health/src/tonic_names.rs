//! tonic-health's names for what the reporter and the service already do, so a tonic server's
//! health code carries over: `reporter.set_service_status(name, status).await`,
//! `reporter.clear_service_status(name).await` and `HealthService::from_health_reporter(..)`.
//! The setters do not wait for anything (the statuses live behind a plain mutex here, tonic's
//! behind an async lock); they are `async` so that tonic's `.await` after them compiles as
//! written. tonic's `set_serving::<S>()` / `set_not_serving::<S>()` take the service's type;
//! sockrpc's take its name (`<S as NamedService>::NAME`).

use crate::{HealthReporter, HealthService, ServingStatus};

impl HealthReporter {
    /// tonic's name for [`set_status`](HealthReporter::set_status).
    pub async fn set_service_status<S: AsRef<str>>(&self, service_name: S, status: ServingStatus) {
        self.set_status(service_name.as_ref(), status);
    }

    /// tonic's name for [`clear`](HealthReporter::clear): `Check` answers `NOT_FOUND` again.
    /// Its watchers read `SERVICE_UNKNOWN` and stay (gRPC's health spec, grpc-go), where
    /// tonic's watch stream ends.
    pub async fn clear_service_status(&mut self, service_name: &str) {
        self.clear(service_name);
    }
}

impl HealthService {
    /// tonic's name for [`HealthService::new`]: a service answering from `health_reporter`.
    pub fn from_health_reporter(health_reporter: HealthReporter) -> HealthService {
        HealthService::new(health_reporter)
    }
}
