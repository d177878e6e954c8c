//! A client cannot flood the server's log through a handler that panics. A panic fails its own
//! call with `INTERNAL` (`tests/hardening/panics.rs`), and is logged; but a client that found
//! the request that makes a handler panic can send it again and again, and each panic was an
//! ERROR line of its own: 30 panics, 30 lines (tried by hand without the budget in
//! `crates/sockrpc-transport/src/panic.rs`). Now at most one goes out at ERROR per 10 s, the
//! rest at DEBUG, so every panic is still there for whoever asks for DEBUG. Unary handlers that
//! panic at once (on the connection's task), after a wait (in a task of their own), and
//! response streams that panic midway (`pump.rs`) share the budget, and so do UDP calls, the
//! cheapest for a client to send (one datagram each). The panics are raised with
//! `resume_unwind`, which runs no panic hook: the test's output stays readable.

use crate::support::{bounded, start_serving};
use futures_util::StreamExt;
use prost::Message as _;
use sockrpc::service::udp::{ReplyCache, UdpClient, UdpClientConfig, UdpOutcome, UdpServer};
use sockrpc::{Code, MethodPath, Request, Response, Router, Status};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::{Echo, EchoServer};
use sockrpc_tests::echo::{EchoReply, EchoRequest, FailRequest, GrowRequest, SleepRequest};
use sockrpc_tests::logs::LogBuffer;
use sockrpc_tests::mirror::Chunks;
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::streamer_server::{Streamer, StreamerServer};
use sockrpc_tests::stream::{Chunk, ProduceRequest};
use std::sync::Arc;

/// Panicking calls of each kind.
const EACH: u64 = 10;

/// What every panic's log line says (the handler's and the response stream's).
const LOGGED: &str = "panicked; failing its call";

/// Panics without running the panic hook (nothing printed, and not one of the worker panics
/// `support.rs` counts).
fn panic_quietly() -> ! {
    std::panic::resume_unwind(Box::new("a hostile request"))
}

/// `Echo` panics (at once for an odd id, after a wait for an even one); `Grow` answers.
struct Panicky;

impl Echo for Panicky {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        if request.get_ref().id % 2 == 0 {
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        panic_quietly()
    }

    async fn sleep(&self, _: Request<SleepRequest>) -> Result<Response<EchoReply>, Status> {
        Ok(Response::new(EchoReply::default()))
    }

    async fn fail(&self, _: Request<FailRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::internal("fail"))
    }

    async fn grow(&self, request: Request<GrowRequest>) -> Result<Response<EchoReply>, Status> {
        let size = request.into_inner().size.min(1024) as usize;
        Ok(Response::new(EchoReply {
            payload: vec![7; size].into(),
            id: 0,
        }))
    }
}

/// `Produce` streams two chunks, then its stream panics.
struct PanickyStream;

impl Streamer for PanickyStream {
    sockrpc_tests::mirror_methods!(unary, collect, ping_pong, gather);

    type ProduceStream = Chunks;

    async fn produce(&self, _: Request<ProduceRequest>) -> Result<Response<Chunks>, Status> {
        let chunks = futures_util::stream::iter(0..3u64).map(|seq| {
            if seq == 2 {
                panic_quietly();
            }
            Ok(Chunk {
                seq,
                payload: Default::default(),
            })
        });
        Ok(Response::new(chunks.boxed()))
    }
}

/// Installs a capture of every event logged on this thread (the server's tasks log here: the
/// tests run on a current-thread runtime).
fn capture() -> (LogBuffer, tracing::subscriber::DefaultGuard) {
    let log = LogBuffer::new();
    let installed =
        tracing::subscriber::set_default(log.subscriber(tracing::Level::DEBUG).finish());
    (log, installed)
}

/// Asserts that `panics` panics were logged once each, at most one (two, should the test have
/// straddled a 10 s period) at ERROR.
fn assert_logged(log: &LogBuffer, panics: usize) {
    let (errors, debug) = panic_lines(log);
    assert!(
        errors.len() <= 2,
        "{panics} panics, {} ERROR lines: {errors:#?}",
        errors.len()
    );
    assert_eq!(
        errors.len() + debug,
        panics,
        "every panic logged once: {errors:#?} and {debug} at DEBUG"
    );
}

/// The captured lines that report a panic, as (at ERROR, at DEBUG).
fn panic_lines(log: &LogBuffer) -> (Vec<String>, usize) {
    let text = log.text();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(LOGGED)).collect();
    let errors = lines
        .iter()
        .filter(|l| level(l) == Some("ERROR"))
        .map(|l| (*l).to_owned())
        .collect();
    let debug = lines.iter().filter(|l| level(l) == Some("DEBUG")).count();
    (errors, debug)
}

