//! What the peer-suite tests share: a bound on every wait, a server on a fresh loopback port,
//! a channel to it, and `Peer`, a `Test1` service whose every answer is steered by the
//! request's metadata, so that one service covers every behaviour probed here.

use futures_util::stream;
use sockrpc::service::ServerBuilder;
use sockrpc::{
    BoxStream, Channel, Code, Endpoint, MetadataMap, Request, Response, Status, Streaming,
};
use sockrpc_tests::parity::test1_server::Test1;
use sockrpc_tests::parity::{Input1, Output1};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tower::layer::util::Identity;

pub(crate) use sockrpc_tests::serve::Running;

pub(crate) use sockrpc_tests::bounded::bounded;

/// Serves `builder` on `127.0.0.1:0`.
pub(crate) fn serve(builder: ServerBuilder<Identity>) -> Running {
    Running::start(builder)
}

/// A channel of one connection to `addr`, through `endpoint`'s settings.
pub(crate) async fn channel_with(
    addr: SocketAddr,
    endpoint: impl FnOnce(Endpoint) -> Endpoint,
) -> Channel {
    let endpoint = endpoint(Endpoint::new("127.0.0.1", addr.port()).pool_size(1));
    bounded("connect", Channel::connect(endpoint))
        .await
        .expect("connect")
}

/// A channel of one connection to `addr`.
pub(crate) async fn channel(addr: SocketAddr) -> Channel {
    channel_with(addr, |endpoint| endpoint).await
}

/// Polls `done` every 10 ms, at most for [`STEP`].
pub(crate) async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    bounded(what, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// A request for `message` with text metadata `entries`.
pub(crate) fn with_meta<T>(message: T, entries: &[(&str, &str)]) -> Request<T> {
    let mut request = Request::new(message);
    for (key, value) in entries {
        request
            .metadata_mut()
            .append_str(*key, value)
            .expect("valid metadata");
    }
    request
}

/// Counts of what `Peer`'s handlers did, shared with the test.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    /// Handlers started.
    pub(crate) started: AtomicUsize,
    /// Handlers (or their response streams) dropped before they finished.
    pub(crate) cancelled: AtomicUsize,
    /// Handlers (or their response streams) that ran to their end.
    pub(crate) finished: AtomicUsize,
    /// Request messages handlers read.
    pub(crate) received: AtomicUsize,
}

impl Counts {
    pub(crate) fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }

    pub(crate) fn cancelled(&self) -> usize {
        self.cancelled.load(Ordering::SeqCst)
    }

    pub(crate) fn finished(&self) -> usize {
        self.finished.load(Ordering::SeqCst)
    }

    pub(crate) fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }
}

/// Counts a cancellation when dropped before [`Guard::finish`].
pub(crate) struct Guard {
    counts: Arc<Counts>,
    finished: bool,
}

impl Guard {
    fn new(counts: &Arc<Counts>) -> Guard {
        counts.started.fetch_add(1, Ordering::SeqCst);
        Guard {
            counts: Arc::clone(counts),
            finished: false,
        }
    }

