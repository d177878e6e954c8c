//! A layer between the caller and the channel that sets a timeout (an interceptor, a tower
//! layer) may shorten the call's deadline, never lift it: once the caller started the call
//! (the `Client` method fixed its deadline before encoding), a longer timeout set below
//! neither lets the call run past that deadline nor tells the server more time than is left.

use super::deadline_encode::{request, setup, SlowCodec, PATH};
use super::*;
use sockrpc::codegen::Call;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interceptor_setting_a_longer_timeout_keeps_the_callers_deadline() {
    let (server, recorder, client) = setup().await;
    let lifting = |mut request: Request<()>| {
        request.set_timeout(Duration::from_secs(3600));
        Ok(request)
    };
    let intercepted = sockrpc::service::InterceptedService::new(client.into_inner(), lifting);
    let mut client = sockrpc::Client::new(intercepted);
    let encode_delay = Duration::from_millis(300);
    let timeout = Duration::from_secs(3);
    let codec = SlowCodec { encode_delay };
    tokio::time::timeout(
        Duration::from_secs(10),
        client.unary(request(timeout), PATH, codec),
    )
    .await
    .expect("the call ends within 10 s")
    .expect("time enough for the call");
    let seen = recorder.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let told = seen[0].expect("the server was told a timeout");
    // What is left of the caller's deadline, not the interceptor's hour.
    assert!(
        told <= timeout - encode_delay,
        "told {told:?} after a {encode_delay:?} encoding of a {timeout:?} timeout"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_setting_a_longer_timeout_cannot_revive_a_call_past_its_deadline() {
    use tower::ServiceExt;
    let (server, recorder, client) = setup().await;
    let lifting = client.into_inner().map_request(|mut call: Call| {
        call.request_mut().set_timeout(Duration::from_secs(10));
        call
    });
    let mut client = sockrpc::Client::new(lifting);
    // The encoding outlasts the caller's 150 ms: the call is over before the layer sees it.
    let codec = SlowCodec {
        encode_delay: Duration::from_millis(400),
    };
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        client.unary(request(Duration::from_millis(150)), PATH, codec),
    )
    .await
    .expect("the call ends within 10 s");
    let status = result.expect_err("the caller's deadline passed while encoding");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    // Nothing was sent: the server never saw the call.
    assert!(recorder.seen.lock().expect("lock").is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_setting_a_shorter_timeout_still_shortens_the_call() {
    use tower::ServiceExt;
    let (server, recorder, client) = setup().await;
    let shortening = client.into_inner().map_request(|mut call: Call| {
        call.request_mut().set_timeout(Duration::from_millis(500));
        call
    });
    let mut client = sockrpc::Client::new(shortening);
    let codec = SlowCodec {
        encode_delay: Duration::ZERO,
    };
    tokio::time::timeout(
        Duration::from_secs(10),
        client.unary(request(Duration::from_secs(30)), PATH, codec),
    )
    .await
    .expect("the call ends within 10 s")
    .expect("time enough for the call");
    let seen = recorder.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let told = seen[0].expect("the server was told a timeout");
    assert!(told <= Duration::from_millis(500), "told {told:?}");
    server.stop().await;
}
