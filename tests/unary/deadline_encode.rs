//! A call's deadline covers the whole call, encoding included: the timeout counts from when
//! the caller starts the call (the `Client` method's entry), not from when the encoded request
//! is sent, and the server is told the time left when the request goes out.
//!
//! The request's codec sleeps in `encode` (a stand-in for a huge message whose encoding takes
//! that long), so the encoding's time is known; the server records the timeout it was told.

use super::*;
use bytes::{BufMut, BytesMut};
use sockrpc::codegen::{unary_handler, BoxFuture, Call};
use sockrpc::protocol::codec::Codec;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

/// The method the tests call.
pub(super) const PATH: &str = "/deadline.Slow/Call";

/// Bytes as they are, after sleeping `encode_delay` in `encode`.
#[derive(Clone)]
pub(super) struct SlowCodec {
    pub(super) encode_delay: Duration,
}

impl Codec<Bytes> for SlowCodec {
    fn encode(&self, item: &Bytes, dst: &mut BytesMut) -> Result<(), Status> {
        if !self.encode_delay.is_zero() {
            std::thread::sleep(self.encode_delay);
        }
        dst.put_slice(item);
        Ok(())
    }

    fn decode(&self, src: Bytes) -> Result<Bytes, Status> {
        Ok(src)
    }
}

/// Answers with the request, recording the timeout each call arrived with; fails the first
/// `fail_first` calls `UNAVAILABLE` (for retries).
#[derive(Clone, Default)]
pub(super) struct Recorder {
    pub(super) seen: Arc<Mutex<Vec<Option<Duration>>>>,
    pub(super) fail_first: Arc<AtomicUsize>,
}

impl tower::Service<Call> for Recorder {
    type Response = Response<sockrpc::Body>;
    type Error = Status;
    type Future = BoxFuture<Result<Response<sockrpc::Body>, Status>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> Self::Future {
        self.seen
            .lock()
            .expect("lock")
            .push(call.request().timeout());
        let fail = self
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            return Box::pin(std::future::ready(Err(Status::unavailable("try again"))));
        }
        let codec = SlowCodec {
            encode_delay: Duration::ZERO,
        };
        Box::pin(unary_handler(
            call,
            codec,
            |request: Request<Bytes>| async move { Ok(Response::new(request.into_inner())) },
        ))
    }
}

/// A server with the recorder mounted, and a client on a channel to it.
pub(super) async fn setup() -> (
    sockrpc_tests::serve::Running,
    Recorder,
    sockrpc::Client<sockrpc::Channel>,
) {
    let recorder = Recorder::default();
    let router = sockrpc::Router::new().add_named("deadline.Slow", recorder.clone());
    let server = sockrpc_tests::serve::Running::start(Server::builder().router(router));
    let channel = sockrpc::Channel::connect(server.addr)
        .await
        .expect("connect");
    (server, recorder, sockrpc::Client::new(channel))
}

/// A server with the recorder mounted, failing its first call, and a client over `layer` on
/// a channel whose endpoint's default timeout is `default`: what the per-attempt deadline
/// tests (`deadline_attempts.rs`, `deadline_entry_bounded.rs`) share.
pub(super) async fn layered_failing_first<L>(
    layer: L,
    default: Duration,
) -> (
    sockrpc_tests::serve::Running,
    Recorder,
    sockrpc::Client<L::Service>,
)
where
    L: tower::Layer<sockrpc::Channel>,
{
    let (server, recorder, _) = setup().await;
    recorder.fail_first.store(1, Ordering::SeqCst);
    let endpoint = sockrpc::Endpoint::from_uri(&format!("tcp://{}", server.addr))
        .expect("endpoint")
        .timeout(default);
    let channel = sockrpc::Channel::connect(endpoint).await.expect("connect");
    (server, recorder, sockrpc::Client::new(layer.layer(channel)))
}

