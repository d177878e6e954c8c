use super::*;

// Mutual TLS

fn mtls_server(ca: &Ca, client_ca: &Ca, auth: ClientAuth) -> ServerTls {
    server_tls(
        ServerTlsConfig::new(ca.leaf(SERVER_NAMES).identity())
            .client_ca(client_ca.certificates())
            .client_auth(auth),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_client_certificate_reaches_the_handler_and_the_middleware() {
    let ca = Ca::new("server CA");
    let clients = Ca::new("client CA");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let layer = {
        let seen = Arc::clone(&seen);
        tower::layer::layer_fn(move |inner| SeeTls {
            inner,
            seen: Arc::clone(&seen),
        })
    };
    let listener =
        sockrpc::transport::bind_tcp("127.0.0.1:0".parse().expect("addr"), &Default::default())
            .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let service = Hi::default();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(
        Server::builder()
            .tls_handle(mtls_server(&ca, &clients, ClientAuth::Required))
            .layer(layer)
            .add_service(GreeterServer::new(service.clone()))
            .serve_with_listener_and_shutdown(listener, async {
                let _ = stopped.await;
            }),
    );
    let me = clients.leaf(&["client.example.test"]);
    let endpoint = Endpoint::new("127.0.0.1", addr.port()).tls(
        ClientTlsConfig::new()
            .ca_certificates(ca.certificates())
            .server_name("localhost")
            .identity(me.identity()),
    );
    assert_eq!(greet(endpoint).await.expect("call"), "Hello tls!");
    let peers = service.peers.lock().expect("peers").clone();
    let peer = peers[0].clone().expect("TLS peer in the handler");
    assert_eq!(peer.certificates().len(), 1);
    assert_eq!(peer.leaf().expect("leaf").as_ref(), me.der().as_slice());
    assert_eq!(peer.server_name(), Some("localhost"));
    assert!(peer.cipher_suite().is_some());
    assert_eq!(*seen.lock().expect("seen"), vec![1]);
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_required_and_the_client_has_no_certificate() {
    let ca = Ca::new("server CA");
    let clients = Ca::new("client CA");
    let server = TestServer::start(mtls_server(&ca, &clients, ClientAuth::Required)).await;
    let started = Instant::now();
    // Under TLS 1.3 the client's handshake completes before the server has seen its (empty)
    // certificate: the refusal reaches it as an alert, failing its first call.
    let no_identity = ClientTlsConfig::new().ca_certificates(ca.certificates());
    let result = greet(server.endpoint(no_identity.clone())).await;
    expect_unavailable(result, started, "requires a client certificate");
    // A lazy channel connects on its first call: that call fails with the reason.
    let lazy = Channel::lazy(server.endpoint(no_identity)).expect("endpoint");
    let started = Instant::now();
    expect_unavailable(call(&lazy).await, started, "requires a client certificate");
    assert!(server.peers().is_empty(), "no call reached the handler");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_required_and_the_client_certificate_is_from_another_ca() {
    let ca = Ca::new("server CA");
    let clients = Ca::new("client CA");
    let strangers = Ca::new("another CA");
    let server = TestServer::start(mtls_server(&ca, &clients, ClientAuth::Required)).await;
    let started = Instant::now();
    let client = ClientTlsConfig::new()
        .ca_certificates(ca.certificates())
        .identity(strangers.leaf(&["client.example.test"]).identity());
    let result = greet(server.endpoint(client)).await;
    expect_unavailable(result, started, "refused this client's certificate");
    assert!(server.peers().is_empty(), "no call reached the handler");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_client_auth_serves_clients_with_and_without_certificates() {
    let ca = Ca::new("server CA");
    let clients = Ca::new("client CA");
    let server = TestServer::start(mtls_server(&ca, &clients, ClientAuth::Optional)).await;
    let trust = ClientTlsConfig::new().ca_certificates(ca.certificates());
    assert_eq!(
        greet(server.endpoint(trust.clone()))
            .await
            .expect("anonymous"),
        "Hello tls!"
    );
    let me = clients.leaf(&["client.example.test"]);
    assert_eq!(
        greet(server.endpoint(trust.clone().identity(me.identity())))
            .await
            .expect("with a certificate"),
        "Hello tls!"
    );
    let peers = server.peers();
    assert!(peers[0].as_ref().expect("peer").certificates().is_empty());
    assert_eq!(
        peers[1]
            .as_ref()
            .expect("peer")
            .leaf()
            .expect("leaf")
            .as_ref(),
        me.der().as_slice()
    );
    // Optional is not anything goes: a certificate that is presented must chain to a client CA.
    let started = Instant::now();
    let stranger = trust.identity(Ca::new("another CA").leaf(&["x.test"]).identity());
    expect_unavailable(
        greet(server.endpoint(stranger)).await,
        started,
        "refused this client's certificate",
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
