//! tonic's `load_shed.rs`: a server with no room for a call refuses it at once with
//! `RESOURCE_EXHAUSTED` (the handler never runs); with room, the call succeeds. Ported as
//! written (`concurrency_limit_per_connection(n).load_shed(true)`, served with
//! `serve_with_incoming`), then what the two settings mean apart: `load_shed(true)` refuses
//! a call the middleware is not ready for, where without it the call waits its turn; a
//! per-connection limit with it refuses the call past it, where without it a sockrpc client
//! holds the call back until there is room. sockrpc's own `LoadShedLayer` (a limit across
//! connections) and tower's `LoadShedLayer` over a full `ConcurrencyLimitLayer` refuse the
//! same way.

use crate::support::{bounded, channel, serve_layered, wait_until, Running};
use futures_util::stream;
use sockrpc::middleware::limit::LoadShedLayer;
use sockrpc::service::ServerBuilder;
use sockrpc::{Channel, Code, ReadyQueue, Request, Response, Server, Status};
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::{Input, Output};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tower::layer::util::Identity;

/// Counts the calls its handler ran; each waits until `open` is true.
#[derive(Clone)]
struct Svc {
    calls: Arc<AtomicUsize>,
    open: watch::Receiver<bool>,
}

impl Svc {
    /// A service whose handlers wait for the sender to say `true` (dropped: they go on).
    fn gated(open: bool) -> (Svc, watch::Sender<bool>) {
        let (gate, rx) = watch::channel(open);
        let svc = Svc {
            calls: Arc::default(),
            open: rx,
        };
        (svc, gate)
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Test for Svc {
    async fn unary_call(&self, _: Request<Input>) -> Result<Response<Output>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.clone();
        // Err: the gate was dropped, which opens it too.
        let _ = open.wait_for(|open| *open).await;
        Ok(Response::new(Output::default()))
    }
}

/// tonic's `run_service_in_background`: the builder served on a stream of accepted
/// connections; the sender stops it.
async fn run_in_background(builder: ServerBuilder<Identity>) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    // tonic's `TcpListenerStream::new(listener)`.
    let incoming = stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        Some((accepted, listener))
    });
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(builder.serve_with_incoming_shutdown(incoming, async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

async fn tonic_case(limit: usize) -> (Result<(), Status>, usize) {
    let (svc, _gate) = Svc::gated(true);
    let builder = Server::builder()
        .concurrency_limit_per_connection(limit)
        .load_shed(true)
        .add_service(TestServer::new(svc.clone()));
    let (addr, _stop) = run_in_background(builder).await;
    let mut client = TestClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let result = bounded("call", client.unary_call(Request::new(Input {})))
        .await
        .map(|_| ());
    (result, svc.calls())
}

#[tokio::test]
async fn service_resource_exhausted() {
    let (result, calls) = tonic_case(0).await;
    let err = result.expect_err("no room");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(calls, 0, "the handler ran");
}

#[tokio::test]
async fn service_resource_not_exhausted() {
    let (result, calls) = tonic_case(1).await;
    result.expect("room for one");
    assert_eq!(calls, 1);
}

/// A server with one call held in its handler, and the channel it came on.
struct Held {
    server: Running,
    channel: Channel,
    held: JoinHandle<Result<(), Status>>,
    gate: watch::Sender<bool>,
}

impl Held {
    async fn start<L>(builder: ServerBuilder<L>, svc: &Svc, gate: watch::Sender<bool>) -> Held
    where
        L: sockrpc::service::server::Finish + Send + Sync + 'static,
    {
        let server = serve_layered(builder);
        let channel = channel(server.addr).await;
        let mut first = TestClient::new(channel.clone());
        let held = tokio::spawn(async move { first.unary_call(Input {}).await.map(|_| ()) });
        wait_until("the first call in its handler", || svc.calls() == 1).await;
        Held {
            server,
            channel,
            held,
            gate,
        }
    }

    /// A second call on the same channel while the first is held: its result.
    async fn refused_beside(&self) -> Status {
        let mut second = TestClient::new(self.channel.clone());
        bounded("second call", second.unary_call(Input {}))
            .await
            .expect_err("no room for a second call")
    }

    /// A second call on the same channel, still waiting once `waiting` says so, and done
    /// once the first is let go.
    async fn waits_beside(&self, waiting: impl FnMut() -> bool) {
        let mut second = TestClient::new(self.channel.clone());
        let mut call = Box::pin(second.unary_call(Input {}));
        tokio::select! {
            result = &mut call => panic!("the second call did not wait: {result:?}"),
            () = wait_until("the second call waiting", waiting) => {}
        }
        self.gate.send_replace(true);
        bounded("second call", call)
            .await
            .expect("the second call gets its turn");
    }

    async fn end(self) {
        self.gate.send_replace(true);
        bounded("first call", self.held)
            .await
            .expect("joined")
            .expect("the held call succeeds");
        self.server.stop().await;
    }
}

#[tokio::test]
async fn load_shed_refuses_a_call_past_the_per_connection_limit() {
    let (svc, gate) = Svc::gated(false);
    // The settings in the other order than tonic's test: both are settled when serving starts.
    let builder = Server::builder()
        .load_shed(true)
        .concurrency_limit_per_connection(1)
        .add_service(TestServer::new(svc.clone()));
    let held = Held::start(builder, &svc, gate).await;
    let err = held.refused_beside().await;
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("load shedding"), "{err:?}");
    assert_eq!(svc.calls(), 1, "the refused call's handler ran");
    held.end().await;
}

#[tokio::test]
async fn without_load_shed_a_call_past_the_per_connection_limit_waits_for_room() {
    let (svc, gate) = Svc::gated(false);
    let builder = Server::builder()
        .concurrency_limit_per_connection(1)
        .add_service(TestServer::new(svc.clone()));
    let held = Held::start(builder, &svc, gate).await;
    // Nothing on the server shows a call the client holds back: it must not end meanwhile.
    let mut polls = 0;
    held.waits_beside(|| {
        polls += 1;
        polls > 20
    })
    .await;
    assert_eq!(svc.calls(), 2);
    held.end().await;
}

#[tokio::test]
async fn load_shed_refuses_a_call_a_full_layer_is_not_ready_for() {
    let (svc, gate) = Svc::gated(false);
    let builder = Server::builder()
        .load_shed(true)
        .layer(tower::limit::ConcurrencyLimitLayer::new(1))
        .add_service(TestServer::new(svc.clone()));
    let held = Held::start(builder, &svc, gate).await;
    let err = held.refused_beside().await;
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("load shedding"), "{err:?}");
    assert_eq!(svc.calls(), 1, "the refused call's handler ran");
    held.end().await;
}

