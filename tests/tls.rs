//! TLS and mutual TLS on loopback, with certificates made here (rcgen): success, every way a
//! handshake is refused, the client's certificate reaching a handler, rotation under a
//! continuous stream of calls, plain text and TLS crossed, a handshake that never completes.
//! Handlers read the TLS peer from `request.conn_info()`, middleware from the `Call`.

use sockrpc::service::ServerBuilder;
use sockrpc::tls::{
    Certificates, ClientAuth, ClientTlsConfig, Identity, ServerTls, ServerTlsConfig, TlsFiles,
    TlsPeer, TlsVersion,
};
use sockrpc::{Body, Call, Channel, Code, Endpoint, Request, Response, Server, Status};
use sockrpc_tests::helloworld::greeter_client::GreeterClient;
use sockrpc_tests::helloworld::greeter_server::{Greeter, GreeterServer};
use sockrpc_tests::helloworld::{HelloReply, HelloRequest};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Longest a failure may take to surface: "at once", with room for a loaded CI machine.
const PROMPT: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------------------------
// Certificates

/// A CA made for one test.
struct Ca {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().expect("CA key");
        Ca {
            issuer: rcgen::CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    fn certificates(&self) -> Certificates {
        Certificates::from_pem(self.issuer.pem()).expect("CA PEM")
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf for `names` (DNS names or IP addresses), valid from a year ago to a year on.
    fn leaf(&self, names: &[&str]) -> Leaf {
        let now = std::time::SystemTime::now();
        self.leaf_valid(
            names,
            now - Duration::from_secs(365 * 86_400),
            now + Duration::from_secs(365 * 86_400),
        )
    }

    fn leaf_valid(
        &self,
        names: &[&str],
        not_before: std::time::SystemTime,
        not_after: std::time::SystemTime,
    ) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(names).expect("leaf params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "sockrpc test leaf");
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// A certificate and its key, in PEM.
#[derive(Clone)]
struct Leaf {
    cert_pem: String,
    key_pem: String,
}

impl Leaf {
    fn identity(&self) -> Identity {
        Identity::from_pem(&self.cert_pem, &self.key_pem).expect("identity")
    }

    fn der(&self) -> Vec<u8> {
        Certificates::from_pem(&self.cert_pem)
            .expect("leaf PEM")
            .as_slice()[0]
            .to_vec()
    }
}

/// The names every server leaf here carries: the tests connect to 127.0.0.1.
const SERVER_NAMES: &[&str] = &["localhost", "127.0.0.1"];

// ---------------------------------------------------------------------------------------------
// Server and client

/// Greets, and keeps the TLS peer each call's handler saw.
#[derive(Clone, Default)]
struct Hi {
    peers: Arc<Mutex<Vec<Option<Arc<TlsPeer>>>>>,
}

impl Greeter for Hi {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let tls = request.conn_info().and_then(|conn| conn.tls.clone());
        self.peers.lock().expect("peers").push(tls);
        Ok(Response::new(HelloReply {
            message: format!("Hello {}!", request.into_inner().name),
        }))
    }
}

/// A middleware that notes how many certificates each call's client presented.
#[derive(Clone)]
struct SeeTls<S> {
    inner: S,
    seen: Arc<Mutex<Vec<usize>>>,
}

impl<S> tower::Service<Call> for SeeTls<S>
where
    S: tower::Service<Call, Response = Response<Body>, Error = Status>,
{
    type Response = Response<Body>;
    type Error = Status;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: Call) -> S::Future {
        self.seen
            .lock()
            .expect("seen")
            .push(call.peer_certificates().len());
        self.inner.call(call)
    }
}

struct TestServer {
    addr: SocketAddr,
    service: Hi,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    /// Serves the greeter with TLS as `tls` holds it.
    async fn start(tls: ServerTls) -> TestServer {
        Self::start_with(Server::builder().tls_handle(tls)).await
    }

    async fn start_with(builder: ServerBuilder<tower::layer::util::Identity>) -> TestServer {
        let listener =
            sockrpc::transport::bind_tcp("127.0.0.1:0".parse().expect("addr"), &Default::default())
                .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let service = Hi::default();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(
            builder
                .grace_period(Duration::from_secs(1))
                .add_service(GreeterServer::new(service.clone()))
                .serve_with_listener_and_shutdown(listener, async {
                    let _ = stopped.await;
                }),
        );
        TestServer {
            addr,
            service,
            stop: Some(stop),
            task,
        }
    }

    fn endpoint(&self, tls: ClientTlsConfig) -> Endpoint {
        Endpoint::new("127.0.0.1", self.addr.port())
            .tls(tls)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(10))
    }

    fn plain_endpoint(&self) -> Endpoint {
        Endpoint::new("127.0.0.1", self.addr.port())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(10))
    }

