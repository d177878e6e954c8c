//! The rest of `../shared/protos` that no other test serves: gRPC's health service
//! (`grpc.health.v1`, all three rpcs), server reflection (`grpc.reflection.v1`, a bidi stream of
//! oneofs), OpenTelemetry's metrics and logs collectors (`tests/codegen.rs` serves traces) and
//! gRPC's own `helloworld.Greeter`. Each is implemented against its generated trait and called
//! through its generated client on one loopback server.

use std::collections::HashMap;

use futures_util::stream::{self, BoxStream, StreamExt};
use sockrpc::{Code, Request, Response, Status, Streaming};
use sockrpc_tests::shared::grpc::health::v1 as health;
use sockrpc_tests::shared::grpc::reflection::v1 as reflection;
use sockrpc_tests::shared::helloworld;
use sockrpc_tests::shared::opentelemetry::proto as otel;

use health::health_check_response::ServingStatus;
use health::health_client::HealthClient;
use health::health_server::{Health, HealthServer};
use health::{HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse};
use helloworld::greeter_client::GreeterClient;
use helloworld::greeter_server::{Greeter, GreeterServer};
use otel::collector::logs::v1 as logs;
use otel::collector::metrics::v1 as metrics;
use reflection::server_reflection_client::ServerReflectionClient;
use reflection::server_reflection_request::MessageRequest;
use reflection::server_reflection_response::MessageResponse;
use reflection::server_reflection_server::{ServerReflection, ServerReflectionServer};
use reflection::{ServerReflectionRequest, ServerReflectionResponse};

use crate::support::{bounded, collect, start};

/// A fixed table of services and their status; `Watch` sends the current one twice.
struct Checker {
    statuses: HashMap<String, ServingStatus>,
}

impl Checker {
    fn new() -> Self {
        let statuses = [
            ("", ServingStatus::Serving),
            ("helloworld.Greeter", ServingStatus::Serving),
            ("grpc.testing.Down", ServingStatus::NotServing),
        ];
        Checker {
            statuses: statuses.map(|(k, v)| (k.to_owned(), v)).into(),
        }
    }

    fn status(&self, service: &str) -> Result<HealthCheckResponse, Status> {
        let status = self
            .statuses
            .get(service)
            .ok_or_else(|| Status::not_found(format!("unknown service {service}")))?;
        Ok(HealthCheckResponse {
            status: *status as i32,
        })
    }
}

impl Health for Checker {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.status(&request.into_inner().service)
            .map(Response::new)
    }

    async fn list(
        &self,
        _: Request<HealthListRequest>,
    ) -> Result<Response<HealthListResponse>, Status> {
        let statuses = self
            .statuses
            .iter()
            .map(|(name, status)| {
                let status = *status as i32;
                (name.clone(), HealthCheckResponse { status })
            })
            .collect();
        Ok(Response::new(HealthListResponse { statuses }))
    }

    type WatchStream = BoxStream<'static, Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let status = self.status(&request.into_inner().service)?;
        Ok(Response::new(stream::iter(vec![Ok(status); 2]).boxed()))
    }
}

/// Answers `list_services` with a fixed list and anything else with an error response, each
/// carrying the request it answers.
struct Reflector;

fn reflect(request: ServerReflectionRequest) -> ServerReflectionResponse {
    let response = match &request.message_request {
        Some(MessageRequest::ListServices(_)) => {
            MessageResponse::ListServicesResponse(reflection::ListServiceResponse {
                service: ["grpc.health.v1.Health", "helloworld.Greeter"]
                    .map(|name| reflection::ServiceResponse {
                        name: name.to_owned(),
                    })
                    .into(),
            })
        }
        _ => MessageResponse::ErrorResponse(reflection::ErrorResponse {
            error_code: Code::NotFound as i32,
            error_message: "only list_services here".to_owned(),
        }),
    };
    ServerReflectionResponse {
        valid_host: request.host.clone(),
        original_request: Some(request),
        message_response: Some(response),
    }
}

impl ServerReflection for Reflector {
    type ServerReflectionInfoStream = BoxStream<'static, Result<ServerReflectionResponse, Status>>;

    async fn server_reflection_info(
        &self,
        request: Request<Streaming<ServerReflectionRequest>>,
    ) -> Result<Response<Self::ServerReflectionInfoStream>, Status> {
        let answers = request.into_inner().map(|r| r.map(reflect));
        Ok(Response::new(answers.boxed()))
    }
}

/// Counts what it is sent, rejecting metrics without a name and log records without a body.
struct Collector;

impl metrics::metrics_service_server::MetricsService for Collector {
    async fn export(
        &self,
        request: Request<metrics::ExportMetricsServiceRequest>,
    ) -> Result<Response<metrics::ExportMetricsServiceResponse>, Status> {
        let nameless = request
            .into_inner()
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .filter(|m| m.name.is_empty())
            .count();
        let partial_success = (nameless > 0).then(|| metrics::ExportMetricsPartialSuccess {
            rejected_data_points: i64::try_from(nameless).unwrap_or(i64::MAX),
            error_message: "metrics need names".to_owned(),
        });
        Ok(Response::new(metrics::ExportMetricsServiceResponse {
            partial_success,
        }))
    }
}

