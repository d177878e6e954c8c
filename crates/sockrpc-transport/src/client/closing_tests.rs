//! [`ClientConnection::closing`] wakes as the server sends the connection away (GOAWAY), while
//! a call is still in flight on it and the connection itself is still up: what a balanced
//! channel's health watch waits for, to end its stream so that the draining server is not kept
//! waiting for it.

use super::scripted_tests::{connected, scripted};
use bytes::{Bytes, BytesMut};
use sockrpc_protocol::frame;
use sockrpc_protocol::{Code, MethodPath, Request};
use std::future::Future;
use std::task::Context;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_wakes_on_goaway_with_a_call_still_in_flight() {
    // The server says hello, then GOAWAY (call 1 was received) when told to, and keeps the
    // socket open, never answering.
    let mut away = BytesMut::new();
    frame::encode_goaway(&mut away, 1, Code::Unavailable, "shutting down");
    let (addr, go) = scripted(100, away).await;
    let conn = connected(addr).await;
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
