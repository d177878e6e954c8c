//! `HealthService`: `grpc.health.v1.Health` answered from a [`HealthReporter`]. Public at
//! tonic-health's path, `server::health_reporter()`, so a tonic server's setup carries over.

use crate::pb::health_server::{Health, HealthServer};
use crate::pb::{HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse};
pub use crate::HealthReporter;
use crate::ServingStatus;
use futures_util::stream::{self, BoxStream, StreamExt};
use sockrpc::{Request, Response, Status};

/// The health server and the reporter that drives it: mount the server with
/// `Server::builder().add_service(..)`, keep the reporter to set statuses.
pub fn health_service() -> (HealthReporter, HealthServer<HealthService>) {
    let reporter = HealthReporter::new();
    let server = HealthServer::new(HealthService::new(reporter.clone()));
    (reporter, server)
}

/// tonic-health's name for [`health_service`]: the reporter and the server it drives.
pub fn health_reporter() -> (HealthReporter, HealthServer<HealthService>) {
    health_service()
}

/// Answers `Check`, `List` and `Watch` from a [`HealthReporter`].
#[derive(Clone, Debug)]
pub struct HealthService {
    reporter: HealthReporter,
}

impl HealthService {
    /// A service answering from `reporter`.
    pub fn new(reporter: HealthReporter) -> HealthService {
        HealthService { reporter }
    }
}

/// The most of a client's service name an error quotes, in bytes: the name may be as long as
/// the message limit, and escaped (`Debug`) it grows up to six times.
const QUOTED_NAME: usize = 256;

/// `name`, cut to at most [`QUOTED_NAME`] bytes at a character boundary.
fn quoted(name: &str) -> &str {
    let mut end = name.len().min(QUOTED_NAME);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

fn response(status: Option<ServingStatus>) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status.unwrap_or(ServingStatus::ServiceUnknown) as i32,
    }
}

impl Health for HealthService {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let service = &request.get_ref().service;
        match self.reporter.status(service) {
            Some(status) => Ok(Response::new(response(Some(status)))),
            None => Err(Status::not_found(format!(
                "unknown service {:?}{}",
                quoted(service),
                if service.len() > QUOTED_NAME {
                    format!(" (… {} bytes)", service.len())
                } else {
                    String::new()
                }
            ))),
        }
    }

    async fn list(
        &self,
        _request: Request<HealthListRequest>,
    ) -> Result<Response<HealthListResponse>, Status> {
        let statuses = self
            .reporter
            .statuses()
            .into_iter()
            .map(|(name, status)| (name, response(Some(status))))
            .collect();
        Ok(Response::new(HealthListResponse { statuses }))
    }

    type WatchStream = BoxStream<'static, Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let watched = self.reporter.subscribe(&request.get_ref().service)?;
        // The current status at once, then one message per change, until the caller leaves
        // (dropping `watched`, which removes a name nobody reported once nobody watches it).
        let updates = stream::unfold((watched, true), |(mut watched, first)| async move {
            if !first && watched.receiver.changed().await.is_err() {
                return None;
            }
            let status = *watched.receiver.borrow_and_update();
            Some((Ok(response(status)), (watched, false)))
        });
        Ok(Response::new(updates.boxed()))
    }
}
