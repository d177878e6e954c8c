//! A `grpc-timeout` entry longer than the channel's default timeout (`Endpoint::timeout`) is
//! bounded by the default on every attempt, whatever layer resolves the entry.
//!
//! The channel itself takes the smaller of the two (`Channel::call`), as tonic's channel does
//! and as `ConfigDefaults::endpoint_timeout_applies` says ("the endpoint's timeout, when
//! shorter, still bounds it, as it bounds such a call without a config"). But a retry layer,
//! a hedging layer and a balanced channel move the entry into the call's timeout themselves
//! (it is the call's deadline, which every attempt shares), and the channel below then saw a
//! timeout of the caller's own, which the endpoint's default does not bound: a call with a
//! `30S` entry on an endpoint with a 2 s default was sent with 30 s on a retry's second
//! attempt, a hedged copy, and every balanced attempt.

use super::deadline_encode::{layered_failing_first, setup, Recorder, SlowCodec, PATH};
use super::*;
use sockrpc::service::balance::BalanceBuilder;
use sockrpc::service::discovery;

const DEFAULT: Duration = Duration::from_secs(2);
const ENTRY: &str = "30S";

fn endpoint(addr: SocketAddr) -> Endpoint {
    Endpoint::from_uri(&format!("tcp://{addr}"))
        .expect("endpoint")
        .timeout(DEFAULT)
}

/// Runs one call with a `30S` entry and no timeout of its own through `client`.
async fn call_with_entry<S>(client: &mut sockrpc::Client<S>)
where
    S: tower::Service<sockrpc::codegen::Call, Response = Response<sockrpc::Body>, Error = Status>
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut request = Request::new(Bytes::from_static(b"payload"));
    request
        .metadata_mut()
        .insert_str("grpc-timeout", ENTRY)
        .expect("ascii");
    let codec = SlowCodec {
        encode_delay: Duration::ZERO,
    };
    tokio::time::timeout(Duration::from_secs(10), client.unary(request, PATH, codec))
        .await
        .expect("the call ends within 10 s")
        .expect("the call succeeds");
}

/// Asserts `attempts` attempts, each told at most the endpoint's default.
fn assert_bounded(recorder: &Recorder, attempts: usize) {
    let seen = recorder.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), attempts, "{seen:?}");
    for (i, told) in seen.iter().enumerate() {
        let told = told.expect("a timeout on the wire");
        assert!(
            told <= DEFAULT,
            "attempt {} told {told:?}: a {ENTRY} entry not bounded by the endpoint's {DEFAULT:?}",
            i + 1
        );
    }
}

/// A client over `layer` on a channel with the default, to a recorder that fails the first
/// call: both attempts bounded.
async fn assert_layer_bounds_both_attempts<L>(layer: L)
where
    L: tower::Layer<sockrpc::Channel>,
    L::Service: tower::Service<sockrpc::codegen::Call, Response = Response<sockrpc::Body>, Error = Status>
        + Send
        + 'static,
    <L::Service as tower::Service<sockrpc::codegen::Call>>::Future: Send + 'static,
{
    let (server, recorder, mut client) = layered_failing_first(layer, DEFAULT).await;
    call_with_entry(&mut client).await;
    assert_bounded(&recorder, 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_channel_bounds_an_entry_by_its_default() {
    let (server, recorder, _) = setup().await;
    let channel = sockrpc::Channel::connect(endpoint(server.addr))
        .await
        .expect("connect");
    call_with_entry(&mut sockrpc::Client::new(channel)).await;
    assert_bounded(&recorder, 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_attempt_bounds_an_entry_by_the_default() {
    use sockrpc::middleware::retry::{RetryLayer, RetryPolicy};
    assert_layer_bounds_both_attempts(RetryLayer::new().method(PATH, RetryPolicy::new(2))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hedged_copy_bounds_an_entry_by_the_default() {
    use sockrpc::middleware::hedge::{HedgeLayer, HedgingPolicy};
    // Sent long after the first would be: the first's non-fatal failure sends it at once.
    let policy = HedgingPolicy::new(2, Duration::from_secs(30)).non_fatal([Code::Unavailable]);
    assert_layer_bounds_both_attempts(HedgeLayer::methods_only().method(PATH, policy)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_balanced_channel_bounds_an_entry_by_the_default() {
    let (server, recorder, _) = setup().await;
    let balanced = BalanceBuilder::default()
        .build(discovery::fixed([endpoint(server.addr)]).expect("endpoints"));
    balanced
        .ready(1, Duration::from_secs(10))
        .await
        .expect("the endpoint is up");
    call_with_entry(&mut sockrpc::Client::new(balanced.clone())).await;
    assert_bounded(&recorder, 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_below_the_retry_keeps_the_entry_bounded_by_the_default() {
    use sockrpc::middleware::retry::{RetryLayer, RetryPolicy};
    use sockrpc::middleware::service_config::{MethodDefaultsLayer, ServiceConfig};
    // The config names the method with waitForReady only: below the retry layer it marks the
    // call, and that mark must not undo the retry's (the entry is bounded by the default).
    let (service, method) = PATH
        .trim_start_matches('/')
        .split_once('/')
        .expect("a path");
    let config = ServiceConfig::from_json(&format!(
        r#"{{"methodConfig": [{{"name": [{{"service": "{service}", "method": "{method}"}}],
            "waitForReady": true}}]}}"#
    ))
    .expect("a valid config");
    let layer = tower::layer::util::Stack::new(
        MethodDefaultsLayer::new(&config),
        RetryLayer::new().method(PATH, RetryPolicy::new(2)),
    );
    assert_layer_bounds_both_attempts(layer).await;
}