impl logs::logs_service_server::LogsService for Collector {
    async fn export(
        &self,
        request: Request<logs::ExportLogsServiceRequest>,
    ) -> Result<Response<logs::ExportLogsServiceResponse>, Status> {
        let bodiless = request
            .into_inner()
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .flat_map(|s| &s.log_records)
            .filter(|l| l.body.is_none())
            .count();
        let partial_success = (bodiless > 0).then(|| logs::ExportLogsPartialSuccess {
            rejected_log_records: i64::try_from(bodiless).unwrap_or(i64::MAX),
            error_message: "log records need a body".to_owned(),
        });
        Ok(Response::new(logs::ExportLogsServiceResponse {
            partial_success,
        }))
    }
}

/// gRPC's example greeter.
struct Hello;

impl Greeter for Hello {
    async fn say_hello(
        &self,
        request: Request<helloworld::HelloRequest>,
    ) -> Result<Response<helloworld::HelloReply>, Status> {
        Ok(Response::new(helloworld::HelloReply {
            message: format!("Hello {}!", request.into_inner().name),
        }))
    }
}

fn server() -> crate::support::Running {
    start(
        sockrpc::Server::builder()
            .add_service(HealthServer::new(Checker::new()))
            .add_service(ServerReflectionServer::new(Reflector))
            .add_service(metrics::metrics_service_server::MetricsServiceServer::new(
                Collector,
            ))
            .add_service(logs::logs_service_server::LogsServiceServer::new(Collector))
            .add_service(GreeterServer::new(Hello)),
    )
}

fn check(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.to_owned(),
    }
}

#[tokio::test]
async fn grpc_health_checks_lists_and_watches() {
    let server = server();
    let mut client = HealthClient::new(crate::support::channel(&server).await);

    let overall = bounded("check", client.check(check("")))
        .await
        .expect("check")
        .into_inner();
    assert_eq!(overall.status(), ServingStatus::Serving);
    let down = bounded("check", client.check(check("grpc.testing.Down")))
        .await
        .expect("check")
        .into_inner();
    assert_eq!(down.status(), ServingStatus::NotServing);
    let status = bounded("check", client.check(check("nope")))
        .await
        .expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);

    let list = bounded("list", client.list(HealthListRequest {}))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(list.statuses.len(), 3);
    assert_eq!(
        list.statuses["helloworld.Greeter"].status(),
        ServingStatus::Serving
    );

    let updates = bounded("watch", client.watch(check("helloworld.Greeter")))
        .await
        .expect("watch")
        .into_inner();
    let updates = collect("watch", updates).await;
    assert_eq!(updates.len(), 2);
    assert!(updates.iter().all(|u| u.status() == ServingStatus::Serving));
    let status = bounded("watch", client.watch(check("nope")))
        .await
        .expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn server_reflection_answers_a_stream_of_oneofs() {
    let server = server();
    let mut client = ServerReflectionClient::new(crate::support::channel(&server).await);
    let requests = [
        MessageRequest::ListServices(String::new()),
        MessageRequest::FileByFilename("grpc/health/v1/health.proto".to_owned()),
    ]
    .map(|request| ServerReflectionRequest {
        host: "localhost".to_owned(),
        message_request: Some(request),
    });
    let answers = bounded(
        "reflection",
        client.server_reflection_info(stream::iter(requests.clone())),
    )
    .await
    .expect("reflection")
    .into_inner();
    let answers = collect("reflection", answers).await;
    assert_eq!(answers.len(), 2);
    for (answer, request) in answers.iter().zip(&requests) {
        assert_eq!(answer.valid_host, "localhost");
        assert_eq!(answer.original_request.as_ref(), Some(request));
    }
    match &answers[0].message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(names, ["grpc.health.v1.Health", "helloworld.Greeter"]);
        }
        other => panic!("expected a service list, got {other:?}"),
    }
    match &answers[1].message_response {
        Some(MessageResponse::ErrorResponse(error)) => {
            assert_eq!(error.error_code, Code::NotFound as i32);
        }
        other => panic!("expected an error response, got {other:?}"),
    }
}

#[tokio::test]
async fn opentelemetry_metrics_and_logs_collectors_export() {
    use otel::common::v1::{any_value, AnyValue};
    use otel::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use otel::metrics::v1::{Metric, ResourceMetrics, ScopeMetrics};

    let server = server();
    let channel = crate::support::channel(&server).await;

    let mut metrics_client =
        metrics::metrics_service_client::MetricsServiceClient::new(channel.clone());
    let named = |name: &str| Metric {
        name: name.to_owned(),
        ..Default::default()
    };
    let request = metrics::ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![named("requests"), named(""), named("latency")],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let answer = bounded("metrics", metrics_client.export(request))
        .await
        .expect("metrics")
        .into_inner();
    let partial = answer.partial_success.expect("one nameless metric");
    assert_eq!(partial.rejected_data_points, 1);

    let mut logs_client = logs::logs_service_client::LogsServiceClient::new(channel.clone());
    let record = |body: Option<&str>| LogRecord {
        body: body.map(|text| AnyValue {
            value: Some(any_value::Value::StringValue(text.to_owned())),
        }),
        ..Default::default()
    };
    let request = logs::ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![record(Some("started")), record(Some("ready"))],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let answer = bounded("logs", logs_client.export(request))
        .await
        .expect("logs")
        .into_inner();
    assert_eq!(answer.partial_success, None);

    let mut greeter = GreeterClient::new(channel);
    let hello = helloworld::HelloRequest {
        name: "shared".to_owned(),
    };
    let reply = bounded("hello", greeter.say_hello(hello))
        .await
        .expect("hello")
        .into_inner();
    assert_eq!(reply.message, "Hello shared!");
}
