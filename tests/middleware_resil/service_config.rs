//! gRPC's service config JSON end to end: retries, per-method entries that hide the default,
//! and a configured timeout, against real servers.

use super::*;
use sockrpc::middleware::service_config::ServiceConfig;
use sockrpc_tests::counter::counter_client::CounterClient;
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::{EchoRequest, GrowRequest};
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
        .insert_str("grpc-timeout", "5S")
        .expect("ascii");
    ends_at_its_deadline(
        client.sleep(entry),
        Duration::from_millis(200),
        Duration::from_secs(2),
    )
    .await;
    server.stop().await;

    // Nothing listens: the endpoint waits for ready, the config says not to; the endpoint wins.
    // Held (bound, never listening) until the test ends: no other server can take the port.
    let refused = sockrpc_tests::refused::Refused::loopback();
    let vacant = refused.addr();
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

/// `maxRequestMessageBytes` and `maxResponseMessageBytes`, by entry: a request over the limit
/// fails `RESOURCE_EXHAUSTED` before it is sent, an answer over it fails the call when it
/// arrives; the client's own smaller limit still wins; methods the entry does not cover are
/// not bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_config_bounds_each_methods_messages() {
    let config = ServiceConfig::from_json(
        r#"{"methodConfig": [
             {"name": [{"service": "sockrpc.test.Echo", "method": "Echo"}],
              "maxRequestMessageBytes": 1000,
              "retryPolicy": {"maxAttempts": 4, "initialBackoff": "0.1s", "maxBackoff": "1s",
                              "backoffMultiplier": 2,
                              "retryableStatusCodes": ["RESOURCE_EXHAUSTED"]}},
             {"name": [{"service": "sockrpc.test.Echo", "method": "Grow"}],
              "maxResponseMessageBytes": 2000}]}"#,
    )
    .expect("valid config");
    let server =
        Running::start(sockrpc::Server::builder().add_service(EchoServer::new(Plain))).await;
    let channel = server.channel().await;
    let mut client = EchoClient::new(config.layer().layer(channel.clone()));
    let echo = |size: usize| EchoRequest {
        payload: Bytes::from(vec![1u8; size]),
        id: 1,
    };
    // The payload plus its tag and length (3 bytes) and the id (2 bytes).
    let reply = bounded("Echo", client.echo(echo(995)))
        .await
        .expect("at the limit");
    assert_eq!(reply.into_inner().payload.len(), 995);
    // Refused before it is sent, and not retried (each attempt would fail the same way).
    let status = exhausted(
        client.echo(echo(996)),
        "1001 bytes exceeds the sending limit of 1000",
    )
    .await;
    assert!(
        status
            .metadata()
            .get_str("grpc-previous-rpc-attempts")
            .is_none(),
        "{status:?}"
    );
    // Grow's entry bounds answers, not requests; Echo's answers are not bounded.
    let grow = |size| GrowRequest { size };
    let reply = bounded("Grow", client.grow(grow(1997)))
        .await
        .expect("2000 bytes");
    assert_eq!(reply.into_inner().payload.len(), 1997);
    exhausted(
        client.grow(grow(1998)),
        "2001 bytes exceeds the limit of 2000",
    )
    .await;
    // The client's own limit is smaller: it wins.
    let mut strict = EchoClient::new(config.layer().layer(channel.clone()))
        .max_decoding_message_size(500)
        .max_encoding_message_size(500);
    exhausted(strict.grow(grow(600)), "exceeds the limit of 500").await;
    exhausted(strict.echo(echo(600)), "exceeds the sending limit of 500").await;
    // And the connection carried on through all of it.
    let reply = bounded("Echo", client.echo(echo(10))).await.expect("small");
    assert_eq!(reply.into_inner().payload.len(), 10);
    server.stop().await;
}

/// `call` fails `RESOURCE_EXHAUSTED`, saying `why`: its status.
async fn exhausted<T: std::fmt::Debug>(
    call: impl std::future::Future<Output = Result<T, Status>>,
    why: &str,
) -> Status {
    let status = bounded("the call", call).await.expect_err("over a limit");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains(why), "want {why:?}: {status:?}");
    status
}

/// The same limits on a stream's messages, each way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_config_bounds_stream_messages() {
    use sockrpc_tests::mirror::Mirror;
    use sockrpc_tests::stream::streamer_client::StreamerClient;
    use sockrpc_tests::stream::streamer_server::StreamerServer;
    use sockrpc_tests::stream::Chunk;

    let server =
        Running::start(sockrpc::Server::builder().add_service(StreamerServer::new(Mirror))).await;
    let chunk = |size: usize| Chunk {
        seq: 1,
        payload: Bytes::from(vec![2u8; size]),
    };
    for (key, want) in [
        ("maxRequestMessageBytes", "sending limit of 100"),
        ("maxResponseMessageBytes", "exceeds the limit of 100"),
    ] {
        let config = ServiceConfig::from_json(&format!(
            r#"{{"methodConfig": [{{"name": [{{"service": "sockrpc.test.stream.Streamer"}}],
                                  "{key}": 100}}]}}"#
        ))
        .expect("valid config");
        let mut client = StreamerClient::new(config.layer().layer(server.channel().await));
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let requests = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        });
        let mut answers = bounded("PingPong", client.ping_pong(requests))
            .await
            .expect("opens")
            .into_inner();
        // One at a time, each answered before the next goes.
        for size in [10, 20] {
            tx.send(chunk(size)).await.expect("the stream reads");
            let answer = bounded("an answer", answers.message()).await;
            let answer = answer.expect("answered").expect("a message");
            assert_eq!(answer.payload.len(), size, "{key}");
        }
        tx.send(chunk(200)).await.expect("the stream reads");
        let status = bounded("an answer", answers.message())
            .await
            .expect_err("over the limit");
        assert_eq!(status.code(), Code::ResourceExhausted, "{key}: {status:?}");
        assert!(status.message().contains(want), "{key}: {status:?}");
    }
    server.stop().await;
}
