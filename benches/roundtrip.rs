//! One unary round trip, client to handler and back: over an in-memory duplex (client and server
//! on one current-thread runtime: the framework's own cost, no wake-ups across threads) and over
//! loopback TCP (client on a current-thread runtime, server on a 2-worker one, as `sockrpc bench`
//! measures).
//!
//! The service is written by hand over [`Call`] (benches have no build script for generated
//! code) and echoes the request bytes; the client calls the [`Channel`] as a tower service.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sockrpc::service::{Body, BoxFuture};
use sockrpc::transport::ClientConnection;
use sockrpc::{
    Call, Channel, Endpoint, Limits, MethodPath, Request, Response, Router, Server, Status,
};
use std::future::ready;
use std::hint::black_box;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::runtime::Runtime;
use tower_service::Service;

const SIZES: [(&str, usize); 2] = [("64B", 64), ("4KiB", 4096)];
const PATH: &str = "/bench.Echo/Echo";

/// Echoes the request message.
#[derive(Debug, Clone, Copy)]
struct EchoRoute;

impl Service<Call> for EchoRoute {
    type Response = Response<Body>;
    type Error = Status;
    type Future = BoxFuture<Result<Response<Body>, Status>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> Self::Future {
        let (_, request) = call.into_parts();
        Box::pin(ready(Ok(Response::new(request.into_inner()))))
    }
}

fn router() -> Router {
    Router::new().add_named("bench.Echo", EchoRoute)
}

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Times `iters` sequential calls inside one `block_on`.
fn run_calls(rt: &Runtime, channel: &Channel, payload: &Bytes, iters: u64) -> std::time::Duration {
    let mut channel = channel.clone();
    rt.block_on(async {
        let started = Instant::now();
        for _ in 0..iters {
            let request = Request::new(Body::once(payload.clone()));
            let call = Call::new(MethodPath::from_static(PATH), request);
            let response = channel.call(call).await.expect("echo");
            black_box(response);
        }
        started.elapsed()
    })
}

fn duplex(c: &mut Criterion) {
    let rt = current_thread();
    let mut group = c.benchmark_group("roundtrip/duplex");
    group.throughput(Throughput::Elements(1));
    for (name, size) in SIZES {
        let (client_io, server_io) = tokio::io::duplex(256 * 1024);
        rt.spawn(async move {
            Server::builder()
                .router(router())
                .serve_connection(server_io, None)
                .await;
        });
        let channel = {
            let _enter = rt.enter();
            let conn = ClientConnection::spawn_io(client_io, Limits::default(), None);
            Channel::from_connection(Endpoint::new("in-memory", 0), conn)
        };
        let payload = Bytes::from(vec![0xa5u8; size]);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| run_calls(&rt, &channel, &payload, iters))
        });
    }
    group.finish();
}

fn tcp(c: &mut Criterion) {
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("server runtime");
    let listener = server_rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    server_rt.spawn(async move {
        let signal = async {
            let _ = stopped.await;
        };
        Server::builder()
            .router(router())
            .serve_with_listener_and_shutdown(listener, signal)
            .await
    });

    let rt = current_thread();
    let channel = rt.block_on(Channel::connect(addr)).expect("connect");
    let mut group = c.benchmark_group("roundtrip/tcp");
    group.throughput(Throughput::Elements(1));
    for (name, size) in SIZES {
        let payload = Bytes::from(vec![0xa5u8; size]);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| run_calls(&rt, &channel, &payload, iters))
        });
    }
    group.finish();
    drop(channel);
    let _ = stop.send(());
    drop(rt);
    server_rt.shutdown_background();
}

/// Private, so the generated `pub fn benches` needs no doc comment.
mod group {
    use super::*;
    criterion_group!(benches, duplex, tcp);
}
criterion_main!(group::benches);
