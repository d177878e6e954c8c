//! A connection started over a caller's own TCP stream (`ClientConnection::spawn_tcp`, as
//! tonic's `connect_with_connector` users do) turns Nagle off as the pool's own connections do:
//! with it on, the second of two small calls waited for the server's delayed ACK, 40 ms on
//! Linux (seen as a 53 ms call in a test's `one_connection`).

use sockrpc::transport::ClientConnection;
use sockrpc::Limits;

#[tokio::test]
async fn a_caller_s_own_tcp_stream_gets_tcp_nodelay() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let stream =
        std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    // The same socket through a second descriptor: its options are the ones the connection set.
    let seen = stream.try_clone().expect("dup");
    assert!(!seen.nodelay().expect("nodelay"), "Nagle is on by default");
    stream.set_nonblocking(true).expect("nonblocking");
    let stream = tokio::net::TcpStream::from_std(stream).expect("tokio stream");
    let conn = ClientConnection::spawn_tcp(stream, Limits::default());
    assert!(
        seen.nodelay().expect("nodelay"),
        "spawn_tcp sets TCP_NODELAY"
    );
    drop(conn);
}
