//! Names a service ported from tonic reaches for beyond the core API, at tonic's paths:
//! `server::NamedService` (a service's name for the health reporter, which tonic-health's
//! `set_serving::<S>()` reads off the type), `codec::CompressionEncoding`, and
//! `Channel::balance_list` over a list of endpoints. A newcomer's key-value service, written
//! from tonic's habits, met each as a compile error the README did not predict.

use crate::support::bounded;
use sockrpc::codec::CompressionEncoding;
use sockrpc::server::NamedService;
use sockrpc::transport::{Channel, Endpoint, Server};
use sockrpc::{Request, Response, Status};
use sockrpc_health::pb::health_client::HealthClient;
use sockrpc_health::pb::HealthCheckRequest;
use sockrpc_health::ServingStatus;
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::{Input, Output};
use sockrpc_tests::serve::Running;

#[derive(Clone)]
struct Answers;

impl Test for Answers {
    async fn unary_call(&self, _: Request<Input>) -> Result<Response<Output>, Status> {
        Ok(Response::new(Output {
            message: "answered".repeat(64),
        }))
    }
}

/// What tonic-health's `set_serving::<S>()` does with its type parameter.
fn service_name<S: NamedService>() -> &'static str {
    S::NAME
}

async fn health_of(channel: Channel, service: &str) -> ServingStatus {
    let request = HealthCheckRequest {
        service: service.to_owned(),
    };
    bounded("check", HealthClient::new(channel).check(request))
        .await
        .expect("the service is known")
        .into_inner()
        .status()
}

#[tokio::test]
async fn health_names_a_service_by_its_named_service() {
    let name = service_name::<TestServer<Answers>>();
    assert_eq!(name, "test.Test");
    let (reporter, health) = sockrpc_health::health_service();
    reporter.set_not_serving(name);
    let server = Running::start(
        Server::builder()
            .add_service(health)
            .add_service(TestServer::new(Answers)),
    );
    let channel = bounded("connect", Channel::connect(server.addr))
        .await
        .expect("connect");
    assert_eq!(
        health_of(channel.clone(), name).await,
        ServingStatus::NotServing
    );
    reporter.set_serving(name);
    assert_eq!(health_of(channel, name).await, ServingStatus::Serving);
    server.stop().await;
}

#[tokio::test]
async fn compression_from_the_codec_module() {
    let server = Running::start(
        Server::builder().add_service(
            TestServer::new(Answers)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip),
        ),
    );
    let channel = bounded("connect", Channel::connect(server.addr))
        .await
        .expect("connect");
    let mut client = TestClient::new(channel)
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip);
    let answer = bounded("call", client.unary_call(Input {}))
        .await
        .expect("a compressed call");
    assert_eq!(
        answer.metadata().get_str("grpc-encoding"),
        Some("gzip"),
        "the answer came compressed"
    );
    server.stop().await;
}

#[tokio::test]
async fn balance_list_spreads_over_the_listed_endpoints() {
    let a = Running::start(Server::builder().add_service(TestServer::new(Answers)));
    let b = Running::start(Server::builder().add_service(TestServer::new(Answers)));
    let endpoint = |addr| Endpoint::from_shared(format!("http://{addr}")).expect("uri");
    // As tonic's load_balance example: an iterator of endpoints; a repeated one counts once.
    let list = vec![endpoint(a.addr), endpoint(b.addr), endpoint(a.addr)];
    let channel = Channel::balance_list(list.into_iter());
    let mut client = TestClient::new(channel.clone());
    for _ in 0..8 {
        bounded("call", client.unary_call(Input {}))
            .await
            .expect("a balanced call");
    }
    let mut keys: Vec<String> = channel.stats().into_iter().map(|s| s.key).collect();
    keys.sort();
    let mut want = vec![a.addr.to_string(), b.addr.to_string()];
    want.sort();
    assert_eq!(keys, want, "one endpoint per listed address");
    assert_eq!(channel.answered().values().sum::<u64>(), 8);
    a.stop().await;
    b.stop().await;
}
