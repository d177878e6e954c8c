//! Refusals said clearly: certificates refused with their names and dates in UTC, and the
//! server's reasons logged at WARN, at most one per kind every 10 s.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_certificates_are_named_with_their_dates_in_utc() {
    let _ = warnings();
    // The server's certificate expired: the client names it and gives the dates.
    let ca = Ca::new("dates server CA");
    let now = std::time::SystemTime::now();
    let expired = ca.leaf_valid(
        SERVER_NAMES,
        now - Duration::from_secs(30 * 86_400),
        now - Duration::from_secs(86_400),
    );
    let server = TestServer::start(server_tls(ServerTlsConfig::new(expired.identity()))).await;
    let started = Instant::now();
    let status = expect_unavailable(
        greet(server.endpoint(ClientTlsConfig::new().ca_certificates(ca.certificates()))).await,
        started,
        "the server's certificate has expired (certificate \"CN=sockrpc test leaf\" (issued by \
         \"CN=dates server CA\"): not valid after 2",
    );
    assert!(status.message().contains(" UTC, now 2"), "{status:?}");
    assert!(!status.message().contains("UNIX"), "{status:?}");
    server.stop().await;

    // A name the certificate does not carry: which names it does carry.
    let server = TestServer::start(server_tls(ServerTlsConfig::new(
        ca.leaf(&["api.example.test"]).identity(),
    )))
    .await;
    let started = Instant::now();
    let status = expect_unavailable(
        greet(server.endpoint(ClientTlsConfig::new().ca_certificates(ca.certificates()))).await,
        started,
        "not valid for the name",
    );
    assert!(
        status.message().contains("api.example.test") && status.message().contains("127.0.0.1"),
        "{status:?}"
    );
    server.stop().await;

    // A client's expired certificate: the server's log names it, in UTC.
    let clients = Ca::new("dates expired clients CA");
    let server = TestServer::start(server_tls(
        ServerTlsConfig::new(ca.leaf(SERVER_NAMES).identity()).client_ca(clients.certificates()),
    ))
    .await;
    let old = clients.leaf_valid(
        &["client.test"],
        now - Duration::from_secs(30 * 86_400),
        now - Duration::from_secs(86_400),
    );
    let client = ClientTlsConfig::new()
        .ca_certificates(ca.certificates())
        .identity(old.identity());
    let started = Instant::now();
    expect_unavailable(
        greet(server.endpoint(client)).await,
        started,
        "refused this client's certificate: it has expired",
    );
    let lines = warned(&[
        "TLS handshake failed: the client's certificate has expired",
        "(issued by \"CN=dates expired clients CA\"): not valid after 2",
        " UTC, now 2",
    ])
    .await;
    assert_eq!(lines.len(), 1, "{}", warnings());
    assert!(!lines[0].contains("UNIX"), "{}", lines[0]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_warned_once_per_kind_not_once_per_connection() {
    let _ = warnings();
    let ca = Ca::new("flood CA");
    let server = TestServer::start(server_tls(ServerTlsConfig::new(
        ca.leaf(SERVER_NAMES).identity(),
    )))
    .await;
    // A scanner's flood: twenty connections that speak HTTP.
    let mut scanners = Vec::new();
    for _ in 0..20 {
        let mut stream = TcpStream::connect(server.addr).await.expect("tcp");
        scanners.push(stream.local_addr().expect("addr").to_string());
        stream
            .write_all(b"GET / HTTP/1.1\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(PROMPT, stream.read(&mut buf))
            .await
            .expect("closed");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    // A plain-text sockrpc client: another kind, warned too.
    let mut plain = TcpStream::connect(server.addr).await.expect("tcp");
    let plain_addr = plain.local_addr().expect("addr").to_string();
    plain
        .write_all(&sockrpc::protocol::frame::PREFACE)
        .await
        .expect("write");
    let lines = warned(&[&plain_addr, "plain-text sockrpc client on a TLS port"]).await;
    assert_eq!(lines.len(), 1, "{}", warnings());

    let log = warnings();
    let flood: Vec<&str> = log
        .lines()
        .filter(|line| scanners.iter().any(|addr| line.contains(addr.as_str())))
        .collect();
    assert_eq!(
        flood.len(),
        1,
        "one warning for the whole flood: {flood:#?}"
    );
    assert!(
        flood[0].contains(&scanners[0])
            && flood[0].contains("not TLS: connection closed: the first bytes were [47, 45, 54"),
        "{flood:?}"
    );
    server.stop().await;
}
