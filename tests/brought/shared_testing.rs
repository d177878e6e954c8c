//! The services of gRPC's `grpc.testing` package that `tests/codegen.rs` does not serve
//! (`TestService` is there): `UnimplementedService`, `ReconnectService`,
//! `LoadBalancerStatsService`, `HookService`, `XdsUpdateHealthService`,
//! `XdsUpdateClientConfigureService`, `BenchmarkService`, `WorkerService` and
//! `ReportQpsScenarioService`. Each is implemented against its generated trait and called through
//! its generated client on one loopback server: every rpc once, every call shape.

use std::sync::Mutex;

use futures_util::stream::{self, BoxStream, StreamExt};
use sockrpc::{Code, Request, Response, Status, Streaming};
use sockrpc_tests::shared::grpc::testing as gt;

use gt::benchmark_service_client::BenchmarkServiceClient;
use gt::benchmark_service_server::{BenchmarkService, BenchmarkServiceServer};
use gt::hook_service_client::HookServiceClient;
use gt::hook_service_server::{HookService, HookServiceServer};
use gt::load_balancer_stats_service_client::LoadBalancerStatsServiceClient;
use gt::load_balancer_stats_service_server::{
    LoadBalancerStatsService, LoadBalancerStatsServiceServer,
};
use gt::reconnect_service_client::ReconnectServiceClient;
use gt::reconnect_service_server::{ReconnectService, ReconnectServiceServer};
use gt::report_qps_scenario_service_client::ReportQpsScenarioServiceClient;
use gt::report_qps_scenario_service_server::{
    ReportQpsScenarioService, ReportQpsScenarioServiceServer,
};
use gt::unimplemented_service_client::UnimplementedServiceClient;
use gt::unimplemented_service_server::{UnimplementedService, UnimplementedServiceServer};
use gt::worker_service_client::WorkerServiceClient;
use gt::worker_service_server::{WorkerService, WorkerServiceServer};
use gt::xds_update_client_configure_service_client::XdsUpdateClientConfigureServiceClient;
use gt::xds_update_client_configure_service_server::{
    XdsUpdateClientConfigureService, XdsUpdateClientConfigureServiceServer,
};
use gt::xds_update_health_service_client::XdsUpdateHealthServiceClient;
use gt::xds_update_health_service_server::{XdsUpdateHealthService, XdsUpdateHealthServiceServer};
use gt::{Empty, Payload, SimpleRequest, SimpleResponse};

use crate::support::{bounded, collect, start};

/// Answers `UNIMPLEMENTED` with its own message, so the test tells it from the router's.
struct Unimplemented;

impl UnimplementedService for Unimplemented {
    async fn unimplemented_call(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        Err(Status::unimplemented("served by UnimplementedService"))
    }
}

/// Remembers the backoff it was started with and reports it on `Stop`.
#[derive(Default)]
struct Reconnect {
    backoff: Mutex<Option<i32>>,
}

impl ReconnectService for Reconnect {
    async fn start(
        &self,
        request: Request<gt::ReconnectParams>,
    ) -> Result<Response<Empty>, Status> {
        let backoff = request.into_inner().max_reconnect_backoff_ms;
        *self.backoff.lock().expect("lock") = Some(backoff);
        Ok(Response::new(Empty {}))
    }

    async fn stop(&self, _: Request<Empty>) -> Result<Response<gt::ReconnectInfo>, Status> {
        let backoff = self.backoff.lock().expect("lock").take();
        Ok(Response::new(gt::ReconnectInfo {
            passed: backoff.is_some(),
            backoff_ms: backoff.into_iter().collect(),
        }))
    }
}

/// Reports `num_rpcs` calls to one peer; the accumulated stats name one method.
struct LbStats;

impl LoadBalancerStatsService for LbStats {
    async fn get_client_stats(
        &self,
        request: Request<gt::LoadBalancerStatsRequest>,
    ) -> Result<Response<gt::LoadBalancerStatsResponse>, Status> {
        let request = request.into_inner();
        Ok(Response::new(gt::LoadBalancerStatsResponse {
            rpcs_by_peer: [("peer-1".to_owned(), request.num_rpcs)].into(),
            num_failures: request.timeout_sec,
            ..Default::default()
        }))
    }

