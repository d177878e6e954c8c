//! [`ClientConnection::closing`] wakes as the server sends the connection away (GOAWAY), while
//! a call is still in flight on it and the connection itself is still up: what a balanced
//! channel's health watch waits for, to end its stream so that the draining server is not kept
//! waiting for it.

use super::ClientConnection;
use bytes::{Bytes, BytesMut};
use sockrpc_protocol::frame::{self, PREFACE};
use sockrpc_protocol::{Code, Limits, MethodPath, Request};
use std::future::Future;
use std::task::Context;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_wakes_on_goaway_with_a_call_still_in_flight() {
    // The server says hello, then GOAWAY (call 1 was received) when told to, and keeps the
    // socket open, never answering.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (go, gone) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let Ok((socket, _)) = listener.accept().await else {
            return;
        };
        let (mut reader, mut writer) = socket.into_split();
        tokio::spawn(async move {
            let mut sink = vec![0u8; 64 * 1024];
            while matches!(reader.read(&mut sink).await, Ok(n) if n > 0) {}
        });
        let mut hello = BytesMut::new();
        hello.extend_from_slice(&PREFACE);
        frame::encode_settings(&mut hello, 0, 100);
        if writer.write_all(&hello).await.is_err() || gone.await.is_err() {
            return;
        }
        let mut away = BytesMut::new();
        frame::encode_goaway(&mut away, 1, Code::Unavailable, "shutting down");
        let _ = writer.write_all(&away).await;
        std::future::pending::<()>().await;
    });
    let socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let conn = ClientConnection::spawn_tcp(socket, Limits::default());
    tokio::time::timeout(Duration::from_secs(10), conn.ready())
        .await
        .expect("handshake in time")
        .expect("handshake");
    let path = MethodPath::from_static("/t.S/Hold");
    let mut call = Box::pin(conn.unary(path, Request::new(Bytes::from_static(b"a"))));
    let waker = std::task::Waker::noop();
    assert!(call
        .as_mut()
        .poll(&mut Context::from_waker(waker))
        .is_pending());
    // Not before the GOAWAY.
    let early = tokio::time::timeout(Duration::from_millis(100), conn.closing()).await;
    assert!(
        early.is_err(),
        "closing before the server sent the connection away"
    );
    go.send(()).expect("server alive");
    tokio::time::timeout(Duration::from_secs(10), conn.closing())
        .await
        .expect("closing woke on the GOAWAY");
    assert!(conn.was_sent_away());
    assert!(!conn.is_terminated(), "still up for its call in flight");
    assert!(call
        .as_mut()
        .poll(&mut Context::from_waker(waker))
        .is_pending());
}
