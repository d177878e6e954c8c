//! Stream senders waiting for room (the write buffer to drain, or connection credit) are
//! forgotten as their calls end. A server that holds the connection window (a stream whose
//! handler does not read) sends no credit back while other streams open, wait and give up: each
//! of those left its waker behind, one per call, for as long as the window stayed spent.

use super::ClientConnection;
use crate::wake_count::counting_waker;
use bytes::{Bytes, BytesMut};
use sockrpc_protocol::frame::{self, CAP_CONNECTION_WINDOW, CONNECTION_WINDOW, PREFACE};
use sockrpc_protocol::{Limits, MetadataMap, MethodPath};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server by hand on loopback: announces the connection window, then reads and drops
/// everything, and never gives credit back.
async fn stingy_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        let mut hello = BytesMut::new();
        hello.extend_from_slice(&PREFACE);
        frame::encode_settings(&mut hello, CAP_CONNECTION_WINDOW, 4096);
        if socket.write_all(&hello).await.is_err() {
            return;
        }
        let mut sink = vec![0u8; 64 * 1024];
        while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senders_that_gave_up_on_credit_are_not_kept() {
    let addr = stingy_server().await;
    let socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let conn = ClientConnection::spawn_tcp(socket, Limits::default());
    tokio::time::timeout(Duration::from_secs(10), conn.ready())
        .await
        .expect("handshake in time")
        .expect("handshake");
    let path = MethodPath::from_static("/t.S/Up");
    let metadata = MetadataMap::new();
    // Spend the connection window: each stream may send a message while its own window is not
    // all outstanding, so a few large ones do.
    let big = Bytes::from(vec![0u8; Limits::default().max_message_size]);
    let mut hogs = Vec::new();
    let mut spent = 0;
    while spent < CONNECTION_WINDOW {
        let (mut sender, receiver) = conn
            .open_stream(&path, &metadata, None, None)
            .expect("open");
        let sent = tokio::time::timeout(
            Duration::from_secs(10),
            std::future::poll_fn(|cx| match sender.poll_ready(cx) {
                Poll::Ready(Ok(())) => Poll::Ready(sender.send(cx, &big)),
                Poll::Ready(Err(status)) => Poll::Ready(Err(status)),
                Poll::Pending => Poll::Pending,
            }),
        )
        .await
        .expect("room in time");
        sent.expect("sent");
        spent += frame::message_charge(big.len());
        hogs.push((sender, receiver));
    }
    // Streams that wait for credit, each from a task of its own, then give up (their call
    // cancelled, as a caller's timeout does).
    for _ in 0..200 {
        let (mut sender, receiver) = conn
            .open_stream(&path, &metadata, None, None)
            .expect("open");
        let (_, waker) = counting_waker();
        let ready = sender.poll_ready(&mut Context::from_waker(&waker));
        assert!(ready.is_pending(), "the window is spent: {ready:?}");
        drop(sender);
        drop(receiver);
    }
    let waiting = conn.shared().lock().credit_waiters.len();
    assert!(
        waiting <= 1,
        "{waiting} wakers kept for senders whose calls ended"
    );
    drop(hogs);
}
