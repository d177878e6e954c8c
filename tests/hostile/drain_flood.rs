//! A client abusing a server's graceful shutdown: once the GOAWAY came, it floods the draining
//! connection with 20,000 new unary calls (about 1 MiB) and never reads again. Each call the
//! server reads is refused "not processed" (END with `NOT_PROCESSED`), never run, and the
//! server stops by its grace period (1 s here) though the client takes nothing meanwhile (its
//! receive buffer is 4 KiB: the refusals wait in the server's buffers). A probe that found nothing: it would catch a drain that ran
//! calls opened after the GOAWAY, or that waited on a client that never reads.

use crate::raw::{
    concat, echo_message, frame, goaway, open, server_frames, END, END_STREAM, MESSAGE, PREFACE,
};
use crate::support::{bounded, start_serving, EchoImpl, BOUND};
use prost::Message as _;
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::SleepRequest;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

const SLEEP_PATH: &[u8] = b"/sockrpc.test.Echo/Sleep";
/// END's flag: refused before it started.
const NOT_PROCESSED: u8 = 0x04;
/// Calls the client floods the draining connection with.
const FLOOD: u32 = 20_000;
/// The server's grace period.
const GRACE: Duration = Duration::from_secs(1);

/// Reads until a GOAWAY arrived: what was read.
async fn until_goaway(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    bounded("the GOAWAY", async {
        loop {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed before the GOAWAY: {:?}", server_frames(&got));
            got.extend_from_slice(&buf[..n]);
            if goaway(&server_frames(&got)).is_some() {
                return;
            }
        }
    })
    .await;
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_flooding_a_draining_connection_are_refused_and_the_drain_ends_by_its_grace() {
    let sleeping = Arc::new(Notify::new());
    let service = EchoImpl {
        sleeping: Arc::clone(&sleeping),
    };
    let mut server = start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .grace_period(GRACE)
            .add_service(EchoServer::new(service))
            .serve_with_listener_and_shutdown(listener, shutdown)
    });
    // A small receive buffer: the refusals the client does not read soon fill it, and wait in
    // the server's buffers.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut stream = bounded("connect", socket.connect(server.addr))
        .await
        .expect("connect");
    let started = sleeping.notified();
    let sleep = SleepRequest {
        millis: 300,
        ..Default::default()
    }
    .encode_to_vec();
    let first = concat(&[
        PREFACE,
        &open(1, SLEEP_PATH, &[]),
        &frame(MESSAGE, END_STREAM, 1, &sleep),
    ]);
    stream.write_all(&first).await.expect("write");
    bounded("the handler starts", started).await;

    let stopping = Instant::now();
    let _ = server.stop.take().expect("not stopped yet").send(());
    let mut got = until_goaway(&mut stream).await;

    // The flood, written by a task of its own: the server stops reading once its refusals
    // fill its write buffer, and the write ends when the server closes.
    let (mut reader, mut writer) = stream.into_split();
    let flood = tokio::spawn(async move {
        for batch in 0..FLOOD / 1_000 {
            let mut bytes = Vec::new();
            for i in 0..1_000 {
                let id = 3 + 2 * (batch * 1_000 + i);
                bytes.extend_from_slice(&open(id, crate::raw::ECHO_PATH, &[]));
                bytes.extend_from_slice(&echo_message(id, u64::from(id), b"late"));
            }
            if writer.write_all(&bytes).await.is_err() {
                return;
            }
        }
        // Keep our side open: a FIN would end the connection (and the drain) at once.
        tokio::time::sleep(BOUND).await;
    });

    // Nothing read while the server drains: it must stop by its grace period regardless.
    let task = &mut server.task;
    bounded("the server stops", task)
        .await
        .expect("the server task did not panic")
        .expect("the server stopped cleanly");
    let took = stopping.elapsed();
    assert!(took < GRACE + BOUND, "stopped after {took:?}");
    crate::support::assert_no_worker_panics();

    // Now read what reached the client before the server closed: refusals only. (The sleeping
    // call's answer, made after them, waited behind them in the server's write buffer.)
    let mut buf = vec![0u8; 64 * 1024];
    let read = bounded("the rest", async {
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    });
    read.await;
    flood.abort();
    let frames = server_frames(&got);
    let mut refused = 0;
    for f in frames.iter().filter(|f| f.call_id > 1) {
        assert_eq!(f.kind, END, "a call opened after the GOAWAY ran: {f:?}");
        assert_ne!(
            f.flags & NOT_PROCESSED,
            0,
            "call {}: not refused",
            f.call_id
        );
        refused += 1;
    }
    assert!(refused > 0, "no refusal reached the client: {frames:?}");
    eprintln!("{refused} calls refused, server stopped after {took:?}");
}
