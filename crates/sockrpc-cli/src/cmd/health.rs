//! `sockrpc health ADDR [SERVICE]`: asks the server's `grpc.health.v1.Health/Check` and prints
//! the serving status. Exit code: 0 for SERVING, 14 (UNAVAILABLE) for any other status (the
//! service cannot take calls), otherwise the call's own status code (5 NOT_FOUND for a service
//! the server does not know, 12 UNIMPLEMENTED when it has no health service).
//!
//! Also the small health service `sockrpc serve` mounts ([`Health`]): every service it serves
//! is SERVING until it stops.

use super::dynamic::conn::ConnArgs;
use super::dynamic::exit::{finish, Failure};
use clap::Args;
use pb::health_check_response::ServingStatus;
use pb::health_client::HealthClient;
use pb::{HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse};
use sockrpc::{BoxStream, Request, Response, Status};
use std::collections::BTreeMap;

/// `grpc.health.v1`, generated from a copy of gRPC's health.proto (`proto/grpc/health/v1/`).
pub(crate) mod pb {
    #![allow(missing_docs, unreachable_pub, dead_code, clippy::all, rustdoc::all)]
    sockrpc::include_proto!("grpc.health.v1");
}

/// `sockrpc health` flags.
#[derive(Debug, Args)]
pub(crate) struct HealthArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// The service to ask about [default: the server as a whole, ""].
    #[arg(value_name = "SERVICE", default_value = "")]
    service: String,
}

/// Runs `sockrpc health`.
pub(crate) fn run(args: HealthArgs) -> std::process::ExitCode {
    finish(check(args))
}

async fn check(args: HealthArgs) -> Result<(), Failure> {
    let metadata = args.conn.metadata()?;
    let channel = args.conn.connect().await?;
    let request = Request::from_parts(
        metadata,
        HealthCheckRequest {
            service: args.service.clone(),
        },
        args.conn.timeout,
    );
    let answer = HealthClient::new(channel)
        .check(request)
        .await?
        .into_inner();
    let status = ServingStatus::try_from(answer.status).unwrap_or(ServingStatus::Unknown);
    println!("{}", status.as_str_name());
    if status == ServingStatus::Serving {
        Ok(())
    } else {
        Err(Failure::Status(Status::unavailable(format!(
            "{:?} is {}",
            args.service,
            status.as_str_name()
        ))))
    }
}

/// Mounts reflection (for the bench service and health) and a health service that says the
/// bench service is SERVING: what lets `sockrpc list tcp://IP:PORT` and `sockrpc health` work
/// against `sockrpc serve`.
pub(crate) fn with_reflection_and_health<L>(
    builder: sockrpc::server::ServerBuilder<L>,
) -> sockrpc::server::ServerBuilder<L> {
    use sockrpc_reflection::ReflectionExt;
    let bench = <crate::proto::bench::bench_server::BenchServer<crate::proto::EchoService> as sockrpc::NamedService>::NAME;
    builder
        .add_reflection(&[
            crate::proto::bench::FILE_DESCRIPTOR_SET,
            pb::FILE_DESCRIPTOR_SET,
        ])
        .add_service(pb::health_server::HealthServer::new(Health::serving(&[
            bench,
            sockrpc_reflection::SERVICE_NAME,
        ])))
}

/// A health service whose services are all SERVING: the server's own ("") and those named.
#[derive(Debug, Clone)]
pub(crate) struct Health {
    services: BTreeMap<String, ServingStatus>,
}

impl Health {
    /// SERVING for the server as a whole and for each of `services`.
    pub(crate) fn serving(services: &[&str]) -> Health {
        let mut all = BTreeMap::new();
        all.insert(String::new(), ServingStatus::Serving);
        for service in services {
            all.insert((*service).to_owned(), ServingStatus::Serving);
        }
        Health { services: all }
    }

    fn status(&self, service: &str) -> Result<HealthCheckResponse, Status> {
        match self.services.get(service) {
            Some(status) => Ok(HealthCheckResponse {
                status: *status as i32,
            }),
            None => Err(Status::not_found(format!("unknown service {service:?}"))),
        }
    }
}

impl pb::health_server::Health for Health {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.status(&request.into_inner().service)
            .map(Response::new)
    }

    async fn list(
        &self,
        _request: Request<HealthListRequest>,
    ) -> Result<Response<HealthListResponse>, Status> {
        let statuses = self
            .services
            .iter()
            .map(|(name, status)| {
                (
                    name.clone(),
                    HealthCheckResponse {
                        status: *status as i32,
                    },
                )
            })
            .collect();
        Ok(Response::new(HealthListResponse { statuses }))
    }

    type WatchStream = BoxStream<HealthCheckResponse>;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        // Statuses never change while serving: the current one, then the stream stays open
        // until the client leaves (as gRPC's Watch does between changes).
        let service = request.into_inner().service;
        let first = match self.services.get(&service) {
            Some(status) => HealthCheckResponse {
                status: *status as i32,
            },
            None => HealthCheckResponse {
                status: ServingStatus::ServiceUnknown as i32,
            },
        };
        let stream = futures_util::stream::once(async move { Ok(first) })
            .chain(futures_util::stream::pending());
        Ok(Response::new(Box::pin(stream)))
    }
}

use futures_util::StreamExt as _;