    fn peers(&self) -> Vec<Option<Arc<TlsPeer>>> {
        self.service.peers.lock().expect("peers").clone()
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
    }
}

fn server_tls(config: ServerTlsConfig) -> ServerTls {
    ServerTls::new(config).expect("server TLS configuration")
}

/// Connects and makes one call; either step may fail.
async fn greet(endpoint: Endpoint) -> Result<String, Status> {
    let channel = Channel::connect(endpoint).await?;
    call(&channel).await
}

async fn call(channel: &Channel) -> Result<String, Status> {
    GreeterClient::new(channel.clone())
        .say_hello(HelloRequest { name: "tls".into() })
        .await
        .map(|reply| reply.into_inner().message)
}

/// Expects `result` to be `UNAVAILABLE`, promptly, with a message containing `words`.
fn expect_unavailable(result: Result<String, Status>, started: Instant, words: &str) -> Status {
    let status = result.expect_err("the call must fail");
    eprintln!(
        "{:?} after {:?}: {}",
        status.code(),
        started.elapsed(),
        status.message()
    );
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains(words),
        "expected {words:?} in {:?}",
        status.message()
    );
    assert!(
        started.elapsed() < PROMPT,
        "took {:?} to fail: {status:?}",
        started.elapsed()
    );
    status
}

