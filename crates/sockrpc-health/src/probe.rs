//! `GrpcHealthProbe`: client-side health checking for balanced channels over
//! `grpc.health.v1.Health/Watch`.

use crate::pb::health_client::HealthClient;
use crate::pb::HealthCheckRequest;
use crate::ServingStatus;
use futures_util::stream::{self, StreamExt};
use sockrpc::service::balance::HealthProbe;
use sockrpc::{BoxStream, Channel, Request};

/// Watches one service's status on each endpoint with the standard `Watch` call: `SERVING`
/// keeps the endpoint in rotation, anything else takes it out, and so does the call's end
/// (cleanly, or with an error) until a new `Watch` answers `SERVING`, as in grpc-go. A server
/// without the health service (`Unimplemented`) counts as serving.
#[derive(Debug, Clone, Default)]
pub struct GrpcHealthProbe {
    service: String,
}

impl GrpcHealthProbe {
    /// Watches `service` (`""`: the server's overall health).
    pub fn new(service: impl Into<String>) -> GrpcHealthProbe {
        GrpcHealthProbe {
            service: service.into(),
        }
    }
}

impl HealthProbe for GrpcHealthProbe {
    fn watch(&self, channel: Channel) -> BoxStream<bool> {
        let service = self.service.clone();
        let opened = async move {
            let mut client = HealthClient::new(channel);
            client
                .watch(Request::new(HealthCheckRequest { service }))
                .await
                .map(|response| response.into_inner())
        };
        stream::once(opened)
            .flat_map(|opened| match opened {
                Ok(updates) => updates
                    .map(|update| update.map(|m| m.status() == ServingStatus::Serving))
                    .boxed(),
                Err(status) => stream::once(async move { Err(status) }).boxed(),
            })
            .boxed()
    }
}
