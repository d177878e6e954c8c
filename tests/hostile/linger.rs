//! A server closing a connection politely (here, for idleness) sends its GOAWAY and FIN, then
//! lingers, reading and dropping what the client still sends, so the client's late calls meet
//! the GOAWAY rather than a reset (`server/linger.rs`). A client that never closes its end, and
//! keeps writing, gets no more than the linger: the server lets it go, and reads nothing into
//! memory it keeps.

use crate::raw::{server_frames, GOAWAY, PREFACE};
use crate::support::{bounded, EchoImpl, BOUND};
use sockrpc_tests::echo::echo_server::EchoServer;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_closes_is_let_go_after_the_linger() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        sockrpc::Server::builder()
            .idle_timeout(Some(Duration::from_millis(100)))
            .add_service(EchoServer::new(EchoImpl::default()))
            .serve_with_listener(listener),
    );
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(PREFACE).await.expect("preface");

    // Idle: the server says why (GOAWAY), then FIN.
    let mut read = Vec::new();
    bounded("the server's goodbye", stream.read_to_end(&mut read))
        .await
        .expect("read to the FIN");
    let frames = server_frames(&read);
    assert!(
        frames.iter().any(|f| f.kind == GOAWAY),
        "no GOAWAY before the FIN: {frames:?}"
    );

    // The client keeps its end open and writes on: 64 KiB a time, the server drops them all.
    // Bounded: 1,000 writes, BOUND.
    let started = Instant::now();
    let junk = vec![0x5a; 64 * 1024];
    let mut written = 0usize;
    let mut closed = None;
    for _ in 0..1_000 {
        match tokio::time::timeout(BOUND, stream.write_all(&junk)).await {
            Ok(Ok(())) => written += junk.len(),
            Ok(Err(err)) => {
                closed = Some(err);
                break;
            }
            Err(_) => panic!("a write stalled: the server stopped reading while lingering"),
        }
        assert!(
            started.elapsed() < BOUND,
            "still open after {written} bytes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let err = closed.expect("the server let the client go");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
        ),
        "{err:?}"
    );
    // It lingered, reading (and dropping) what came after its FIN: a socket closed at once
    // resets the first write after it instead of taking a mebibyte.
    assert!(
        written > 1 << 20,
        "only {written} bytes taken while lingering"
    );
}