    async fn get_client_accumulated_stats(
        &self,
        _: Request<gt::LoadBalancerAccumulatedStatsRequest>,
    ) -> Result<Response<gt::LoadBalancerAccumulatedStatsResponse>, Status> {
        Ok(Response::new(gt::LoadBalancerAccumulatedStatsResponse {
            stats_per_method: [("UnaryCall".to_owned(), Default::default())].into(),
            ..Default::default()
        }))
    }
}

/// `Hook` fails with the status `SetReturnStatus` stored, until `ClearReturnStatus`.
#[derive(Default)]
struct Hook {
    status: Mutex<Option<(i32, String)>>,
}

impl HookService for Hook {
    async fn hook(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        match self.status.lock().expect("lock").clone() {
            Some((code, message)) => Err(Status::new(Code::from_i32(code), message)),
            None => Ok(Response::new(Empty {})),
        }
    }

    async fn set_return_status(
        &self,
        request: Request<gt::SetReturnStatusRequest>,
    ) -> Result<Response<Empty>, Status> {
        let request = request.into_inner();
        *self.status.lock().expect("lock") =
            Some((request.grpc_code_to_return, request.grpc_status_description));
        Ok(Response::new(Empty {}))
    }

    async fn clear_return_status(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        *self.status.lock().expect("lock") = None;
        Ok(Response::new(Empty {}))
    }
}

/// Tracks serving / not serving, and echoes a hook request's code back as an error.
#[derive(Default)]
struct XdsHealth {
    serving: Mutex<bool>,
}

impl XdsUpdateHealthService for XdsHealth {
    async fn set_serving(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        *self.serving.lock().expect("lock") = true;
        Ok(Response::new(Empty {}))
    }

    async fn set_not_serving(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        *self.serving.lock().expect("lock") = false;
        Ok(Response::new(Empty {}))
    }

    async fn send_hook_request(
        &self,
        request: Request<gt::HookRequest>,
    ) -> Result<Response<gt::HookResponse>, Status> {
        let request = request.into_inner();
        if *self.serving.lock().expect("lock") {
            Ok(Response::new(gt::HookResponse {}))
        } else {
            Err(Status::new(
                Code::from_i32(request.grpc_code_to_return),
                request.grpc_status_description,
            ))
        }
    }
}

/// Accepts one `Configure` with a timeout, refuses a negative one.
struct XdsConfigure;

impl XdsUpdateClientConfigureService for XdsConfigure {
    async fn configure(
        &self,
        request: Request<gt::ClientConfigureRequest>,
    ) -> Result<Response<gt::ClientConfigureResponse>, Status> {
        if request.into_inner().timeout_sec < 0 {
            return Err(Status::invalid_argument("negative timeout"));
        }
        Ok(Response::new(gt::ClientConfigureResponse {}))
    }
}

/// Answers each request with a payload of the size it asks for.
struct Bench;

fn sized(request: &SimpleRequest) -> SimpleResponse {
    SimpleResponse {
        payload: Some(Payload {
            r#type: 0,
            body: vec![7; usize::try_from(request.response_size).unwrap_or(0)],
        }),
        ..Default::default()
    }
}

impl BenchmarkService for Bench {
    async fn unary_call(
        &self,
        request: Request<SimpleRequest>,
    ) -> Result<Response<SimpleResponse>, Status> {
        Ok(Response::new(sized(request.get_ref())))
    }

    type StreamingCallStream = BoxStream<'static, Result<SimpleResponse, Status>>;

    async fn streaming_call(
        &self,
        request: Request<Streaming<SimpleRequest>>,
    ) -> Result<Response<Self::StreamingCallStream>, Status> {
        let answers = request.into_inner().map(|r| r.map(|r| sized(&r)));
        Ok(Response::new(answers.boxed()))
    }

