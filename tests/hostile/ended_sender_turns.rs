//! A client's stream senders parked for its write buffer (`turns.rs`) whose streams the server
//! then ends (END arrives while they wait) must not keep their places in line: the turns they
//! would be handed as the buffer drains would go to senders that never come back, and with
//! `WOKEN_AT_ONCE` of them holding every turn, the senders parked behind them were never woken
//! while the ended streams' receivers were kept (unread) by the application.
//!
//! The same for senders dropped while they wait, their calls going on (receivers kept).
//!
//! Here: a raw server that greets, learns the streams' call ids from their OPENs, then stops
//! reading while unary calls fill the client's buffer past its mark. Four senders park, then a
//! fifth behind them; the first four give up (the server ends their streams, or their senders
//! are dropped; their receivers are kept, not read), then the server reads everything. The
//! fifth must get its turn.

use crate::raw::{block, OPEN, PREFACE};
use crate::server_probe::{end, next_frame, settings};
use crate::support::{bounded, BOUND};
use bytes::Bytes;
use sockrpc::transport::ClientConnection;
use sockrpc::{Limits, MetadataMap, MethodPath};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

/// Streams whose senders park first, then give up: as many as turns go out at once.
const ENDED: usize = 4;
/// Unary requests that fill the client's write buffer past its 8 MiB mark (the server reads
/// nothing meanwhile; what the kernel's buffers take is far less than this).
const FILLERS: usize = 8;
const FILLER_SIZE: usize = 3 * 1024 * 1024;

/// How the first senders give up their wait.
#[derive(Clone, Copy, PartialEq)]
enum GiveUp {
    /// The server ends their streams (END): their `poll_ready` fails.
    Ended,
    /// Their tasks are aborted, dropping the senders mid-wait.
    Dropped,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senders_behind_streams_ended_while_parked_get_their_turn() {
    senders_behind_give_ups_get_their_turn(GiveUp::Ended).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senders_behind_senders_dropped_while_parked_get_their_turn() {
    senders_behind_give_ups_get_their_turn(GiveUp::Dropped).await;
}

async fn senders_behind_give_ups_get_their_turn(give_up: GiveUp) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (ids_tx, ids_rx) = oneshot::channel::<Vec<u32>>();
    let (end_tx, end_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        let hello = [PREFACE.as_slice(), &settings(64, 0)].concat();
        if socket.write_all(&hello).await.is_err() {
            return;
        }
        let mut buf = Vec::new();
        let mut ids = Vec::new();
        while ids.len() < ENDED + 1 {
            match next_frame(&mut socket, &mut buf).await {
                Some((OPEN, _, id, _)) => ids.push(id),
                Some(_) => {}
                None => return,
            }
        }
        let ended: Vec<u32> = ids[..ENDED].to_vec();
        let _ = ids_tx.send(ids);
        // Not reading now: the client's buffer fills. Then the first streams end.
        if end_rx.await.is_err() {
            return;
        }
        let ends: Vec<u8> = ended
            .iter()
            .flat_map(|&id| end(id, 0, b"", b"", &block(&[])))
            .collect();
        // Dropped senders' streams go on: their places must go with the senders alone.
        if give_up == GiveUp::Ended && socket.write_all(&ends).await.is_err() {
            return;
        }
        // Then everything the client wrote is read, until it closes.
        let mut sink = vec![0u8; 256 * 1024];
        for _ in 0..1_000_000u32 {
            if !matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {
                return;
            }
        }
    });

    let socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let conn = ClientConnection::spawn_tcp(socket, Limits::default());
    bounded("handshake", conn.ready()).await.expect("handshake");
    let path = MethodPath::from_static("/sockrpc.test.stream.Streamer/Collect");
    let metadata = MetadataMap::new();
    let mut streams = Vec::new();
    for _ in 0..=ENDED {
        streams.push(
            conn.open_stream(&path, &metadata, None, None)
                .expect("open"),
        );
    }
    let ids = bounded("the OPENs read", ids_rx).await.expect("ids");
    assert_eq!(ids.len(), ENDED + 1);

    // Fill the buffer past the mark: the server reads none of it yet.
    let unary = MethodPath::from_static("/sockrpc.test.Echo/Echo");
    let fillers: Vec<_> = (0..FILLERS)
        .map(|_| {
            let call = conn.unary(
                unary.clone(),
                sockrpc::Request::new(Bytes::from(vec![7u8; FILLER_SIZE])),
            );
            tokio::spawn(async move {
                let _ = call.await;
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Each sender waits for room in a task of its own; first the ones to be ended, in order.
    let (senders, mut receivers): (Vec<_>, Vec<_>) = streams.into_iter().unzip();
    let mut tasks = Vec::new();
    for mut sender in senders {
        let parked = Arc::new(AtomicBool::new(false));
        let seen = Arc::clone(&parked);
        tasks.push((
            parked,
            tokio::spawn(async move {
                std::future::poll_fn(|cx| match sender.poll_ready(cx) {
                    Poll::Pending => {
                        seen.store(true, Ordering::SeqCst);
                        Poll::Pending
                    }
                    Poll::Ready(ready) => Poll::Ready(ready.is_ok()),
                })
                .await
            }),
        ));
        // In line in this order.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (i, (parked, _)) in tasks.iter().enumerate() {
        assert!(
            parked.load(Ordering::SeqCst),
            "sender {i} did not wait for room"
        );
    }
    let last = tasks.pop().expect("the sender behind");
    if give_up == GiveUp::Dropped {
        for (_, task) in &tasks {
            task.abort();
        }
    }
    // The server ends the first streams (`GiveUp::Ended`: their senders learn it and give up),
    // then reads everything.
    end_tx.send(()).expect("server alive");
    for (i, (_, task)) in tasks.into_iter().enumerate() {
        match bounded("a first sender's task", task).await {
            Ok(ready) => assert!(!ready, "sender {i}: its stream ended"),
            Err(err) => assert!(err.is_cancelled() && give_up == GiveUp::Dropped),
        }
    }
    // The application keeps the ended streams' receivers (unread) and the last one's.
    let ready = tokio::time::timeout(BOUND * 2, last.1)
        .await
        .expect("the sender parked behind those that gave up got its turn as the buffer drained")
        .expect("task");
    assert!(ready, "the last stream is open: its sender may send");
    receivers.clear();
    drop(conn);
    for filler in fillers {
        filler.abort();
    }
    server.abort();
}