// ---------------------------------------------------------------------------------------------
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_self_signed_certificate_is_trusted_as_it_is_but_not_once_expired() {
    // A self-signed certificate marked CA (as `openssl req -x509` makes them), with no name of
    // the host: trusted because the client lists exactly it.
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("cert");
    let server = TestServer::start(server_tls(ServerTlsConfig::new(
        Identity::from_pem(cert.pem(), key.serialize_pem()).expect("identity"),
    )))
    .await;
    let pinned =
        ClientTlsConfig::new().ca_certificates(Certificates::from_pem(cert.pem()).expect("pem"));
    assert_eq!(
        greet(server.endpoint(pinned)).await.expect("call"),
        "Hello tls!"
    );
    server.stop().await;

    let now = std::time::SystemTime::now();
    params.not_before = (now - Duration::from_secs(30 * 86_400)).into();
    params.not_after = (now - Duration::from_secs(86_400)).into();
    let expired = params.self_signed(&key).expect("cert");
    let server = TestServer::start(server_tls(ServerTlsConfig::new(
        Identity::from_pem(expired.pem(), key.serialize_pem()).expect("identity"),
    )))
    .await;
    let pinned =
        ClientTlsConfig::new().ca_certificates(Certificates::from_pem(expired.pem()).expect("pem"));
    let started = Instant::now();
    expect_unavailable(greet(server.endpoint(pinned)).await, started, "has expired");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
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
// Rotation

/// Calls on `channel` back to back until `stop`; counts successes and failures.
fn call_loop(
    channel: Channel,
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<Mutex<Vec<Status>>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            match call(&channel).await {
                Ok(_) => {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
                Err(status) => failed.lock().expect("failed").push(status),
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_a_continuous_stream_of_calls_drops_nothing() {
    let ca = Ca::new("server CA");
    let clients = Ca::new("client CA");
    let tls = server_tls(
        ServerTlsConfig::new(ca.leaf(SERVER_NAMES).identity()).client_ca(clients.certificates()),
    );
    let server = TestServer::start(tls.clone()).await;
    let me = clients.leaf(&["client.example.test"]);
    let client = ClientTlsConfig::new()
        .ca_certificates(ca.certificates())
        .identity(me.identity());

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(Mutex::new(Vec::new()));
    // Live connections (a pool of 2, 4 callers) and, beside them, a new connection (a new
    // handshake) per call.
    let live = Channel::connect(server.endpoint(client.clone()).pool_size(2))
        .await
        .expect("connect");
    let mut loops: Vec<JoinHandle<()>> = (0..4)
        .map(|_| call_loop(live.clone(), stop.clone(), ok.clone(), failed.clone()))
        .collect();
    let fresh = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let endpoint = server.endpoint(client.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match greet(endpoint.clone()).await {
                    Ok(_) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(status) => failed.lock().expect("failed").push(status),
                }
            }
        })
    };
    loops.push(fresh);

    // Ten rotations of the server's certificate (a new key each time, same CA), and the client
    // CA bundle grown by a second CA, while the calls go on.
    let second_clients = Ca::new("second client CA");
    for round in 0..10 {
        tokio::time::sleep(Duration::from_millis(60)).await;
        tls.reload_identity(ca.leaf(SERVER_NAMES).identity())
            .expect("reload identity");
        if round == 5 {
            let both = Certificates::from_pem(format!("{}{}", clients.pem(), second_clients.pem()))
                .expect("bundle");
            tls.reload_client_ca(Some(both)).expect("reload client CA");
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    for task in loops {
        task.await.expect("call loop");
    }
    let failed = failed.lock().expect("failed").clone();
    assert!(
        failed.is_empty(),
        "calls failed during rotation: {failed:?}"
    );
    assert!(ok.load(Ordering::Relaxed) > 100, "too few calls: {ok:?}");
    assert_eq!(tls.reloads(), 11);

    // New handshakes use the new configuration; live connections keep theirs.
    let other_ca = Ca::new("new server CA");
    tls.reload_identity(other_ca.leaf(SERVER_NAMES).identity())
        .expect("reload to another CA");
    let started = Instant::now();
    expect_unavailable(
        greet(server.endpoint(client.clone())).await,
        started,
        "not signed by a CA this client trusts",
    );
    let new_trust = ClientTlsConfig::new()
        .ca_certificates(other_ca.certificates())
        .identity(me.identity());
    assert_eq!(
        greet(server.endpoint(new_trust.clone()))
            .await
            .expect("new CA"),
        "Hello tls!"
    );
    assert_eq!(
        call(&live)
            .await
            .expect("a live connection keeps its session"),
        "Hello tls!"
    );

    // The client CAs rotated to the second CA only: a client of the first is refused on a new
    // connection, while its live connections go on.
    tls.reload_client_ca(Some(second_clients.certificates()))
        .expect("reload client CA");
    let started = Instant::now();
    expect_unavailable(
        greet(server.endpoint(new_trust)).await,
        started,
        "refused this client's certificate",
    );
    assert_eq!(call(&live).await.expect("live connection"), "Hello tls!");
    let second = ClientTlsConfig::new()
        .ca_certificates(other_ca.certificates())
        .identity(second_clients.leaf(&["c2.test"]).identity());
    assert_eq!(
        greet(server.endpoint(second))
            .await
            .expect("second CA client"),
        "Hello tls!"
    );
    // A configuration that does not hold together is refused, and the one in force stays.
    let mismatched = Identity::from_pem(
        &ca.leaf(SERVER_NAMES).cert_pem,
        &ca.leaf(SERVER_NAMES).key_pem,
    )
    .expect("parses");
    assert!(tls.reload_identity(mismatched).is_err());
    assert_eq!(call(&live).await.expect("still serving"), "Hello tls!");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watched_files_rotate_the_certificate() {
    let dir = std::env::temp_dir().join(format!("sockrpc-tls-watch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    let first_ca = Ca::new("first CA");
    let first = first_ca.leaf(SERVER_NAMES);
    std::fs::write(&cert, &first.cert_pem).expect("write");
    std::fs::write(&key, &first.key_pem).expect("write");
    let tls = server_tls(ServerTlsConfig::new(
        Identity::from_pem_files(&cert, &key).expect("files"),
    ));
    let _watch = tls.watch(TlsFiles::new(&cert, &key), Duration::from_millis(20));
    let server = TestServer::start(tls.clone()).await;
    let first_trust = ClientTlsConfig::new().ca_certificates(first_ca.certificates());
    let live = Channel::connect(server.endpoint(first_trust.clone()))
        .await
        .expect("connect");

    // Rotate the files the way a renewal does, one file at a time: the half-rotated state (a
    // new key beside the old certificate) is not taken.
    let second_ca = Ca::new("second CA");
    let second = second_ca.leaf(SERVER_NAMES);
    std::fs::write(&key, &second.key_pem).expect("write key");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(tls.reloads(), 0, "a half-rotated pair must not be loaded");
    assert_eq!(
        greet(server.endpoint(first_trust.clone()))
            .await
            .expect("old pair still"),
        "Hello tls!"
    );
    std::fs::write(&cert, &second.cert_pem).expect("write cert");
    let waited = Instant::now();
    while tls.reloads() == 0 {
        assert!(
            waited.elapsed() < Duration::from_secs(5),
            "the watch did not reload"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second_trust = ClientTlsConfig::new().ca_certificates(second_ca.certificates());
    assert_eq!(
        greet(server.endpoint(second_trust))
            .await
            .expect("new pair"),
        "Hello tls!"
    );
    assert_eq!(call(&live).await.expect("live connection"), "Hello tls!");
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
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
            .handshake_timeout(Duration::from_millis(300)),
    )
    .await;
    // One client starts a TLS record and stops; another connects and sends nothing.
    let mut stalled = TcpStream::connect(server.addr).await.expect("connect");
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x00])
        .await
        .expect("write");
    let mut silent = TcpStream::connect(server.addr).await.expect("connect");
    let started = Instant::now();

    // Meanwhile the server accepts and serves others: handshakes run on their own tasks.
    let trust = ClientTlsConfig::new().ca_certificates(ca.certificates());
    assert_eq!(
        greet(server.endpoint(trust)).await.expect("served"),
        "Hello tls!"
    );
    assert!(started.elapsed() < Duration::from_millis(300));

    for stream in [&mut stalled, &mut silent] {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("closed by the handshake timeout, not left hanging");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < PROMPT,
        "closed after {elapsed:?}"
    );
    server.stop().await;
}

fn rustls_client(
    ca: &Ca,
    alpn: &[&[u8]],
    tls12_only: bool,
) -> Arc<sockrpc::tls::rustls::ClientConfig> {
    use sockrpc::tls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    for cert in ca.certificates().as_slice() {
        roots.add(cert.clone()).expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if tls12_only {
        &[&rustls::version::TLS12]
    } else {
        rustls::ALL_VERSIONS
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
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
        assert!(
            matches!(tls, sockrpc::tls::rustls::Error::AlertReceived(_)),
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
// Certificates made with openssl

/// Runs openssl with `args` in `dir`; `false` when there is no openssl to run.
fn openssl(dir: &std::path::Path, args: &[&str]) -> bool {
    match std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
    {
        Ok(out) => {
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            true
        }
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_made_with_openssl_req_work_as_they_are() {
    let dir = std::env::temp_dir().join(format!("sockrpc-tls-openssl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    // An RSA server certificate (PKCS#8 key), and an EC client certificate whose key file
    // starts with an EC PARAMETERS block: both self-signed, so marked CA, and with no SAN.
    if !openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ],
    ) {
        eprintln!("no openssl on this machine: test skipped");
        return;
    }
    assert!(openssl(
        &dir,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-out",
            "client.key"
        ]
    ));
    assert!(openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-key",
            "client.key",
            "-out",
            "client.pem",
            "-days",
            "2",
            "-subj",
            "/CN=client",
        ]
    ));
    let server = TestServer::start(server_tls(
        ServerTlsConfig::new(
            Identity::from_pem_files(dir.join("server.pem"), dir.join("server.key"))
                .expect("server files"),
        )
        .client_ca(Certificates::from_pem_file(dir.join("client.pem")).expect("client CA")),
    ))
    .await;
    let client = ClientTlsConfig::new()
        .ca_pem_file(dir.join("server.pem"))
        .expect("CA file")
        .identity(
            Identity::from_pem_files(dir.join("client.pem"), dir.join("client.key"))
                .expect("client files"),
        );
    assert_eq!(
        greet(server.endpoint(client)).await.expect("call"),
        "Hello tls!"
    );
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pem_errors_say_what_is_wrong() {
    let err = Certificates::from_pem("no pem here").expect_err("no certificate");
    assert!(err.message().contains("no CERTIFICATE block"), "{err}");
    let ca = Ca::new("test CA");
    let leaf = ca.leaf(SERVER_NAMES);
    let err = Identity::from_pem(&leaf.cert_pem, "").expect_err("no key");
    assert!(err.message().contains("no private key found"), "{err}");
    // A key that is not the certificate's is caught when the configuration is built.
    let other = ca.leaf(SERVER_NAMES);
    let mismatched = Identity::from_pem(&leaf.cert_pem, &other.key_pem).expect("parses");
    let err = ServerTls::new(ServerTlsConfig::new(mismatched)).expect_err("mismatch");
    assert!(err.message().contains("unusable server identity"), "{err}");
    // Client authentication without client CAs.
    let err =
        ServerTls::new(ServerTlsConfig::new(leaf.identity()).client_auth(ClientAuth::Required))
            .expect_err("no client CA");
    assert!(err.message().contains("needs client CAs"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Write coalescing

/// Copies `from` to `to`, counting the TLS application-data records that pass (by their 5-byte
/// headers), until either side closes.
async fn count_records(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    records: Arc<AtomicU64>,
) {
    let mut pending = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        pending.extend_from_slice(&buf[..n]);
        while pending.len() >= 5 {
            let len = usize::from(u16::from_be_bytes([pending[3], pending[4]]));
            if pending.len() < 5 + len {
                break;
            }
            if pending[0] == 23 {
                records.fetch_add(1, Ordering::Relaxed);
            }
            pending.drain(..5 + len);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_calls_leaves_in_few_tls_records_not_one_per_frame() {
    let ca = Ca::new("test CA");
    let server = TestServer::start(server_tls(ServerTlsConfig::new(
        ca.leaf(SERVER_NAMES).identity(),
    )))
    .await;
    // A proxy between client and server that counts the records each way.
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let proxy_addr = proxy.local_addr().expect("addr");
    let upstream = Arc::new(AtomicU64::new(0));
    let downstream = Arc::new(AtomicU64::new(0));
    {
        let (upstream, downstream) = (upstream.clone(), downstream.clone());
        let target = server.addr;
        tokio::spawn(async move {
            let (client, _) = proxy.accept().await.expect("accept");
            let _ = client.set_nodelay(true);
            let server = TcpStream::connect(target).await.expect("connect");
            let _ = server.set_nodelay(true);
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::join!(
                count_records(client_read, server_write, upstream),
                count_records(server_read, client_write, downstream),
            );
        });
    }
    let endpoint = Endpoint::new("127.0.0.1", proxy_addr.port())
        .tls(ClientTlsConfig::new().ca_certificates(ca.certificates()))
        .timeout(Duration::from_secs(10));
    let channel = Channel::connect(endpoint).await.expect("connect");
    let (up_before, down_before) = (
        upstream.load(Ordering::Relaxed),
        downstream.load(Ordering::Relaxed),
    );
    // 256 calls started at once: 512 request frames (OPEN, MESSAGE) and as many answer frames.
    let calls: Vec<_> = (0..256).map(|_| call(&channel)).collect();
    for result in futures_util::future::join_all(calls).await {
        assert_eq!(result.expect("call"), "Hello tls!");
    }
    let up = upstream.load(Ordering::Relaxed) - up_before;
    let down = downstream.load(Ordering::Relaxed) - down_before;
    eprintln!("256 calls: {up} records to the server, {down} back");
    // The client's outbox writes up to 16 calls' frames at once, the server a read batch's
    // answers: each write is one record (up to 16 KiB), never one per frame.
    assert!(up <= 64, "{up} records for 256 calls' requests");
    assert!(down <= 128, "{down} records for 256 calls' answers");
    server.stop().await;
}