    async fn streaming_from_client(
        &self,
        request: Request<Streaming<SimpleRequest>>,
    ) -> Result<Response<SimpleResponse>, Status> {
        let mut requests = request.into_inner();
        let mut total = SimpleRequest::default();
        while let Some(request) = requests.message().await? {
            total.response_size += request.response_size;
        }
        Ok(Response::new(sized(&total)))
    }

    type StreamingFromServerStream = BoxStream<'static, Result<SimpleResponse, Status>>;

    async fn streaming_from_server(
        &self,
        request: Request<SimpleRequest>,
    ) -> Result<Response<Self::StreamingFromServerStream>, Status> {
        let response = sized(request.get_ref());
        Ok(Response::new(stream::iter(vec![Ok(response); 3]).boxed()))
    }

    type StreamingBothWaysStream = BoxStream<'static, Result<SimpleResponse, Status>>;

    async fn streaming_both_ways(
        &self,
        request: Request<Streaming<SimpleRequest>>,
    ) -> Result<Response<Self::StreamingBothWaysStream>, Status> {
        // Answers every request twice.
        let answers = request.into_inner().flat_map(|r| {
            let answers = match r {
                Ok(r) => vec![Ok(sized(&r)), Ok(sized(&r))],
                Err(status) => vec![Err(status)],
            };
            stream::iter(answers)
        });
        Ok(Response::new(answers.boxed()))
    }
}

/// A worker that reports the port of each `ServerArgs` setup and one status per client mark.
struct Worker;

impl WorkerService for Worker {
    type RunServerStream = BoxStream<'static, Result<gt::ServerStatus, Status>>;

    async fn run_server(
        &self,
        request: Request<Streaming<gt::ServerArgs>>,
    ) -> Result<Response<Self::RunServerStream>, Status> {
        let statuses = request.into_inner().map(|args| {
            let port = match args?.argtype {
                Some(gt::server_args::Argtype::Setup(config)) => config.port,
                Some(gt::server_args::Argtype::Mark(_)) | None => 0,
            };
            Ok(gt::ServerStatus {
                port,
                cores: 2,
                ..Default::default()
            })
        });
        Ok(Response::new(statuses.boxed()))
    }

    type RunClientStream = BoxStream<'static, Result<gt::ClientStatus, Status>>;

    async fn run_client(
        &self,
        request: Request<Streaming<gt::ClientArgs>>,
    ) -> Result<Response<Self::RunClientStream>, Status> {
        let statuses = request
            .into_inner()
            .map(|args| args.map(|_| gt::ClientStatus::default()));
        Ok(Response::new(statuses.boxed()))
    }

    async fn core_count(
        &self,
        _: Request<gt::CoreRequest>,
    ) -> Result<Response<gt::CoreResponse>, Status> {
        Ok(Response::new(gt::CoreResponse { cores: 2 }))
    }

    async fn quit_worker(&self, _: Request<gt::Void>) -> Result<Response<gt::Void>, Status> {
        Ok(Response::new(gt::Void {}))
    }
}

/// Refuses a scenario without a name.
struct Report;

impl ReportQpsScenarioService for Report {
    async fn report_scenario(
        &self,
        request: Request<gt::ScenarioResult>,
    ) -> Result<Response<gt::Void>, Status> {
        match request.into_inner().scenario {
            Some(scenario) if !scenario.name.is_empty() => Ok(Response::new(gt::Void {})),
            _ => Err(Status::invalid_argument("a scenario needs a name")),
        }
    }
}

fn server() -> crate::support::Running {
    start(
        sockrpc::Server::builder()
            .add_service(UnimplementedServiceServer::new(Unimplemented))
            .add_service(ReconnectServiceServer::new(Reconnect::default()))
            .add_service(LoadBalancerStatsServiceServer::new(LbStats))
            .add_service(HookServiceServer::new(Hook::default()))
            .add_service(XdsUpdateHealthServiceServer::new(XdsHealth::default()))
            .add_service(XdsUpdateClientConfigureServiceServer::new(XdsConfigure))
            .add_service(BenchmarkServiceServer::new(Bench))
            .add_service(WorkerServiceServer::new(Worker))
            .add_service(ReportQpsScenarioServiceServer::new(Report)),
    )
}

