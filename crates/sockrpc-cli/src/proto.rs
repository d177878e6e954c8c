//! The generated `sockrpc.bench` package and the one implementation of its service.

/// `proto/bench/bench.proto`.
pub(crate) mod bench {
    #![allow(missing_docs, unreachable_pub, dead_code, clippy::all)]
    sockrpc::include_proto!("sockrpc.bench");
}

use bench::bench_server::Bench;
use bench::Payload;
use sockrpc::{Request, Response, Status};

/// Echoes the payload back. It does nothing else on purpose: the benchmark measures the framework
/// around the handler, and `Bytes` makes the echo a reference count rather than a copy.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EchoService;

impl Bench for EchoService {
    async fn echo(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        Ok(Response::new(request.into_inner()))
    }
}

/// A sockrpc client with one call in flight, on a connection it may share with other callers.
#[derive(Debug)]
pub(crate) struct RpcCaller {
    client: bench::bench_client::BenchClient,
    payload: bytes::Bytes,
}

impl RpcCaller {
    /// A caller on `client`'s connection, sending `payload` bytes each call.
    pub(crate) fn new(client: bench::bench_client::BenchClient, payload: usize) -> RpcCaller {
        RpcCaller {
            client,
            payload: bytes::Bytes::from(vec![0xA5; payload]),
        }
    }
}

impl crate::load::Caller for RpcCaller {
    async fn round(&mut self, tally: &crate::load::Tally) {
        let started = std::time::Instant::now();
        // A `Bytes` clone is a reference count: the request is built the way a real caller
        // holding a buffer would build it.
        let request = Payload {
            body: self.payload.clone(),
        };
        match self.client.echo(request).await {
            Ok(reply) if reply.get_ref().body.len() == self.payload.len() => {
                tally.ok(started.elapsed());
            }
            Ok(reply) => {
                let got = reply.get_ref().body.len();
                let sent = self.payload.len();
                tally.err(1, || format!("echo of {got} bytes for {sent}"));
            }
            Err(status) => tally.err(1, || format!("{}: {}", status.code(), status.message())),
        }
    }
}
