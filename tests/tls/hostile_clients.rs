//! Hostile TLS clients against the server: many handshakes stopped midway, a ClientHello
//! dripped a byte at a time, a session that never sends the sockrpc preface, and records that
//! do not decrypt after the handshake. Each is closed within its bound, the garbled one with a
//! reason logged at WARN, and real clients are served all the while.

use super::*;
use sockrpc::tls::rustls;

/// A real ClientHello (offering ALPN `sockrpc/1`), as the bytes a client sends first.
pub(crate) fn client_hello(ca: &Ca) -> Vec<u8> {
    let name = sockrpc::tls::pki_types::ServerName::try_from("localhost").expect("name");
    let config = rustls_client(ca, &[sockrpc::tls::ALPN_PROTOCOL], false);
    let mut conn = rustls::ClientConnection::new(config, name).expect("client");
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).expect("hello");
    hello
}

/// Reads until `stream` ends (or errs): how long after `started` that was, if within `bound`.
pub(crate) async fn closed_within(stream: &mut TcpStream, bound: Duration) -> Option<Duration> {
    let started = Instant::now();
    tokio::time::timeout(bound, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

async fn server_with_timeout(ca: &Ca, timeout: Duration) -> TestServer {
    let tls = server_tls(ServerTlsConfig::new(ca.leaf(SERVER_NAMES).identity()));
    TestServer::start_with(Server::builder().tls_handle(tls).handshake_timeout(timeout)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_stopped_midway_are_closed_by_the_timeout_while_others_are_served() {
    let ca = Ca::new("stopped handshakes CA");
    let server = server_with_timeout(&ca, STALLED_TIMEOUT).await;
    let hello = client_hello(&ca);
    // 48 clients: half send half a ClientHello, half a whole one and then nothing more.
    let mut stalled = Vec::new();
    for i in 0..48 {
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        let part = if i % 2 == 0 {
            hello.len() / 2
        } else {
            hello.len()
        };
        stream.write_all(&hello[..part]).await.expect("write");
        stalled.push(stream);
    }
    let started = Instant::now();
    let trust = ClientTlsConfig::new().ca_certificates(ca.certificates());
    for _ in 0..3 {
        assert_eq!(
            greet(server.endpoint(trust.clone())).await.expect("served"),
            "Hello tls!"
        );
    }
    let served = started.elapsed();
    assert!(served < SERVED_WITHIN, "served after {served:?}");
    for stream in &mut stalled {
        let closed = closed_within(stream, STALLED_TIMEOUT + PROMPT).await;
        assert!(closed.is_some(), "a stalled handshake was left open");
    }
    let elapsed = started.elapsed();
    assert!(elapsed < STALLED_TIMEOUT + PROMPT, "{elapsed:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_hello_dripped_a_byte_at_a_time_gets_one_timeout_in_all() {
    let ca = Ca::new("dripped hello CA");
    let server = server_with_timeout(&ca, Duration::from_millis(1000)).await;
    let hello = client_hello(&ca);
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let started = Instant::now();
    // One byte every 20 ms: each byte well inside the timeout, the whole well past it.
    let mut sent = 0;
    for byte in &hello {
        if stream.write_all(&[*byte]).await.is_err() {
            break;
        }
        sent += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
        if started.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    let closed = closed_within(&mut stream, PROMPT).await;
    let elapsed = started.elapsed();
    eprintln!(
        "sent {sent} of {} bytes; closed after {elapsed:?}",
        hello.len()
    );
    assert!(closed.is_some());
    assert!(
        sent < hello.len(),
        "the whole hello went in: not closed at the timeout"
    );
    assert!(
        elapsed < Duration::from_millis(1000) + PROMPT,
        "{elapsed:?}"
    );
    server.stop().await;
}

/// A TLS session to `addr` offering ALPN `sockrpc/1`, handshake done.
async fn session(addr: SocketAddr, ca: &Ca) -> tokio_rustls::client::TlsStream<TcpStream> {
    let stream = TcpStream::connect(addr).await.expect("tcp");
    let name = sockrpc::tls::pki_types::ServerName::try_from("localhost").expect("name");
    tokio_rustls::TlsConnector::from(rustls_client(ca, &[sockrpc::tls::ALPN_PROTOCOL], false))
        .connect(name, stream)
        .await
        .expect("handshake")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_never_sends_the_preface_is_closed_by_the_timeout() {
    let ca = Ca::new("no preface CA");
    let server = server_with_timeout(&ca, Duration::from_millis(1000)).await;
    let mut tls = session(server.addr, &ca).await;
    let started = Instant::now();
    let ended = tokio::time::timeout(PROMPT + Duration::from_secs(1), async {
        let mut buf = [0u8; 256];
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "left open without a preface");
    assert!(started.elapsed() >= Duration::from_millis(800));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_that_do_not_decrypt_close_that_connection_with_a_reason_logged() {
    let ca = Ca::new("garbled records CA");
    let _ = warnings();
    // Each on a server of its own: a server warns once per kind every 10 s.
    for garbage in [
        // An application-data record whose tag cannot be right: bad_record_mac.
        [&[0x17u8, 0x03, 0x03, 0x00, 0x40][..], &[0x5a; 0x40][..]].concat(),
        // Not TLS at all.
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
    ] {
        let server = server_with_timeout(&ca, Duration::from_secs(10)).await;
        let trust = ClientTlsConfig::new().ca_certificates(ca.certificates());
        let witness = Channel::connect(server.endpoint(trust))
            .await
            .expect("witness");
        assert_eq!(call(&witness).await.expect("before"), "Hello tls!");
        let mut tls = session(server.addr, &ca).await;
        tls.write_all(&sockrpc::protocol::frame::PREFACE)
            .await
            .expect("preface");
        tls.flush().await.expect("flush");
        let me = peer_field(tls.get_ref().0.local_addr().expect("addr"));
        tls.get_mut().0.write_all(&garbage).await.expect("garbage");
        let closed = closed_within(&mut tls.into_inner().0, PROMPT).await;
        assert!(closed.is_some(), "the garbled connection was left open");
        let lines = warned(&[&me]).await;
        assert_eq!(lines.len(), 1, "no reason logged for {me}: {}", warnings());
        assert!(lines[0].contains("TLS"), "{}", lines[0]);
        assert_eq!(call(&witness).await.expect("meanwhile"), "Hello tls!");
        server.stop().await;
    }
}
