//! A timeout given below the caller — a `grpc-timeout` metadata entry (tonic's way),
//! `Endpoint::timeout` (the channel's default) — counts from when the caller started the call,
//! as an explicit timeout does: the `Client` method notes the start before encoding, so a slow
//! encoding comes out of it. And a user layer that rebuilds the request from its parts
//! (`into_parts`/`from_parts`, tower style) keeps the deadline the caller began with.
//!
//! Each test encodes for 300 ms of a 3 s timeout: the server must be told at most 2.7 s. Before
//! these fixes the timeout counted from `Channel::call` (or, rebuilt, the deadline was lost),
//! and the server was told nearly the full 3 s.

use super::deadline_encode::{request, setup, Recorder, SlowCodec, PATH};
use super::*;
use sockrpc::codegen::{BoxFuture, Call};
use std::task::{Context, Poll};

const TIMEOUT: Duration = Duration::from_secs(3);
const ENCODE: Duration = Duration::from_millis(300);

/// Asserts the server saw one call, told at most the timeout less the encoding.
fn assert_encoding_counted(recorder: &Recorder) {
    let seen = recorder.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let told = seen[0].expect("the server was told a timeout");
    assert!(
        told <= TIMEOUT - ENCODE,
        "told {told:?} after a {ENCODE:?} encoding of a {TIMEOUT:?} timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_timeout_entry_counts_from_the_calls_start() {
    let (server, recorder, mut client) = setup().await;
    let mut asked = Request::new(Bytes::from_static(b"payload"));
    asked
        .metadata_mut()
        .insert_str("grpc-timeout", "3S")
        .expect("ascii");
    tokio::time::timeout(
        Duration::from_secs(10),
        client.unary(
            asked,
            PATH,
            SlowCodec {
                encode_delay: ENCODE,
            },
        ),
    )
    .await
    .expect("the call ends within 10 s")
    .expect("time enough for the call");
    assert_encoding_counted(&recorder);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoints_default_timeout_counts_from_the_calls_start() {
    let (server, recorder, _) = setup().await;
    let endpoint = Endpoint::from_uri(&format!("tcp://{}", server.addr))
        .expect("endpoint")
        .timeout(TIMEOUT);
    let channel = sockrpc::Channel::connect(endpoint).await.expect("connect");
    let mut client = sockrpc::Client::new(channel);
    let bare = Request::new(Bytes::from_static(b"payload"));
    tokio::time::timeout(
        Duration::from_secs(10),
        client.unary(
            bare,
            PATH,
            SlowCodec {
                encode_delay: ENCODE,
            },
        ),
    )
    .await
    .expect("the call ends within 10 s")
    .expect("time enough for the call");
    assert_encoding_counted(&recorder);
    server.stop().await;
}

/// A user layer that takes each request apart and builds it again, as tower-style code does.
#[derive(Clone)]
struct Rebuild<S>(S);

impl<S> tower::Service<Call> for Rebuild<S>
where
    S: tower::Service<Call, Response = Response<sockrpc::Body>, Error = Status>,
    S::Future: Send + 'static,
{
    type Response = Response<sockrpc::Body>;
    type Error = Status;
    type Future = BoxFuture<Result<Response<sockrpc::Body>, Status>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, call: Call) -> Self::Future {
        let (path, request) = call.into_parts();
        let (metadata, body, timing) = request.into_parts();
        let rebuilt = Request::from_parts(metadata, body, timing);
        Box::pin(self.0.call(Call::new(path, rebuilt)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_rebuilt_from_its_parts_keeps_its_deadline() {
    let (server, recorder, client) = setup().await;
    let mut client = sockrpc::Client::new(Rebuild(client.into_inner()));
    tokio::time::timeout(
        Duration::from_secs(10),
        client.unary(
            request(TIMEOUT),
            PATH,
            SlowCodec {
                encode_delay: ENCODE,
            },
        ),
    )
    .await
    .expect("the call ends within 10 s")
    .expect("time enough for the call");
    assert_encoding_counted(&recorder);
    server.stop().await;
}
