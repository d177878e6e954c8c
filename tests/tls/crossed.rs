use super::*;

// Plain text and TLS crossed, handshakes that do not happen

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_client_to_a_tls_server_fails_at_once() {
    let ca = Ca::new("test CA");
    let server = TestServer::start(server_tls(ServerTlsConfig::new(
        ca.leaf(SERVER_NAMES).identity(),
    )))
    .await;
    let started = Instant::now();
    let result = greet(server.plain_endpoint()).await;
    expect_unavailable(result, started, "requires TLS");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_client_is_answered_for_the_call_it_opened() {
    // A lazy channel connects as its first call begins, so its OPEN follows the preface: the
    // server must answer that call. It ended call 1 at once, and now and then that END
    // overtook the OPEN: the call then failed as never processed, went again after the
    // reconnect backoff (a second) and heard the reason second-hand. The race made certain:
    // the preface alone, a pause, then an OPEN with id 3, which the server ends.
    let ca = Ca::new("test CA");
    let server = TestServer::start(server_tls(ServerTlsConfig::new(
        ca.leaf(SERVER_NAMES).identity(),
    )))
    .await;
    let mut raw = TcpStream::connect(server.addr).await.expect("connect");
    raw.write_all(b"SOCKRPC\x01").await.expect("preface");
    tokio::time::sleep(Duration::from_millis(30)).await;
    let path = b"/helloworld.Greeter/SayHello";
    let mut body = 0u64.to_be_bytes().to_vec();
    body.extend_from_slice(&(path.len() as u16).to_be_bytes());
    body.extend_from_slice(path);
    body.extend_from_slice(&0u16.to_be_bytes());
    let mut open = (body.len() as u32).to_be_bytes().to_vec();
    open.extend_from_slice(&[1, 0, 0, 0]);
    open.extend_from_slice(&3u32.to_be_bytes());
    open.extend_from_slice(&body);
    raw.write_all(&open).await.expect("open");
    let mut got = Vec::new();
    let _ = tokio::time::timeout(PROMPT, raw.read_to_end(&mut got)).await;
    // After the server's preface, its first frame: END (kind 4) for call 3.
    assert!(got.len() >= 8 + 12, "{got:?}");
    let head = &got[8..20];
    assert_eq!(head[4], 4, "an END first: {got:?}");
    assert_eq!(&head[8..12], &3u32.to_be_bytes(), "for call 3: {got:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_to_a_plain_server_fails_at_once() {
    let ca = Ca::new("test CA");
    let server = TestServer::start_with(Server::builder()).await;
    let started = Instant::now();
    let result =
        greet(server.endpoint(ClientTlsConfig::new().ca_certificates(ca.certificates()))).await;
    expect_unavailable(result, started, "plain-text sockrpc, not TLS");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_that_never_completes_is_closed_by_the_timeout() {
    let ca = Ca::new("test CA");
    let tls = server_tls(ServerTlsConfig::new(ca.leaf(SERVER_NAMES).identity()));
    let server = TestServer::start_with(
        Server::builder()
            .tls_handle(tls)
            .handshake_timeout(STALLED_TIMEOUT),
    )
    .await;
    let _ = warnings();
    // One client starts a TLS record and stops; another connects and sends nothing. Timed
    // from before they connect: the server cannot start their timeout earlier.
    let started = Instant::now();
    let mut stalled = TcpStream::connect(server.addr).await.expect("connect");
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x00])
        .await
        .expect("write");
    let mut silent = TcpStream::connect(server.addr).await.expect("connect");

    // Meanwhile the server accepts and serves others: handshakes run on their own tasks.
    let trust = ClientTlsConfig::new().ca_certificates(ca.certificates());
    assert_eq!(
        greet(server.endpoint(trust)).await.expect("served"),
        "Hello tls!"
    );
    // Before the stalled handshakes' timeout: they did not hold up accepting (a server that
    // ran handshakes one at a time would serve this one after both timed out, 8 s).
    let served = started.elapsed();
    assert!(served < SERVED_WITHIN, "served after {served:?}");

    for stream in [&mut stalled, &mut silent] {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(STALLED_TIMEOUT + PROMPT, stream.read(&mut buf))
            .await
            .expect("closed by the handshake timeout, not left hanging");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= STALLED_TIMEOUT && elapsed < STALLED_TIMEOUT + PROMPT,
        "closed after {elapsed:?}"
    );
    // Logged at WARN, where an operator looks (the first of its kind; the second is counted).
    let stalled_addr = peer_field(stalled.local_addr().expect("addr"));
    let silent_addr = peer_field(silent.local_addr().expect("addr"));
    let lines = warned(&["TLS handshake not completed in time", "within 4s"]).await;
    let ours: Vec<&String> = lines
        .iter()
        .filter(|line| line.contains(&stalled_addr) || line.contains(&silent_addr))
        .collect();
    assert_eq!(ours.len(), 1, "{}", warnings());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_that_does_not_offer_sockrpc_1_is_refused_at_handshake() {
    let ca = Ca::new("test CA");
    let server = TestServer::start(server_tls(ServerTlsConfig::new(
        ca.leaf(SERVER_NAMES).identity(),
    )))
    .await;
    for alpn in [&[][..], &[&b"h2"[..]][..]] {
        let stream = TcpStream::connect(server.addr).await.expect("tcp");
        let name = sockrpc::tls::pki_types::ServerName::try_from("localhost").expect("name");
        let result = tokio_rustls::TlsConnector::from(rustls_client(&ca, alpn, false))
            .connect(name, stream)
            .await;
        let err = result.expect_err("refused at handshake");
        let tls = err
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<sockrpc::tls::rustls::Error>())
            .unwrap_or_else(|| panic!("not a TLS error: {err}"));
        // `no_application_protocol`, never `access_denied`, which reads as a refused
        // certificate (rustls picks the certificate before it looks at ALPN).
        assert!(
            matches!(
                tls,
                sockrpc::tls::rustls::Error::AlertReceived(
                    sockrpc::tls::rustls::AlertDescription::NoApplicationProtocol
                )
            ),
            "{alpn:?}: {tls}"
        );
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// UDP beside TLS

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_is_off_with_tls_unless_plain_text_is_allowed() {
    let ca = Ca::new("test CA");
    let identity = ca.leaf(SERVER_NAMES).identity();
    let listener =
        sockrpc::transport::bind_tcp("127.0.0.1:0".parse().expect("addr"), &Default::default())
            .expect("bind");
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("udp");
    let refused = Server::builder()
        .tls(ServerTlsConfig::new(identity))
        .expect("tls")
        .udp(udp, Default::default())
        .add_service(GreeterServer::new(Hi::default()))
        .serve_with_listener_and_shutdown(listener, std::future::pending())
        .await
        .expect_err("a TLS server does not serve plain-text UDP unless told to");
    assert_eq!(refused.kind(), std::io::ErrorKind::InvalidInput);
    assert!(refused.to_string().contains("UDP cannot carry TLS"));

    // The client: a TLS endpoint with a UDP policy sends nothing over UDP.
    let server = TestServer::start(server_tls(ServerTlsConfig::new(
        ca.leaf(SERVER_NAMES).identity(),
    )))
    .await;
    let endpoint = server
        .endpoint(ClientTlsConfig::new().ca_certificates(ca.certificates()))
        .udp("127.0.0.1:9".parse().expect("addr"));
    let channel = Channel::connect(endpoint).await.expect("connect");
    assert_eq!(call(&channel).await.expect("call over TLS"), "Hello tls!");
    assert!(channel.udp_stats().is_none(), "UDP must be off");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_that_passes_while_the_handshake_is_under_way_is_deadline_exceeded() {
    // A server that accepts and never answers the ClientHello: the client is still connecting
    // (no attempt has failed) when the call's deadline passes. grpc-go says DEADLINE_EXCEEDED
    // there, fail-fast or not; the connect timeout running out first is UNAVAILABLE.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        // Bounded: the test makes two connections.
        for _ in 0..8 {
            match listener.accept().await {
                Ok((stream, _)) => held.push(stream),
                Err(_) => break,
            }
        }
    });
    let ca = Ca::new("test CA");
    let tls = ClientTlsConfig::new().ca_certificates(ca.certificates());
    let endpoint = |connect: Duration| {
        Endpoint::new("127.0.0.1", addr.port())
            .tls(tls.clone())
            .connect_timeout(connect)
    };

    let channel = Channel::lazy(endpoint(Duration::from_secs(10))).expect("endpoint");
    let mut request = Request::new(HelloRequest { name: "tls".into() });
    request.set_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let status = GreeterClient::new(channel)
        .say_hello(request)
        .await
        .expect_err("never answered");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        status.message().contains("waiting for a connection"),
        "{status:?}"
    );
    assert!(started.elapsed() < PROMPT, "took {:?}", started.elapsed());

    let channel = Channel::lazy(endpoint(Duration::from_millis(300))).expect("endpoint");
    let mut request = Request::new(HelloRequest { name: "tls".into() });
    request.set_timeout(Duration::from_secs(5));
    let status = GreeterClient::new(channel)
        .say_hello(request)
        .await
        .expect_err("never answered");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    holder.abort();
}
