//! gRPC's service config JSON end to end: retries, per-method entries that hide the default,
//! and a configured timeout, against real servers.

use super::*;
use sockrpc::middleware::service_config::ServiceConfig;
use sockrpc_tests::counter::counter_client::CounterClient;
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::EchoServer;
use tower::Layer;

const CONFIG: &str = r#"{
  "methodConfig": [
    {"name": [{"service": "sockrpc.test.counter.Counter", "method": "Add"}],
     "retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.01s", "maxBackoff": "0.05s",
                     "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}},
    {"name": [{"service": "sockrpc.test.counter.Counter", "method": "Get"}]},
    {"name": [{"service": "sockrpc.test.Echo", "method": "Sleep"}], "timeout": "0.2s"},
    {"name": [{}],
     "retryPolicy": {"maxAttempts": 5, "initialBackoff": "0.01s", "maxBackoff": "0.05s",
                     "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}
  ]
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_config_retries_by_entry_and_entries_hide_the_default() {
    let config = ServiceConfig::from_json(CONFIG).expect("valid config");
    let (flaky, server) = flaky_server().await;
    let mut client = CounterClient::new(config.layer().layer(server.channel().await));
    // Add is not idempotent in the .proto, but its entry says retry: the third attempt answers.
    flaky.fail_next(2);
    bounded("Add", client.add(AddRequest { amount: 1 }))
        .await
        .expect("answered on the third attempt");
    assert_eq!(flaky.attempts(), 3);
    // Get's own entry has no policy: one attempt, although the default has five.
    flaky.fail_next(1);
    let err = bounded("Get", client.get(GetRequest {}))
        .await
        .expect_err("not retried");
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(flaky.attempts(), 4);
    // Set has no entry: the default's five attempts.
    flaky.fail_next(10);
    let err = bounded("Set", client.set(AddRequest { amount: 2 }))
        .await
        .expect_err("fails five times");
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(flaky.attempts(), 9);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_config_timeout_bounds_a_call_that_set_none() {
    let config = ServiceConfig::from_json(CONFIG).expect("valid config");
    let server =
        Running::start(sockrpc::Server::builder().add_service(EchoServer::new(Plain))).await;
    let mut client = EchoClient::new(config.layer().layer(server.channel().await));
    ends_at_its_deadline(
        client.sleep(SleepRequest {
            millis: 5_000,
            token: String::new(),
        }),
        Duration::from_millis(200),
        Duration::from_secs(3),
    )
    .await;
    server.stop().await;
}

/// The endpoint keeps the last word, as grpc-go's channel-wide call options do: its shorter
/// timeout bounds a configured one, and its wait-for-ready holds against a config saying
/// `false`; a config's `waitForReady` applies where the endpoint sets none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_config_defaults_yield_to_the_endpoints() {
    let server =
        Running::start(sockrpc::Server::builder().add_service(EchoServer::new(Plain))).await;
    let config = ServiceConfig::from_json(
        r#"{"methodConfig": [{"name": [{"service": "sockrpc.test.Echo"}],
                             "timeout": "10s", "waitForReady": false}]}"#,
    )
    .expect("valid config");
    let endpoint = sockrpc::Endpoint::from_uri(&format!("tcp://{}", server.addr))
        .expect("endpoint")
        .timeout(Duration::from_millis(200));
    let channel = sockrpc::Channel::connect(endpoint).await.expect("connect");
    let mut client = EchoClient::new(config.layer().layer(channel));
    let sleep = SleepRequest {
        millis: 3_000,
        token: String::new(),
    };
    ends_at_its_deadline(
        client.sleep(sleep),
        Duration::from_millis(200),
        Duration::from_secs(2),
    )
    .await;
    // A `grpc-timeout` entry is no timeout of the caller's own: the endpoint's still bounds it.
    let mut entry = Request::new(SleepRequest {
        millis: 3_000,
        token: String::new(),
    });
    entry
        .metadata_mut()
        .insert("grpc-timeout", "5S")
        .expect("ascii");
    ends_at_its_deadline(
        client.sleep(entry),
        Duration::from_millis(200),
        Duration::from_secs(2),
    )
    .await;
    server.stop().await;

    // Nothing listens: the endpoint waits for ready, the config says not to; the endpoint wins.
    let vacant = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let waiting = sockrpc::Endpoint::from_uri(&format!("tcp://{vacant}"))
        .expect("endpoint")
        .wait_for_ready(true);
    waits_to_its_deadline(&config, sockrpc::Channel::lazy(waiting).expect("lazy")).await;
    // And where the endpoint sets nothing, the config's `waitForReady: true` makes a call wait.
    let config =
        ServiceConfig::from_json(r#"{"methodConfig": [{"name": [{}], "waitForReady": true}]}"#)
            .expect("valid config");
    let plain = sockrpc::Channel::lazy(format!("tcp://{vacant}")).expect("lazy");
    waits_to_its_deadline(&config, plain).await;
}

/// A call with an 800 ms deadline through `config`'s layer over `channel`, to a server that is
/// not there, waits for a connection until its deadline (it is wait-for-ready).
async fn waits_to_its_deadline(config: &ServiceConfig, channel: sockrpc::Channel) {
    let mut client = EchoClient::new(config.layer().layer(channel));
    let mut request = Request::new(SleepRequest::default());
    request.set_timeout(Duration::from_millis(800));
    ends_at_its_deadline(
        client.sleep(request),
        Duration::from_millis(800),
        Duration::from_secs(3),
    )
    .await;
}