    fn finish(&mut self) {
        if !self.finished {
            self.finished = true;
            self.counts.finished.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.finished {
            self.counts.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// `Test1`, steered by request metadata:
///
/// - `x-echo-meta: 1`: the answer's headers copy the request's metadata, and its trailers
///   hold `x-trailer: t` (unary, client streaming);
/// - `x-fail: <code>`, `x-fail-message-bin`, `x-fail-details-bin`: fail with that status
///   (after `x-after` messages on a stream, after `x-read` request messages when the client
///   streams);
/// - `x-count: n`: a server stream sends `n` copies of the request (default 1);
/// - `x-size: n`: every answer is `n` bytes of 0xA5 instead of the request's bytes;
/// - `x-hang: 1`: the handler waits for ever, ignoring everything;
/// - `x-read: n`: a client stream reads at most `n` messages, then answers (a bidi one ends).
#[derive(Clone, Default)]
pub(crate) struct Peer {
    pub(crate) counts: Arc<Counts>,
}

/// How a request steered the handler.
#[derive(Clone, Debug, Default)]
struct Steer {
    echo_meta: bool,
    fail: Option<Status>,
    after: usize,
    count: usize,
    size: Option<usize>,
    hang: bool,
    read: Option<usize>,
    headers: MetadataMap,
}

fn number(metadata: &MetadataMap, key: &str) -> Option<usize> {
    metadata.get_str(key).and_then(|v| v.parse().ok())
}

impl Steer {
    fn of(metadata: &MetadataMap) -> Steer {
        let fail = number(metadata, "x-fail").map(|code| {
            let message = metadata
                .get_bin_bytes("x-fail-message-bin")
                .map(|m| String::from_utf8(m.to_vec()).expect("utf-8 message"))
                .unwrap_or_default();
            let details = metadata
                .get_bin_bytes("x-fail-details-bin")
                .map(|d| d.to_vec())
                .unwrap_or_default();
            Status::with_details(Code::from_u32(code as u32), message, details)
        });
        Steer {
            echo_meta: metadata.get_str("x-echo-meta") == Some("1"),
            fail,
            after: number(metadata, "x-after").unwrap_or(0),
            count: number(metadata, "x-count").unwrap_or(1),
            size: number(metadata, "x-size"),
            hang: metadata.get_str("x-hang") == Some("1"),
            read: number(metadata, "x-read"),
            headers: metadata.clone(),
        }
    }

    fn answer(&self, buf: bytes::Bytes) -> Output1 {
        match self.size {
            Some(size) => Output1 {
                buf: vec![0xA5; size].into(),
            },
            None => Output1 { buf },
        }
    }

    fn respond<T>(&self, message: T) -> Response<T> {
        let mut response = Response::new(message);
        if self.echo_meta {
            *response.metadata_mut() = self.headers.clone();
            response
                .trailers_mut()
                .insert_str("x-trailer", "t")
                .expect("valid trailer");
        }
        response
    }
}

impl Peer {
    /// Reads the request stream as `steer` says; returns the last message's bytes.
    async fn read_requests(
        &self,
        steer: &Steer,
        requests: &mut Streaming<Input1>,
    ) -> Result<bytes::Bytes, Status> {
        let mut last = bytes::Bytes::new();
        let mut read = 0;
        while steer.read.is_none_or(|limit| read < limit) {
            match requests.message().await? {
                Some(message) => {
                    read += 1;
                    self.counts.received.fetch_add(1, Ordering::SeqCst);
                    last = message.buf;
                }
                None => break,
            }
        }
        Ok(last)
    }
}

impl Test1 for Peer {
    async fn unary_call(&self, request: Request<Input1>) -> Result<Response<Output1>, Status> {
        let mut guard = Guard::new(&self.counts);
        let steer = Steer::of(request.metadata());
        if steer.hang {
            std::future::pending::<()>().await;
        }
        if let Some(status) = steer.fail.clone() {
            guard.finish();
            return Err(status);
        }
        guard.finish();
        Ok(steer.respond(steer.answer(request.into_inner().buf)))
    }

    type StreamCallStream = BoxStream<Output1>;

    async fn stream_call(
        &self,
        request: Request<Input1>,
    ) -> Result<Response<BoxStream<Output1>>, Status> {
        let guard = Guard::new(&self.counts);
        let steer = Steer::of(request.metadata());
        let buf = request.into_inner().buf;
        let answer = steer.answer(buf);
        let response = steer.respond(());
        let messages = stream::unfold((0usize, guard, steer), move |(n, mut guard, steer)| {
            let answer = answer.clone();
            async move {
                if steer.hang && n == steer.after {
                    std::future::pending::<()>().await;
                }
                if n == steer.after {
                    if let Some(status) = steer.fail.clone() {
                        guard.finish();
                        return Some((Err(status), (usize::MAX, guard, Steer::default())));
                    }
                }
                if n >= steer.count {
                    guard.finish();
                    return None;
                }
                Some((Ok(answer), (n + 1, guard, steer)))
            }
        });
        Ok(response.map(|()| Box::pin(messages) as BoxStream<Output1>))
    }

    async fn collect(
        &self,
        request: Request<Streaming<Input1>>,
    ) -> Result<Response<Output1>, Status> {
        let mut guard = Guard::new(&self.counts);
        let steer = Steer::of(request.metadata());
        let mut requests = request.into_inner();
        if steer.hang {
            std::future::pending::<()>().await;
        }
        let last = self.read_requests(&steer, &mut requests).await?;
        guard.finish();
        if let Some(status) = steer.fail.clone() {
            return Err(status);
        }
        Ok(steer.respond(steer.answer(last)))
    }

    type ChatStream = BoxStream<Output1>;

    async fn chat(
        &self,
        request: Request<Streaming<Input1>>,
    ) -> Result<Response<BoxStream<Output1>>, Status> {
        let guard = Guard::new(&self.counts);
        let steer = Steer::of(request.metadata());
        let response = steer.respond(());
        let requests = request.into_inner();
        let counts = Arc::clone(&self.counts);
        // Echoes each request; fails after `x-after` answers when told to.
        let messages = stream::unfold(
            (requests, 0usize, guard, steer, counts),
            |(mut requests, n, mut guard, steer, counts)| async move {
                if n == usize::MAX {
                    return None;
                }
                if steer.hang && n == steer.after {
                    std::future::pending::<()>().await;
                }
                if n == steer.after {
                    if let Some(status) = steer.fail.clone() {
                        guard.finish();
                        return Some((Err(status), (requests, usize::MAX, guard, steer, counts)));
                    }
                }
                if steer.read == Some(n) {
                    guard.finish();
                    return None;
                }
                match requests.message().await {
                    Ok(Some(message)) => {
                        counts.received.fetch_add(1, Ordering::SeqCst);
                        let answer = steer.answer(message.buf);
                        Some((Ok(answer), (requests, n + 1, guard, steer, counts)))
                    }
                    Ok(None) => {
                        guard.finish();
                        None
                    }
                    Err(status) => {
                        Some((Err(status), (requests, usize::MAX, guard, steer, counts)))
                    }
                }
            },
        );
        Ok(response.map(|()| Box::pin(messages) as BoxStream<Output1>))
    }
}