#[tokio::test]
async fn grpc_testing_control_services_answer_every_rpc() {
    let server = server();
    let channel = crate::support::channel(&server).await;

    let mut unimplemented = UnimplementedServiceClient::new(channel.clone());
    let status = bounded("unimplemented", unimplemented.unimplemented_call(Empty {}))
        .await
        .expect_err("unimplemented");
    assert_eq!(status.code(), Code::Unimplemented);
    assert_eq!(status.message(), "served by UnimplementedService");

    let mut reconnect = ReconnectServiceClient::new(channel.clone());
    let params = gt::ReconnectParams {
        max_reconnect_backoff_ms: 120,
    };
    bounded("start", reconnect.start(params))
        .await
        .expect("start");
    let info = bounded("stop", reconnect.stop(Empty {}))
        .await
        .expect("stop")
        .into_inner();
    assert_eq!((info.passed, info.backoff_ms), (true, vec![120]));

    let mut lb = LoadBalancerStatsServiceClient::new(channel.clone());
    let request = gt::LoadBalancerStatsRequest {
        num_rpcs: 5,
        timeout_sec: 1,
        metadata_keys: vec!["x".to_owned()],
    };
    let stats = bounded("stats", lb.get_client_stats(request))
        .await
        .expect("stats")
        .into_inner();
    assert_eq!(stats.rpcs_by_peer.get("peer-1"), Some(&5));
    assert_eq!(stats.num_failures, 1);
    let accumulated = gt::LoadBalancerAccumulatedStatsRequest {};
    let accumulated = bounded("acc", lb.get_client_accumulated_stats(accumulated))
        .await
        .expect("accumulated")
        .into_inner();
    assert!(accumulated.stats_per_method.contains_key("UnaryCall"));

    let mut hook = HookServiceClient::new(channel.clone());
    bounded("hook", hook.hook(Empty {})).await.expect("hook");
    let set = gt::SetReturnStatusRequest {
        grpc_code_to_return: Code::ResourceExhausted as i32,
        grpc_status_description: "hooked".to_owned(),
    };
    bounded("set", hook.set_return_status(set))
        .await
        .expect("set");
    let status = bounded("hook", hook.hook(Empty {}))
        .await
        .expect_err("hooked");
    assert_eq!(
        (status.code(), status.message()),
        (Code::ResourceExhausted, "hooked")
    );
    bounded("clear", hook.clear_return_status(Empty {}))
        .await
        .expect("clear");
    bounded("hook", hook.hook(Empty {})).await.expect("cleared");

    let mut health = XdsUpdateHealthServiceClient::new(channel.clone());
    let request = gt::HookRequest {
        grpc_code_to_return: Code::Unavailable as i32,
        grpc_status_description: "not serving".to_owned(),
        ..Default::default()
    };
    let status = bounded("hook request", health.send_hook_request(request.clone()))
        .await
        .expect_err("not serving yet");
    assert_eq!(status.code(), Code::Unavailable);
    bounded("serving", health.set_serving(Empty {}))
        .await
        .expect("serving");
    bounded("hook request", health.send_hook_request(request.clone()))
        .await
        .expect("serving now");
    bounded("not serving", health.set_not_serving(Empty {}))
        .await
        .expect("not serving");
    bounded("hook request", health.send_hook_request(request))
        .await
        .expect_err("not serving again");

    let mut configure = XdsUpdateClientConfigureServiceClient::new(channel.clone());
    let request = gt::ClientConfigureRequest {
        timeout_sec: 3,
        ..Default::default()
    };
    bounded("configure", configure.configure(request))
        .await
        .expect("configure");
    let request = gt::ClientConfigureRequest {
        timeout_sec: -1,
        ..Default::default()
    };
    let status = bounded("configure", configure.configure(request))
        .await
        .expect_err("negative");
    assert_eq!(status.code(), Code::InvalidArgument);

    let mut report = ReportQpsScenarioServiceClient::new(channel);
    let mut result = gt::ScenarioResult::default();
    let status = bounded("report", report.report_scenario(result.clone()))
        .await
        .expect_err("nameless");
    assert_eq!(status.code(), Code::InvalidArgument);
    result.scenario = Some(gt::Scenario {
        name: "loopback".to_owned(),
        ..Default::default()
    });
    bounded("report", report.report_scenario(result))
        .await
        .expect("named");
}

