//! Waiters that will never come back for their place leave it. A place kept by a call that
//! is gone is room (or a turn) handed to no one: the room queue keeps room for a woken call
//! until it comes back, and the turns of the line for the write buffer pass on only when their
//! holders do (`turns.rs`). Each schedule here is made deterministic by a server by hand (or
//! an in-memory pipe) that says and reads only what the test lets it.

use super::scripted_tests::{connected, scripted};
use super::ClientConnection;
use crate::wake_count::counting_waker;
use bytes::{Bytes, BytesMut};
use sockrpc_protocol::frame::{self, PREFACE};
use sockrpc_protocol::{Code, Limits, MetadataMap, MethodPath, Request};
use std::future::Future;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

/// Polls `cond` every few milliseconds, for at most 10 s.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not within 10 s: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_call_refused_on_its_second_look_gives_its_room_back() {
    // The server takes one call in flight, then, once a second call waits for room, announces
    // a metadata limit that call is over (a SETTINGS may come again: `inbound.rs`).
    let mut again = BytesMut::new();
    frame::encode_settings_with_limit(&mut again, 0, 1, 64);
    let (addr, tighten) = scripted(1, again).await;
    let conn = connected(addr).await;
    let shared = std::sync::Arc::clone(conn.shared());
    eventually("the server's limit of one call is known", || {
        conn.max_calls() == Some(1)
    })
    .await;
    let path = MethodPath::from_static("/t.S/Hold");
    let (_, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    // The one call in flight (the server never answers it).
    let mut first = Box::pin(conn.unary(path.clone(), Request::new(Bytes::from_static(b"a"))));
    assert!(first.as_mut().poll(&mut cx).is_pending());
    assert_eq!(conn.in_flight(), 1);
    // A call with a kilobyte of metadata waits for room: nothing of it is sent yet.
    let mut big = Request::new(Bytes::from_static(b"b"));
    big.metadata_mut()
        .insert_str("x-big", &"v".repeat(1024))
        .expect("metadata");
    let mut second = Box::pin(conn.unary(path.clone(), big));
    assert!(second.as_mut().poll(&mut cx).is_pending());
    assert_eq!(conn.waiting(), 1, "the second call waits for room");
    // The server now refuses metadata past 64 bytes.
    tighten.send(()).expect("server still there");
    eventually("the server's metadata limit is known", || {
        shared
            .server_metadata
            .load(std::sync::atomic::Ordering::Relaxed)
            == 64
    })
    .await;
    // The first call ends: its room is kept for the second, which looks again and is refused.
    drop(first);
    assert_eq!(shared.lock().room.reserved(), 1, "room kept for the second");
    match second.as_mut().poll(&mut cx) {
        Poll::Ready(Err(status)) => assert_eq!(status.code(), Code::ResourceExhausted),
        other => panic!("the second call is over the server's limit: {other:?}"),
    }
    {
        let state = shared.lock();
        assert_eq!(
            (state.room.len(), state.room.reserved()),
            (0, 0),
            "the refused call left its place (or the room kept for it) behind"
        );
    }
    drop(second);
    // So a third call goes at once: the connection has room for one.
    let mut third = Box::pin(conn.unary(path, Request::new(Bytes::from_static(b"c"))));
    assert!(third.as_mut().poll(&mut cx).is_pending());
    assert_eq!(
        (conn.in_flight(), conn.waiting()),
        (1, 0),
        "the third call waits for room kept for a call that is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_that_half_closes_while_in_line_for_room_leaves_the_line() {
    // A server that reads nothing until told to, then everything.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (drain, drained) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        let mut hello = BytesMut::new();
        hello.extend_from_slice(&PREFACE);
        frame::encode_settings(&mut hello, 0, 0);
        if socket.write_all(&hello).await.is_err() || drained.await.is_err() {
            return;
        }
        let mut sink = vec![0u8; 256 * 1024];
        while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
    });
    let socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let conn = ClientConnection::spawn_tcp(socket, Limits::default());
    tokio::time::timeout(Duration::from_secs(10), conn.ready())
        .await
        .expect("handshake in time")
        .expect("handshake");
    let shared = std::sync::Arc::clone(conn.shared());
    let path = MethodPath::from_static("/t.S/Up");
    let metadata = MetadataMap::new();
    let (_, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    // Fill the write buffer past its high-water mark: a message of the largest size per
    // stream (its own window lets one go), until the socket takes no more (bounded: 16).
    let big = Bytes::from(vec![0u8; Limits::default().max_message_size]);
    let mut hogs = Vec::new();
    for _ in 0..16 {
        if shared.lock().outbox.buffered() > crate::outbox::HIGH_WATER {
            break;
        }
        let (mut sender, receiver) = conn
            .open_stream(&path, &metadata, None, None)
            .expect("open");
        assert!(
            matches!(sender.poll_ready(&mut cx), Poll::Ready(Ok(()))),
            "under the mark"
        );
        sender.send(&mut cx, &big).expect("sent");
        hogs.push((sender, receiver));
    }
    assert!(
        shared.lock().outbox.buffered() > crate::outbox::HIGH_WATER,
        "the buffer is past its mark"
    );
    // Four senders take a place in line for room, then half-close without sending (their
    // callers had nothing more to say) and are kept, with their calls, which go on.
    let mut closed = Vec::new();
    for _ in 0..crate::turns::WOKEN_AT_ONCE {
        let (mut sender, receiver) = conn
            .open_stream(&path, &metadata, None, None)
            .expect("open");
        assert!(sender.poll_ready(&mut cx).is_pending(), "past the mark");
        sender.close();
        closed.push((sender, receiver));
    }
    // A fifth waits behind them.
    let (mut waiting, _receiver) = conn
        .open_stream(&path, &metadata, None, None)
        .expect("open");
    let (woken, waiting_waker) = counting_waker();
    assert!(waiting
        .poll_ready(&mut Context::from_waker(&waiting_waker))
        .is_pending());
    // The server reads: the buffer drains, and turns go out.
    drain.send(()).expect("server still there");
    eventually(
        "the sender waiting behind half-closed ones gets a turn once the buffer drained",
        || woken.count() > 0,
    )
    .await;
    assert!(
        matches!(
            waiting.poll_ready(&mut Context::from_waker(&waiting_waker)),
            Poll::Ready(Ok(()))
        ),
        "woken with a turn, it goes"
    );
    drop((hogs, closed));
}