/// A captured line's level: its second word, after the time. Not a search of the whole line:
/// an ERROR line that follows suppressed panics says "logged at DEBUG only", and counted as a
/// DEBUG line too whenever another test of this binary had panicked within the last 10 s.
fn level(line: &str) -> Option<&str> {
    line.split_whitespace().nth(1)
}

// Current-thread: the server's tasks log on this thread, where the capture is installed.
#[tokio::test]
async fn a_flood_of_panicking_calls_is_one_error_line_and_the_rest_debug() {
    let (log, _installed) = capture();
    let server = start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .add_service(EchoServer::new(Panicky))
            .add_service(StreamerServer::new(PanickyStream))
            .serve_with_listener_and_shutdown(listener, shutdown)
    });
    let mut echo = bounded("connect", EchoClient::connect(server.addr.to_string()))
        .await
        .expect("connects");
    for id in 0..2 * EACH {
        let status = bounded(
            "a panicking call",
            echo.echo(EchoRequest {
                id,
                ..Default::default()
            }),
        )
        .await
        .expect_err("a panicking handler fails its call");
        assert_eq!(status.code(), Code::Internal, "{status:?}");
        assert_eq!(status.message(), "handler panicked");
    }
    let mut streamer = bounded("connect", StreamerClient::connect(server.addr.to_string()))
        .await
        .expect("connects");
    for _ in 0..EACH {
        let mut stream = bounded("open Produce", streamer.produce(ProduceRequest::default()))
            .await
            .expect("the stream starts")
            .into_inner();
        let status = bounded("a stream that panics midway", async {
            loop {
                match stream.message().await {
                    Ok(Some(_)) => continue,
                    Ok(None) => panic!("a panicking stream ended cleanly"),
                    Err(status) => return status,
                }
            }
        })
        .await;
        assert_eq!(status.code(), Code::Internal, "{status:?}");
    }
    // The connection serves on.
    let reply = bounded("grow", echo.grow(GrowRequest { size: 10 }))
        .await
        .expect("a call that does not panic is answered")
        .into_inner();
    assert_eq!(reply.payload.len(), 10);

    assert_logged(&log, 3 * EACH as usize);
    server.stop().await;
}

/// One UDP call of `path` with `message`, its deadline [`BOUND`](crate::support::BOUND) away.
async fn udp_call(client: &UdpClient, path: &MethodPath, message: Vec<u8>) -> UdpOutcome {
    let deadline = tokio::time::Instant::now() + crate::support::BOUND;
    let request = Request::new(bytes::Bytes::from(message));
    client.call(path, &request, Some(deadline)).await
}

#[tokio::test]
async fn a_flood_of_panicking_udp_calls_is_one_error_line_and_the_rest_debug() {
    static ECHO: MethodPath = MethodPath::from_static("/sockrpc.test.Echo/Echo");
    static GROW: MethodPath = MethodPath::from_static("/sockrpc.test.Echo/Grow");
    let (log, _installed) = capture();
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let router = Router::new().add_service(EchoServer::new(Panicky));
    let server = UdpServer::new(
        socket,
        sockrpc::server::Dispatcher::new(router),
        Default::default(),
        Arc::new(ReplyCache::default()),
    )
    .expect("udp server");
    let addr = server.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async {
        let _ = stopped.await;
    }));
    let client = UdpClient::connect(addr, UdpClientConfig::default())
        .await
        .expect("client");
    for id in 0..2 * EACH {
        let request = EchoRequest {
            id,
            ..Default::default()
        };
        match bounded(
            "a panicking UDP call",
            udp_call(&client, &ECHO, request.encode_to_vec()),
        )
        .await
        {
            UdpOutcome::Reply(Err(status)) => {
                assert_eq!(status.code(), Code::Internal, "{status:?}");
                assert_eq!(status.message(), "handler panicked");
            }
            other => panic!("a panicking handler fails its call: {other:?}"),
        }
    }
    let grow = GrowRequest { size: 10 }.encode_to_vec();
    match bounded("grow", udp_call(&client, &GROW, grow)).await {
        UdpOutcome::Reply(Ok(answer)) => {
            let reply = EchoReply::decode(answer.into_inner()).expect("EchoReply");
            assert_eq!(reply.payload.len(), 10, "the server serves on");
        }
        other => panic!("a call that does not panic is answered: {other:?}"),
    }
    assert_logged(&log, 2 * EACH as usize);
    let _ = stop.send(());
    bounded("the UDP server stops", task)
        .await
        .expect("task")
        .expect("serve");
}