fn ask(size: i32) -> SimpleRequest {
    SimpleRequest {
        response_size: size,
        ..Default::default()
    }
}

fn body_len(response: &SimpleResponse) -> usize {
    response.payload.as_ref().map_or(0, |p| p.body.len())
}

#[tokio::test]
async fn benchmark_service_serves_every_call_shape() {
    let server = server();
    let mut client = BenchmarkServiceClient::new(crate::support::channel(&server).await);

    let one = bounded("unary", client.unary_call(ask(10)))
        .await
        .expect("unary")
        .into_inner();
    assert_eq!(body_len(&one), 10);

    let answers = bounded(
        "bidi",
        client.streaming_call(stream::iter([ask(1), ask(2)])),
    )
    .await
    .expect("bidi")
    .into_inner();
    let sizes: Vec<_> = collect("bidi", answers)
        .await
        .iter()
        .map(body_len)
        .collect();
    assert_eq!(sizes, [1, 2]);

    let sum = bounded(
        "client streaming",
        client.streaming_from_client(stream::iter([ask(3), ask(4), ask(5)])),
    )
    .await
    .expect("client streaming")
    .into_inner();
    assert_eq!(body_len(&sum), 12);

    let answers = bounded("server streaming", client.streaming_from_server(ask(6)))
        .await
        .expect("server streaming")
        .into_inner();
    let sizes: Vec<_> = collect("server streaming", answers)
        .await
        .iter()
        .map(body_len)
        .collect();
    assert_eq!(sizes, [6, 6, 6]);

    let answers = bounded(
        "both ways",
        client.streaming_both_ways(stream::iter([ask(7), ask(8)])),
    )
    .await
    .expect("both ways")
    .into_inner();
    let sizes: Vec<_> = collect("both ways", answers)
        .await
        .iter()
        .map(body_len)
        .collect();
    assert_eq!(sizes, [7, 7, 8, 8]);
}

#[tokio::test]
async fn worker_service_runs_servers_and_clients() {
    let server = server();
    let mut worker = WorkerServiceClient::new(crate::support::channel(&server).await);

    let args = [
        gt::ServerArgs {
            argtype: Some(gt::server_args::Argtype::Setup(gt::ServerConfig {
                port: 5000,
                ..Default::default()
            })),
        },
        gt::ServerArgs {
            argtype: Some(gt::server_args::Argtype::Mark(gt::Mark { reset: true })),
        },
    ];
    let statuses = bounded("run server", worker.run_server(stream::iter(args)))
        .await
        .expect("run server")
        .into_inner();
    let ports: Vec<_> = collect("run server", statuses)
        .await
        .iter()
        .map(|s| s.port)
        .collect();
    assert_eq!(ports, [5000, 0]);

    let args = [gt::ClientArgs {
        argtype: Some(gt::client_args::Argtype::Mark(gt::Mark { reset: false })),
    }];
    let statuses = bounded("run client", worker.run_client(stream::iter(args)))
        .await
        .expect("run client")
        .into_inner();
    assert_eq!(collect("run client", statuses).await.len(), 1);

    let cores = bounded("cores", worker.core_count(gt::CoreRequest {}))
        .await
        .expect("cores")
        .into_inner();
    assert_eq!(cores.cores, 2);
    bounded("quit", worker.quit_worker(gt::Void {}))
        .await
        .expect("quit");
}
