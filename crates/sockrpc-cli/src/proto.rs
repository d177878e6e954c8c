//! The generated `sockrpc.bench` package, the one implementation of its service, and the callers
//! the sockrpc rows measure with.

/// `proto/bench/bench.proto`.
pub(crate) mod bench {
    #![allow(missing_docs, unreachable_pub, dead_code, clippy::all)]
    sockrpc::include_proto!("sockrpc.bench");
}

use crate::load::{Caller, Tally};
use bench::bench_client::BenchClient;
use bench::bench_server::Bench;
use bench::Payload;
use bytes::Bytes;
use sockrpc::{Channel, Request, Response, RpcService, Status, Streaming};
use std::time::Instant;
use tokio::sync::mpsc;

/// Echoes the payload back, on a unary call or message by message on a stream. It does nothing
/// else on purpose: the benchmark measures the framework around the handler, and `Bytes` makes
/// the echo a reference count rather than a copy. `serve --delay` makes each unary answer wait
/// that long first (a slow server, for balanced benchmarks).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EchoService {
    pub(crate) delay: std::time::Duration,
}

impl Bench for EchoService {
    async fn echo(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        Ok(Response::new(request.into_inner()))
    }

    /// The request stream is already a stream of `Result<Payload, Status>`: handed back as the
    /// response stream, each message goes out as it is read, and the client's half-close (or
    /// error) ends the call.
    type PingPongStream = Streaming<Payload>;

    async fn ping_pong(
        &self,
        request: Request<Streaming<Payload>>,
    ) -> Result<Response<Self::PingPongStream>, Status> {
        Ok(Response::new(request.into_inner()))
    }
}

/// Reports the answer to one call of `sent` bytes, started at `started`.
fn tally_echo(tally: &Tally, started: Instant, sent: usize, reply: Result<Payload, Status>) {
    match reply {
        Ok(reply) if reply.body.len() == sent => tally.ok(started.elapsed()),
        Ok(reply) => {
            let got = reply.body.len();
            tally.err(1, || format!("echo of {got} bytes for {sent}"));
        }
        Err(status) => tally.err(1, || crate::load::status_error(&status)),
    }
}

/// A sockrpc client with one unary call in flight, on a channel it may share with other callers,
/// bare (`T` = `Channel`) or wrapped in middleware.
#[derive(Debug)]
pub(crate) struct RpcCaller<T = Channel> {
    client: BenchClient<T>,
    payload: Bytes,
}

impl<T: RpcService> RpcCaller<T> {
    /// A caller on `client`'s channel, sending `payload` bytes each call.
    pub(crate) fn new(client: BenchClient<T>, payload: usize) -> RpcCaller<T> {
        RpcCaller {
            client,
            payload: Bytes::from(vec![0xA5; payload]),
        }
    }
}

impl<T> Caller for RpcCaller<T>
where
    T: RpcService + Send + 'static,
    T::Future: Send,
{
    async fn round(&mut self, tally: &Tally) {
        let started = Instant::now();
        // A `Bytes` clone is a reference count: the request is built the way a real caller
        // holding a buffer would build it.
        let request = Payload {
            body: self.payload.clone(),
        };
        let reply = self.client.echo(request).await.map(Response::into_inner);
        tally_echo(tally, started, self.payload.len(), reply);
    }
}

/// One open `PingPong` call: where to write requests, where the echoes come from.
struct PingPong {
    requests: mpsc::Sender<Payload>,
    replies: Streaming<Payload>,
}

impl PingPong {
    /// Opens the call. The request stream is an mpsc receiver unfolded into a `Stream`: the
    /// caller sends a message only after the previous echo came back, so one slot is enough.
    async fn open(client: &mut BenchClient) -> Result<PingPong, Status> {
        let (requests, receiver) = mpsc::channel::<Payload>(1);
        let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|message| (message, receiver))
        });
        let replies = client.ping_pong(stream).await?.into_inner();
        Ok(PingPong { requests, replies })
    }
}

/// A sockrpc client with one bidirectional `PingPong` stream and one message in flight on it:
/// each round sends the payload and waits for its echo. A stream that fails is reopened on the
/// next round (that round's latency starts once it is open).
pub(crate) struct StreamCaller {
    client: BenchClient,
    payload: Bytes,
    stream: Option<PingPong>,
}

impl std::fmt::Debug for StreamCaller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamCaller")
            .field("payload", &self.payload.len())
            .field("open", &self.stream.is_some())
            .finish()
    }
}

impl StreamCaller {
    /// Opens a stream on `client`'s channel, for rounds of `payload` bytes.
    pub(crate) async fn open(mut client: BenchClient, payload: usize) -> Result<Self, Status> {
        let stream = PingPong::open(&mut client).await?;
        Ok(StreamCaller {
            client,
            payload: Bytes::from(vec![0xA5; payload]),
            stream: Some(stream),
        })
    }
}

impl Caller for StreamCaller {
    async fn round(&mut self, tally: &Tally) {
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => match PingPong::open(&mut self.client).await {
                Ok(stream) => self.stream.insert(stream),
                Err(status) => {
                    tally.err(1, || {
                        format!(
                            "reopening the stream: {}",
                            crate::load::status_error(&status)
                        )
                    });
                    return;
                }
            },
        };
        let started = Instant::now();
        let request = Payload {
            body: self.payload.clone(),
        };
        if stream.requests.send(request).await.is_err() {
            // The request stream was dropped: the call is over. Its status is the reply's.
            self.stream = None;
            tally.err(1, || {
                "the stream ended before the request went out".to_owned()
            });
            return;
        }
        let reply = match stream.replies.message().await {
            Ok(Some(reply)) => Ok(reply),
            Ok(None) => Err(Status::unavailable("the stream ended without the echo")),
            Err(status) => Err(status),
        };
        if reply.is_err() {
            self.stream = None;
        }
        tally_echo(tally, started, self.payload.len(), reply);
    }
}
