//! A running server, bounded waits and the helpers every streaming test shares.

use crate::service::TestStreamer;
use bytes::Bytes;
use futures_util::stream;
use sockrpc::transport::ClientConnection;
use sockrpc::{Channel, Endpoint, Request, Server, Streaming};
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::streamer_server::StreamerServer;
use sockrpc_tests::stream::Chunk;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Bound on every single step of these tests.
pub(crate) const STEP: Duration = Duration::from_secs(10);

/// Bound on a whole test.
pub(crate) const WHOLE: Duration = Duration::from_secs(120);

/// A running server on `127.0.0.1:0`.
pub(crate) struct Running {
    pub(crate) addr: SocketAddr,
    pub(crate) streamer: TestStreamer,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    pub(crate) fn start() -> Running {
        Running::start_with_limit(4096)
    }

    /// A server that takes at most `max_calls` calls in flight per connection.
    pub(crate) fn start_with_limit(max_calls: usize) -> Running {
        let streamer = TestStreamer::default();
        let listener = sockrpc::transport::bind_tcp(
            "127.0.0.1:0".parse().expect("address"),
            &Default::default(),
        )
        .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(
            Server::builder()
                .max_concurrent_calls(max_calls)
                .add_service(StreamerServer::new(streamer.clone()))
                .serve_with_listener_and_shutdown(listener, async move {
                    let _ = stopped.await;
                }),
        );
        Running {
            addr,
            streamer,
            stop: Some(stop),
            task,
        }
    }

    /// A channel of exactly one connection, so that every call shares it.
    pub(crate) async fn channel(&self) -> Channel {
        let endpoint = Endpoint::new("127.0.0.1", self.addr.port()).pool_size(1);
        let channel = bounded("connect", Channel::connect(endpoint))
            .await
            .expect("connect");
        assert_eq!(channel.connections().len(), 1);
        channel
    }

    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(STEP, self.task)
            .await
            .expect("server stops in time")
            .expect("server task did not panic");
        result.expect("server returned an error");
    }
}

pub(crate) async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {STEP:?}"))
}

/// Waits (bounded) until `condition` holds.
pub(crate) async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + STEP;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "{what}: not observed within {STEP:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The one connection of a single-connection channel.
pub(crate) fn only_connection(channel: &Channel) -> ClientConnection {
    let mut connections = channel.connections();
    assert_eq!(connections.len(), 1, "the channel has one connection");
    connections.pop().expect("one connection")
}

pub(crate) fn tagged<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert_str("x-token", token)
        .expect("valid metadata");
    request
}

/// A request stream fed one message at a time from a channel; ends when the sender is dropped.
pub(crate) fn fed_by(
    rx: mpsc::Receiver<Chunk>,
) -> impl futures_util::Stream<Item = Chunk> + Send + 'static {
    stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    })
}

/// The next message of a stream that must have one.
pub(crate) async fn next<T>(what: &str, responses: &mut Streaming<T>) -> T {
    bounded(what, responses.message())
        .await
        .unwrap_or_else(|status| panic!("{what}: failed with {status:?}"))
        .unwrap_or_else(|| panic!("{what}: the stream ended early"))
}

/// A unary call on `channel` that must complete within `limit`, on its one connection.
pub(crate) async fn unary_promptly(channel: &Channel, seq: u64, limit: Duration) {
    let conn = only_connection(channel);
    let before = conn.calls_started();
    let mut client = StreamerClient::new(channel.clone());
    let reply = tokio::time::timeout(
        limit,
        client.unary(Chunk {
            seq,
            payload: Bytes::new(),
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("a unary call on the same connection took over {limit:?}"))
    .expect("the unary call succeeds");
    assert_eq!(reply.into_inner().seq, seq);
    let after = only_connection(channel);
    assert_eq!(
        after.peer_addr(),
        conn.peer_addr(),
        "still the same connection"
    );
    assert_eq!(
        after.calls_started(),
        before + 1,
        "the unary call went over the same connection"
    );
}
