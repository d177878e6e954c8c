//! A TCP re-issue of a UDP call passes the middleware and names the method its UDP call ran.

use super::support::*;

use bytes::Bytes;
use prost::Message as _;
use sockrpc::service::udp::{UdpClient, UdpClientConfig, UdpOutcome};
use sockrpc::transport::ClientConnection;
use sockrpc::{Body, Call, Channel, Code, Endpoint, Limits, Request, Response, Server, Status};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::{EchoReply, EchoRequest, GrowRequest};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tower::Service;

// ---------------------------------------------------------------------------------------------
// (4) A TCP re-issue passes the middleware and names the method its UDP call ran.

const AUTH_KEY: &str = "x-auth";
const AUTH_TOKEN: &str = "let-me-in";

/// What the auth layer saw of one call.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    path: String,
    transport: Option<sockrpc::transport::TransportKind>,
    reissue: bool,
    admitted: bool,
}

/// A tower layer that refuses every call without `x-auth: let-me-in`, and logs what it saw.
#[derive(Clone)]
struct RequireAuth<S> {
    inner: S,
    log: Arc<Mutex<Vec<Seen>>>,
}

type CallResult = Result<Response<Body>, Status>;

impl<S> Service<Call> for RequireAuth<S>
where
    S: Service<Call, Response = Response<Body>, Error = Status>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Status;
    type Future = Pin<Box<dyn Future<Output = CallResult> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: Call) -> Self::Future {
        let admitted = call.request().metadata().get_str(AUTH_KEY) == Some(AUTH_TOKEN);
        self.log.lock().expect("lock").push(Seen {
            path: call.path().to_owned(),
            transport: call.transport(),
            reissue: call.replay().is_some(),
            admitted,
        });
        if !admitted {
            return Box::pin(std::future::ready(Err(Status::unauthenticated(
                "no x-auth",
            ))));
        }
        Box::pin(self.inner.call(call))
    }
}

async fn auth_server(udp: bool) -> (Running, Arc<Mutex<Vec<Seen>>>) {
    let handlers = Counting::default();
    let log = Arc::new(Mutex::new(Vec::new()));
    let layer = {
        let log = Arc::clone(&log);
        tower::layer::layer_fn(move |inner| RequireAuth {
            inner,
            log: Arc::clone(&log),
        })
    };
    let builder = Server::builder()
        .layer(layer)
        .add_service(EchoServer::new(handlers.clone()));
    (Running::start(builder, handlers, udp).await, log)
}

fn authorized<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert_str(AUTH_KEY, AUTH_TOKEN)
        .expect("valid");
    request.set_timeout(BOUND);
    request
}

fn encoded(request: &Request<impl prost::Message>) -> Request<Bytes> {
    Request::from_parts(
        request.metadata().clone(),
        Bytes::from(request.get_ref().encode_to_vec()),
        request.timeout(),
    )
}

/// The status a call failed with; a success is reported by its size, not its bytes.
fn failure(what: &str, result: Result<Response<Bytes>, Status>) -> Status {
    match result {
        Ok(response) => panic!("{what}: succeeded with {} bytes", response.get_ref().len()),
        Err(status) => status,
    }
}

async fn tcp_connection(addr: SocketAddr) -> ClientConnection {
    let stream = bounded("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    let conn = ClientConnection::spawn_tcp(stream, Limits::default());
    bounded("handshake", conn.ready()).await.expect("ready");
    conn
}

/// A re-issue is a call like any other to the middleware: without credentials the auth layer
/// refuses it `UNAUTHENTICATED` (the cached answer is not handed out); with them, naming
/// another method than the UDP call ran is `INVALID_ARGUMENT`; naming the right one returns
/// the cached answer without running the handler again. A server with no UDP refuses any
/// re-issue `FAILED_PRECONDITION`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_reissue_passes_the_middleware_and_must_name_the_method_the_udp_call_ran() {
    let (server, log) = auth_server(true).await;
    let udp = UdpClient::connect(server.udp.expect("udp"), UdpClientConfig::default())
        .await
        .expect("udp client");
    let grow = encoded(&authorized(GrowRequest { size: 5_000 }));
    let deadline = Some(Instant::now() + BOUND);
    // The hold keeps the call below the client's watermark until the test ends.
    let (udp_call, _hold) = truncated(bounded("udp call", udp.call(&GROW, &grow, deadline)).await);
    assert_eq!(server.handlers.grows.load(Ordering::SeqCst), 1);

    let conn = tcp_connection(server.tcp).await;
    // No credentials: the layer refuses it before the router could answer from the cache.
    let mut anonymous = grow.clone();
    anonymous.metadata_mut().remove(AUTH_KEY);
    let status = failure(
        "an anonymous re-issue",
        bounded("re-issue", conn.reissue(GROW.clone(), anonymous, udp_call)).await,
    );
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    // Credentials, but another method than the UDP call ran.
    let echo = encoded(&authorized(EchoRequest::default()));
    let status = failure(
        "a re-issue naming another method",
        bounded("re-issue", conn.reissue(ECHO.clone(), echo, udp_call)).await,
    );
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    // Credentials and the right method: the cached answer.
    let response = bounded(
        "re-issue",
        conn.reissue(GROW.clone(), grow.clone(), udp_call),
    )
    .await
    .expect("the cached answer");
    let reply = EchoReply::decode(response.get_ref().clone()).expect("EchoReply");
    assert_eq!(reply.payload.len(), 5_000);
    assert_eq!(
        server.handlers.grows.load(Ordering::SeqCst),
        1,
        "never run again"
    );
    assert_eq!(server.handlers.echoes.load(Ordering::SeqCst), 0);

    let seen = log.lock().expect("lock").clone();
    let reissues: Vec<&Seen> = seen.iter().filter(|s| s.reissue).collect();
    assert_eq!(seen.len(), 4, "the UDP call and three re-issues: {seen:?}");
    assert_eq!(reissues.len(), 3, "{seen:?}");
    assert!(
        reissues
            .iter()
            .all(|s| s.transport == Some(sockrpc::transport::TransportKind::Tcp)),
        "{seen:?}"
    );
    assert_eq!(
        reissues.iter().filter(|s| !s.admitted).count(),
        1,
        "{seen:?}"
    );
    server.stop().await;

    // A server that serves no UDP has no cache to answer from.
    let (server, _log) = auth_server(false).await;
    let conn = tcp_connection(server.tcp).await;
    let status = failure(
        "a re-issue to a server without UDP",
        bounded(
            "re-issue",
            conn.reissue(GROW.clone(), grow.clone(), udp_call),
        )
        .await,
    );
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(server.handlers.grows.load(Ordering::SeqCst), 0);
    server.stop().await;
}

