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