#[tokio::test]
async fn without_load_shed_a_call_a_full_layer_is_not_ready_for_waits() {
    let (svc, gate) = Svc::gated(false);
    // Long enough a wait that only the gate decides when the call runs.
    let queue = ReadyQueue::new(16, Duration::from_secs(30));
    let builder = Server::builder()
        .load_shed(false)
        .ready_queue(queue.clone())
        .layer(tower::limit::ConcurrencyLimitLayer::new(1))
        .add_service(TestServer::new(svc.clone()));
    let held = Held::start(builder, &svc, gate).await;
    held.waits_beside(|| queue.waiting() == 1).await;
    assert_eq!(svc.calls(), 2);
    held.end().await;
}

async fn call_with_layer_limit(limit: usize) -> (Result<(), Status>, usize) {
    let (svc, _gate) = Svc::gated(true);
    let server = serve_layered(
        Server::builder()
            .layer(LoadShedLayer::new(limit))
            .add_service(TestServer::new(svc.clone())),
    );
    let mut client = TestClient::new(channel(server.addr).await);
    let result = bounded("call", client.unary_call(Input {}))
        .await
        .map(|_| ());
    server.stop().await;
    (result, svc.calls())
}

#[tokio::test]
async fn load_shed_layer_resource_exhausted() {
    let (result, calls) = call_with_layer_limit(0).await;
    let err = result.expect_err("no room");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(calls, 0, "the handler ran");
}

#[tokio::test]
async fn load_shed_layer_resource_not_exhausted() {
    let (result, calls) = call_with_layer_limit(1).await;
    result.expect("room for one");
    assert_eq!(calls, 1);
}

#[tokio::test]
async fn tower_load_shed_over_a_full_concurrency_limit() {
    let (svc, _gate) = Svc::gated(true);
    let server = serve_layered(
        Server::builder()
            .layer(tower::load_shed::LoadShedLayer::new())
            .layer(tower::limit::ConcurrencyLimitLayer::new(0))
            .add_service(TestServer::new(svc.clone())),
    );
    let mut client = TestClient::new(channel(server.addr).await);
    let err = bounded("call", client.unary_call(Input {}))
        .await
        .expect_err("no room");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(svc.calls(), 0, "the handler ran");
    server.stop().await;
}