pub(super) fn request(timeout: Duration) -> Request<Bytes> {
    let mut request = Request::new(Bytes::from_static(b"payload"));
    request.set_timeout(timeout);
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoding_longer_than_the_deadline_fails_deadline_exceeded() {
    let (server, recorder, mut client) = setup().await;
    let codec = SlowCodec {
        encode_delay: Duration::from_millis(400),
    };
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        client.unary(request(Duration::from_millis(150)), PATH, codec),
    )
    .await
    .expect("the call ends within 10 s");
    let took = started.elapsed();
    let status = result.expect_err("the deadline passed while encoding");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    // Ended at the send, not a full timeout after the encoding (nor never).
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // Nothing was sent: the server never saw the call.
    assert!(recorder.seen.lock().expect("lock").is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_call_counts_its_encoding_too() {
    let (server, recorder, mut client) = setup().await;
    let codec = SlowCodec {
        encode_delay: Duration::from_millis(400),
    };
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        client.server_streaming(request(Duration::from_millis(150)), PATH, codec),
    )
    .await
    .expect("the call ends within 10 s");
    let status = result
        .map(|_| ())
        .expect_err("the deadline passed while encoding");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(recorder.seen.lock().expect("lock").is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_is_told_the_time_left_after_encoding() {
    let (server, recorder, mut client) = setup().await;
    let encode_delay = Duration::from_millis(300);
    let timeout = Duration::from_secs(3);
    let codec = SlowCodec { encode_delay };
    let answer = client
        .unary(request(timeout), PATH, codec)
        .await
        .expect("time enough for the call");
    assert_eq!(answer.get_ref().as_ref(), b"payload");
    let seen = recorder.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1);
    let told = seen[0].expect("the server was told a timeout");
    // The encoding's time came out of it: never more than the timeout less the encoding.
    assert!(
        told <= timeout - encode_delay,
        "told {told:?} after a {encode_delay:?} encoding of a {timeout:?} timeout"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_call_keeps_its_deadline() {
    let (server, recorder, mut client) = setup().await;
    let codec = SlowCodec {
        encode_delay: Duration::ZERO,
    };
    let timeout = Duration::from_secs(5);
    for _ in 0..3 {
        client
            .unary(request(timeout), PATH, codec.clone())
            .await
            .expect("a quick call succeeds");
    }
    let seen = recorder.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 3);
    for told in seen {
        let told = told.expect("a timeout on the wire");
        assert!(
            told <= timeout && told > Duration::from_secs(4),
            "told {told:?}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_share_the_deadline_the_call_began_with() {
    use sockrpc::middleware::retry::{RetryLayer, RetryPolicy};
    use tower::Layer;
    let (server, recorder, client) = setup().await;
    recorder.fail_first.store(2, Ordering::SeqCst);
    let retrying = RetryLayer::new()
        .method(PATH, RetryPolicy::new(3))
        .layer(client.into_inner());
    let mut client = sockrpc::Client::new(retrying);
    let encode_delay = Duration::from_millis(300);
    let timeout = Duration::from_secs(3);
    let codec = SlowCodec { encode_delay };
    tokio::time::timeout(
        Duration::from_secs(10),
        client.unary(request(timeout), PATH, codec),
    )
    .await
    .expect("the call ends within 10 s")
    .expect("the third attempt succeeds");
    let seen = recorder.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    // Every attempt, the retried ones too, counts from the call's start, before encoding.
    for told in seen {
        let told = told.expect("a timeout on the wire");
        assert!(
            told <= timeout - encode_delay,
            "told {told:?} after a {encode_delay:?} encoding of a {timeout:?} timeout"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_udp_path_counts_the_encoding_too() {
    use sockrpc::service::udp::UdpServerConfig;
    use sockrpc::transport::endpoint::UdpPolicy;
    let recorder = Recorder::default();
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let listener = sockrpc::transport::bind_tcp(any, &Default::default()).expect("bind tcp");
    let tcp_addr = listener.local_addr().expect("addr");
    let udp_socket = tokio::net::UdpSocket::bind(any).await.expect("bind udp");
    let udp_addr = udp_socket.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let router = sockrpc::Router::new().add_named("deadline.Slow", recorder.clone());
    let task = tokio::spawn(
        Server::builder()
            .udp(udp_socket, UdpServerConfig::default())
            .router(router)
            .serve_with_listener_and_shutdown(listener, async {
                let _ = stopped.await;
            }),
    );
    let endpoint = Endpoint::from_uri(&format!("tcp://{tcp_addr}"))
        .expect("endpoint")
        .udp_policy(Some(UdpPolicy::new(udp_addr)));
    let channel = sockrpc::Channel::connect(endpoint).await.expect("connect");
    let mut client = sockrpc::Client::new(channel.clone());
    // A quick call first: the UDP side is up, and answers.
    let quick = SlowCodec {
        encode_delay: Duration::ZERO,
    };
    client
        .unary(request(Duration::from_secs(5)), PATH, quick)
        .await
        .expect("a quick call over UDP");
    let slow = SlowCodec {
        encode_delay: Duration::from_millis(400),
    };
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        client.unary(request(Duration::from_millis(150)), PATH, slow),
    )
    .await
    .expect("the call ends within 10 s");
    let status = result.expect_err("the deadline passed while encoding");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    let stats = channel.udp_stats().expect("UDP set up");
    // The slow call went the UDP way, and that is where its deadline stopped it.
    assert_eq!(stats.deadline_exceeded, 1, "{stats:?}");
    assert_eq!(
        recorder.seen.lock().expect("lock").len(),
        1,
        "only the quick call ran"
    );
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("server stops in time")
        .expect("server task")
        .expect("server ends cleanly");
}
