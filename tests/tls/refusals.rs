//! Refusals said clearly on both sides: ALPN mismatches answered `no_application_protocol`
//! (never read as a refused certificate), certificates refused with their names and dates in
//! UTC, and the server's reasons logged at WARN, at most one per kind every 10 s.

use super::*;
use sockrpc::tls::rustls;

/// Connects a bare rustls client offering `alpn`; the TLS error it gets, and its own address.
async fn rustls_handshake(
    addr: SocketAddr,
    ca: &Ca,
    alpn: &[&[u8]],
) -> (Option<rustls::Error>, SocketAddr) {
    let stream = TcpStream::connect(addr).await.expect("tcp");
    let me = stream.local_addr().expect("addr");
    let name = sockrpc::tls::pki_types::ServerName::try_from("localhost").expect("name");
    let result = tokio_rustls::TlsConnector::from(rustls_client(ca, alpn, false))
        .connect(name, stream)
        .await;
    let err = result.err().map(|err| {
        err.get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .cloned()
            .unwrap_or_else(|| panic!("not a TLS error: {err}"))
    });
    (err, me)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_alpn_sockrpc_1_gets_no_application_protocol_and_the_server_says_why() {
    let _ = warnings();
    let ca = Ca::new("alpn CA");
    for (alpn, logged) in [
        (
            &[&b"h2"[..]][..],
            "the client offered ALPN [\"h2\"], this server speaks sockrpc/1",
        ),
        (
            &[&b"h2"[..], &b"http/1.1"[..]][..],
            "the client offered ALPN [\"h2\", \"http/1.1\"], this server speaks sockrpc/1",
        ),
        (
            &[][..],
            "the client offered no ALPN, this server speaks sockrpc/1",
        ),
    ] {
        // A server each, so that each refusal is the first of its kind there (logged at WARN).
        let server = TestServer::start(server_tls(ServerTlsConfig::new(
            ca.leaf(SERVER_NAMES).identity(),
        )))
        .await;
        let (err, me) = rustls_handshake(server.addr, &ca, alpn).await;
        assert_eq!(
            err,
            Some(rustls::Error::AlertReceived(
                rustls::AlertDescription::NoApplicationProtocol
            )),
            "{alpn:?}"
        );
        let lines = warned(&[&me.to_string(), "no ALPN sockrpc/1", logged]).await;
        assert_eq!(lines.len(), 1, "{alpn:?}: {}", warnings());
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_s_client_offering_h2_gets_no_application_protocol() {
    let ca = Ca::new("s_client CA");
    let server = TestServer::start(server_tls(ServerTlsConfig::new(
        ca.leaf(SERVER_NAMES).identity(),
    )))
    .await;
    let connect = format!("127.0.0.1:{}", server.addr.port());
    let run = tokio::task::spawn_blocking(move || {
        std::process::Command::new("openssl")
            .args(["s_client", "-connect", &connect, "-alpn", "h2"])
            .stdin(std::process::Stdio::null())
            .output()
    });
    let output = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("s_client finishes")
        .expect("task");
    let Ok(output) = output else {
        eprintln!("no openssl on this machine: test skipped");
        server.stop().await;
        return;
    };
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(said.contains("no application protocol"), "{said}");
    server.stop().await;
}

/// A foreign TLS server on loopback: one handshake per connection with `config`, then closed.
async fn foreign_server(config: rustls::ServerConfig) -> (SocketAddr, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(stream).await {
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    (addr, task)
}

/// A server that has no certificate for anyone: rustls answers `access_denied`, as sockrpc
/// servers before this one did to a client without ALPN sockrpc/1.
#[derive(Debug)]
struct NoCertificate;

impl rustls::server::ResolvesServerCert for NoCertificate {
    fn resolve(
        &self,
        _: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sockrpc_client_never_blames_its_certificate_for_what_is_not_about_it() {
    use sockrpc::tls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    let ca = Ca::new("foreign CA");
    let leaf = ca.leaf(SERVER_NAMES);
    let builder = || {
        rustls::ServerConfig::builder_with_provider(ring_provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
    };
    // A server that speaks h2 only.
    let mut h2 = builder()
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).expect("cert")],
            PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).expect("key"),
        )
        .expect("config");
    h2.alpn_protocols = vec![b"h2".to_vec()];
    let (addr, task) = foreign_server(h2).await;
    let endpoint = |tls: ClientTlsConfig| {
        Endpoint::new("127.0.0.1", addr.port())
            .tls(tls)
            .connect_timeout(Duration::from_secs(10))
    };
    let trust = ClientTlsConfig::new().ca_certificates(ca.certificates());
    let me = ClientTlsConfig::new()
        .ca_certificates(ca.certificates())
        .identity(ca.leaf(&["client.test"]).identity());
    for client in [trust.clone(), me.clone()] {
        let started = Instant::now();
        let status = expect_unavailable(
            greet(endpoint(client)).await,
            started,
            "does not speak sockrpc/1",
        );
        assert!(
            !status.message().contains("refused this client"),
            "{status:?}"
        );
    }
    task.abort();

    // A server with no certificate for this client: access_denied. A client with no
    // certificate of its own does not blame one.
    let (addr, task) = foreign_server(builder().with_cert_resolver(Arc::new(NoCertificate))).await;
    let endpoint = |tls: ClientTlsConfig| {
        Endpoint::new("127.0.0.1", addr.port())
            .tls(tls)
            .connect_timeout(Duration::from_secs(10))
    };
    let started = Instant::now();
    let status = expect_unavailable(
        greet(endpoint(trust)).await,
        started,
        "the server denied access during the handshake, before any certificate of this client",
    );
    assert!(
        !status.message().contains("refused this client"),
        "{status:?}"
    );
    // One that has a certificate hears both possibilities.
    let started = Instant::now();
    expect_unavailable(
        greet(endpoint(me)).await,
        started,
        "it refused this client's certificate, or does not serve this client at all",
    );
    task.abort();
}

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
        scanners.push(peer_field(stream.local_addr().expect("addr")));
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
    let plain_addr = peer_field(plain.local_addr().expect("addr"));
    plain
        .write_all(&sockrpc::protocol::frame::PREFACE)
        .await
        .expect("write");
    let lines = warned(&[&plain_addr, "plain-text sockrpc client on a TLS port"]).await;
    assert_eq!(lines.len(), 1, "{}", warnings());

    let log = warnings();
    let flood: Vec<&str> = log
        .lines()
        // Of this kind as well as from these ports: another test's connection may have used one
        // of them before (a closed client port is free again at once).
        .filter(|line| line.contains("not TLS:"))
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