/// The same through a `Channel` with `Endpoint::udp`: a truncated reply is fetched over TCP with
/// the caller's metadata, so a legitimate re-issue passes the auth layer, and the handler ran
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_reply_is_fetched_through_the_auth_layer_with_the_callers_credentials() {
    let (server, log) = auth_server(true).await;
    let endpoint = Endpoint::from_uri(&format!("tcp://{}", server.tcp))
        .expect("endpoint")
        .udp(server.udp.expect("udp"))
        .timeout(BOUND);
    let channel = bounded("connect", Channel::connect(endpoint))
        .await
        .expect("connect");
    let mut client = EchoClient::new(channel.clone());
    let reply = bounded("call", client.grow(authorized(GrowRequest { size: 5_000 })))
        .await
        .expect("fetched over TCP")
        .into_inner();
    assert_eq!(reply.payload.len(), 5_000);
    assert_eq!(server.handlers.grows.load(Ordering::SeqCst), 1);
    assert!(channel.udp_stats().expect("udp").truncations >= 1);
    let seen = log.lock().expect("lock").clone();
    assert!(
        seen.iter().any(|s| s.reissue && s.admitted),
        "the re-issue passed the layer: {seen:?}"
    );
    assert!(seen.iter().all(|s| s.admitted), "{seen:?}");

    // Without credentials the UDP call itself is refused by the same layer.
    let status = bounded("call", client.grow(GrowRequest { size: 5_000 }))
        .await
        .expect_err("no credentials");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(server.handlers.grows.load(Ordering::SeqCst), 1);
    server.stop().await;
}

/// A layer that rebuilds every call from its parts, as a layer that rewrites the path or the
/// request may: the `Call`'s re-issue mark does not survive that, but the re-issue must still
/// be answered from the cache, never run again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reissue_rebuilt_by_a_layer_is_still_answered_from_the_cache() {
    let handlers = Counting::default();
    let rebuild = tower::layer::layer_fn(|inner| {
        tower::util::MapRequest::new(inner, |call: Call| {
            let (path, request) = call.into_parts();
            Call::new(path, request)
        })
    });
    let builder = Server::builder()
        .layer(rebuild)
        .add_service(EchoServer::new(handlers.clone()));
    let server = Running::start(builder, handlers, true).await;
    let udp = UdpClient::connect(server.udp.expect("udp"), UdpClientConfig::default())
        .await
        .expect("udp client");
    let grow = encoded(&authorized(GrowRequest { size: 5_000 }));
    let deadline = Some(Instant::now() + BOUND);
    // The hold keeps the call below the client's watermark until the test ends.
    let (udp_call, _hold) = truncated(bounded("udp call", udp.call(&GROW, &grow, deadline)).await);
    let conn = tcp_connection(server.tcp).await;
    let response = bounded("re-issue", conn.reissue(GROW.clone(), grow, udp_call))
        .await
        .expect("the cached answer");
    assert_eq!(
        EchoReply::decode(response.get_ref().clone())
            .expect("EchoReply")
            .payload
            .len(),
        5_000
    );
    assert_eq!(
        server.handlers.grows.load(Ordering::SeqCst),
        1,
        "the rebuilt re-issue did not run the call again"
    );
    // A made-up UDP identity is no licence to run a non-idempotent call either.
    let made_up = encoded(&authorized(GrowRequest { size: 5_000 }));
    let status = failure(
        "a re-issue of a call that never ran",
        bounded(
            "re-issue",
            conn.reissue(GROW.clone(), made_up, (udp_call.0, udp_call.1 + 1000)),
        )
        .await,
    );
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    assert_eq!(server.handlers.grows.load(Ordering::SeqCst), 1);
    server.stop().await;
}

/// The UDP identity of a truncated call, and the hold that keeps its answer on the server.
fn truncated(outcome: UdpOutcome) -> ((u64, u32), sockrpc::service::udp::ReissueHold) {
    match outcome {
        UdpOutcome::Truncated {
            instance,
            call_id,
            hold,
        } => ((instance, call_id), hold),
        other => panic!("expected a truncated reply, got {other:?}"),
    }
}
