//! The server's reasons for refusing a connection, logged at WARN, at most one per kind every
//! 10 s.

use super::*;

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
