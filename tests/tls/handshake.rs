use super::*;

// Handshakes that succeed

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls13_call_succeeds_and_the_handler_sees_no_client_certificate() {
    let ca = Ca::new("test CA");
    let server = TestServer::start(server_tls(ServerTlsConfig::new(
        ca.leaf(SERVER_NAMES).identity(),
    )))
    .await;
    let client = ClientTlsConfig::new().ca_certificates(ca.certificates());
    let channel = Channel::connect(server.endpoint(client))
        .await
        .expect("connect");
    for _ in 0..20 {
        assert_eq!(call(&channel).await.expect("call"), "Hello tls!");
    }
    let peers = server.peers();
    assert_eq!(peers.len(), 20);
    let peer = peers[0].clone().expect("the handler sees a TLS peer");
    assert!(peer.certificates().is_empty(), "no client certificate");
    assert_eq!(peer.version(), TlsVersion::Tls13);
    // IP addresses are not sent in SNI.
    assert_eq!(peer.server_name(), None);
    // One Arc per connection, shared by every call on it.
    for other in &peers {
        assert!(Arc::ptr_eq(&peer, other.as_ref().expect("peer")));
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_call_succeeds() {
    let ca = Ca::new("test CA");
    let server = TestServer::start(server_tls(ServerTlsConfig::new(
        ca.leaf(SERVER_NAMES).identity(),
    )))
    .await;
    let client = ClientTlsConfig::new()
        .ca_certificates(ca.certificates())
        .tls12(true);
    // A client that only speaks 1.2 (through rustls directly, as a foreign client would).
    let tls12_only = rustls_client(&ca, &[b"sockrpc/1"], true);
    let stream = TcpStream::connect(server.addr).await.expect("tcp");
    let name = sockrpc::tls::pki_types::ServerName::try_from("localhost").expect("name");
    let session = tokio_rustls::TlsConnector::from(tls12_only)
        .connect(name, stream)
        .await
        .expect("a TLS 1.2 handshake");
    assert_eq!(
        session.get_ref().1.protocol_version(),
        Some(sockrpc::tls::rustls::ProtocolVersion::TLSv1_2)
    );
    drop(session);
    assert_eq!(
        greet(server.endpoint(client)).await.expect("call"),
        "Hello tls!"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_over_a_unix_socket() {
    let ca = Ca::new("test CA");
    let dir = std::env::temp_dir().join(format!("sockrpc-tls-uds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("tls.sock");
    let listener = sockrpc::transport::bind_unix(&path).expect("bind");
    let service = Hi::default();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(
        Server::builder()
            .tls(ServerTlsConfig::new(ca.leaf(&["localhost"]).identity()))
            .expect("tls")
            .add_service(GreeterServer::new(service.clone()))
            .serve_unix_with_listener_and_shutdown(listener, async {
                let _ = stopped.await;
            }),
    );
    // A Unix endpoint's host is "localhost": that is the name checked.
    let endpoint =
        Endpoint::unix(&path).tls(ClientTlsConfig::new().ca_certificates(ca.certificates()));
    assert_eq!(greet(endpoint).await.expect("call"), "Hello tls!");
    let peers = service.peers.lock().expect("peers").clone();
    assert_eq!(
        peers[0].as_ref().expect("tls peer").server_name(),
        Some("localhost")
    );
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// The server's certificate refused

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ca_is_refused() {
    let ca = Ca::new("server CA");
    let other = Ca::new("another CA");
    let server = TestServer::start(server_tls(ServerTlsConfig::new(
        ca.leaf(SERVER_NAMES).identity(),
    )))
    .await;
    let started = Instant::now();
    let result =
        greet(server.endpoint(ClientTlsConfig::new().ca_certificates(other.certificates()))).await;
    expect_unavailable(result, started, "not signed by a CA this client trusts");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_server_name_is_refused_and_an_override_fixes_it() {
    let ca = Ca::new("test CA");
    let server = TestServer::start(server_tls(ServerTlsConfig::new(
        ca.leaf(&["api.example.test"]).identity(),
    )))
    .await;
    let trust = ClientTlsConfig::new().ca_certificates(ca.certificates());
    let started = Instant::now();
    let result = greet(server.endpoint(trust.clone())).await;
    expect_unavailable(result, started, "not valid for the name");
    // The same server, checked against the name its certificate carries (and sent in SNI).
    let named = trust.server_name("api.example.test");
    assert_eq!(
        greet(server.endpoint(named)).await.expect("call"),
        "Hello tls!"
    );
    let peers = server.peers();
    assert_eq!(
        peers.last().cloned().flatten().expect("peer").server_name(),
        Some("api.example.test")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_server_certificate_is_refused() {
    let ca = Ca::new("test CA");
    let now = std::time::SystemTime::now();
    let expired = ca.leaf_valid(
        SERVER_NAMES,
        now - Duration::from_secs(30 * 86_400),
        now - Duration::from_secs(86_400),
    );
    let server = TestServer::start(server_tls(ServerTlsConfig::new(expired.identity()))).await;
    let started = Instant::now();
    let result =
        greet(server.endpoint(ClientTlsConfig::new().ca_certificates(ca.certificates()))).await;
    expect_unavailable(result, started, "has expired");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
