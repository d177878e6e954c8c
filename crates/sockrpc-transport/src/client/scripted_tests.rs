//! A server by hand for the client's tests: it says and reads only what a test lets it, so a
//! schedule (a SETTINGS that changes, a GOAWAY while a call is in flight) is deterministic.

use super::ClientConnection;
use bytes::BytesMut;
use sockrpc_protocol::frame::{self, PREFACE};
use sockrpc_protocol::Limits;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

/// Accepts one connection on loopback, reads and drops whatever comes, sends its preface and a
/// SETTINGS announcing `max_calls`, then `then` once the returned sender is used (or dropped
/// unused: nothing), and keeps the socket open, never answering.
pub(super) async fn scripted(
    max_calls: usize,
    then: BytesMut,
) -> (SocketAddr, oneshot::Sender<()>) {
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
        frame::encode_settings(&mut hello, 0, max_calls);
        if writer.write_all(&hello).await.is_err() || gone.await.is_err() {
            return;
        }
        let _ = writer.write_all(&then).await;
        std::future::pending::<()>().await;
    });
    (addr, go)
}

/// A connection to `addr`, its handshake done (within 10 s).
pub(super) async fn connected(addr: SocketAddr) -> ClientConnection {
    let socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let conn = ClientConnection::spawn_tcp(socket, Limits::default());
    tokio::time::timeout(Duration::from_secs(10), conn.ready())
        .await
        .expect("handshake in time")
        .expect("handshake");
    conn
}
