use super::*;

/// Longest a failure may take to surface: "at once", with room for a loaded CI machine.
pub(crate) const PROMPT: Duration = Duration::from_secs(3);

/// The handshake timeout while real clients are served beside stalled handshakes, and the
/// time those clients must be served in: a server that ran handshakes one at a time would
/// serve them only after a stalled one's timeout (4 s at least), so the bound may be loose.
/// It was 1.2 s of a 1.5 s timeout, and a 1.2 s stall of a loaded machine (`cargo test` runs
/// this binary's tests at once on CI's 2 cores) would have failed it.
pub(crate) const STALLED_TIMEOUT: Duration = Duration::from_secs(4);
/// See [`STALLED_TIMEOUT`].
pub(crate) const SERVED_WITHIN: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------------------------
// Certificates

/// A CA made for one test.
pub(crate) struct Ca {
    pub(crate) issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

/// A CA certificate's parameters: `CN=name`, may sign certificates and CRLs.
fn ca_params(name: &str) -> rcgen::CertificateParams {
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
    params
}

impl Ca {
    pub(crate) fn new(name: &str) -> Ca {
        let params = ca_params(name);
        let key = rcgen::KeyPair::generate().expect("CA key");
        Ca {
            issuer: rcgen::CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    /// An intermediate CA issued by this one.
    pub(crate) fn intermediate(&self, name: &str) -> Ca {
        let params = ca_params(name);
        let key = rcgen::KeyPair::generate().expect("intermediate key");
        Ca {
            issuer: rcgen::CertifiedIssuer::signed_by(params, key, &self.issuer)
                .expect("intermediate certificate"),
        }
    }

    pub(crate) fn certificates(&self) -> Certificates {
        Certificates::from_pem(self.issuer.pem()).expect("CA PEM")
    }

    pub(crate) fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf for `names` (DNS names or IP addresses), valid from a year ago to a year on.
    pub(crate) fn leaf(&self, names: &[&str]) -> Leaf {
        let now = std::time::SystemTime::now();
        self.leaf_valid(
            names,
            now - Duration::from_secs(365 * 86_400),
            now + Duration::from_secs(365 * 86_400),
        )
    }

    pub(crate) fn leaf_valid(
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
pub(crate) struct Leaf {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

impl Leaf {
    pub(crate) fn identity(&self) -> Identity {
        Identity::from_pem(&self.cert_pem, &self.key_pem).expect("identity")
    }

    pub(crate) fn der(&self) -> Vec<u8> {
        Certificates::from_pem(&self.cert_pem)
            .expect("leaf PEM")
            .as_slice()[0]
            .to_vec()
    }
}

/// The names every server leaf here carries: the tests connect to 127.0.0.1.
pub(crate) const SERVER_NAMES: &[&str] = &["localhost", "127.0.0.1"];

// ---------------------------------------------------------------------------------------------
// Server and client

/// Greets, and keeps the TLS peer each call's handler saw.
#[derive(Clone, Default)]
pub(crate) struct Hi {
    pub(crate) peers: Arc<Mutex<Vec<Option<Arc<TlsPeer>>>>>,
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
pub(crate) struct SeeTls<S> {
    pub(crate) inner: S,
    pub(crate) seen: Arc<Mutex<Vec<usize>>>,
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

pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    pub(crate) service: Hi,
    pub(crate) stop: Option<oneshot::Sender<()>>,
    pub(crate) task: JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    /// Serves the greeter with TLS as `tls` holds it.
    pub(crate) async fn start(tls: ServerTls) -> TestServer {
        Self::start_with(Server::builder().tls_handle(tls)).await
    }

    pub(crate) async fn start_with(
        builder: ServerBuilder<tower::layer::util::Identity>,
    ) -> TestServer {
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

    pub(crate) fn endpoint(&self, tls: ClientTlsConfig) -> Endpoint {
        Endpoint::new("127.0.0.1", self.addr.port())
            .tls(tls)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(10))
    }

    pub(crate) fn plain_endpoint(&self) -> Endpoint {
        Endpoint::new("127.0.0.1", self.addr.port())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(10))
    }

    pub(crate) fn peers(&self) -> Vec<Option<Arc<TlsPeer>>> {
        self.service.peers.lock().expect("peers").clone()
    }

    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
    }
}

pub(crate) fn server_tls(config: ServerTlsConfig) -> ServerTls {
    ServerTls::new(config).expect("server TLS configuration")
}

/// Connects and makes one call; either step may fail.
pub(crate) async fn greet(endpoint: Endpoint) -> Result<String, Status> {
    let channel = Channel::connect(endpoint).await?;
    call(&channel).await
}

pub(crate) async fn call(channel: &Channel) -> Result<String, Status> {
    GreeterClient::new(channel.clone())
        .say_hello(HelloRequest { name: "tls".into() })
        .await
        .map(|reply| reply.into_inner().message)
}

/// Expects `result` to be `UNAVAILABLE`, promptly, with a message containing `words`.
pub(crate) fn expect_unavailable(
    result: Result<String, Status>,
    started: Instant,
    words: &str,
) -> Status {
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

/// rustls's `ring` provider, the one sockrpc uses (deprecated since rustls 0.23.48 for its lack
/// of post-quantum key exchange: see `provider` in `crates/sockrpc-transport/src/tls/mod.rs`).
#[allow(deprecated)]
pub(crate) fn ring_provider() -> Arc<sockrpc::tls::rustls::crypto::CryptoProvider> {
    Arc::new(sockrpc::tls::rustls::crypto::ring::default_provider())
}

/// A bare rustls client configuration trusting `ca`, offering `alpn`.
pub(crate) fn rustls_client(
    ca: &Ca,
    alpn: &[&[u8]],
    tls12_only: bool,
) -> Arc<sockrpc::tls::rustls::ClientConfig> {
    use sockrpc::tls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    for cert in ca.certificates().as_slice() {
        roots.add(cert.clone()).expect("root");
    }
    let provider = ring_provider();
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

// ---------------------------------------------------------------------------------------------
// Logs

/// What the process logged at WARN and above since the first call (the subscriber is installed
/// then, once for the process; tests in one process share it, so a test looks for its own
/// lines: its own peers' addresses, its own certificates' names).
pub(crate) fn warnings() -> String {
    static LOG: std::sync::OnceLock<sockrpc_tests::logs::LogBuffer> = std::sync::OnceLock::new();
    let log = LOG.get_or_init(|| {
        let log = sockrpc_tests::logs::LogBuffer::new();
        let installed = log.subscriber(tracing::Level::WARN).try_init();
        assert!(installed.is_ok(), "another subscriber is installed");
        log
    });
    log.text()
}

/// How a refusal's log line names the client at `addr`: the whole field, so that the port of
/// one connection is never matched as the prefix of another's (`:5632` in `:56322`).
pub(crate) fn peer_field(addr: std::net::SocketAddr) -> String {
    format!("peer=Some({addr})")
}

/// The WARN lines logged so far that contain every one of `words`, waiting up to [`PROMPT`] for
/// at least one (a server logs a refusal on its connection's task, maybe after the client has
/// seen it).
pub(crate) async fn warned(words: &[&str]) -> Vec<String> {
    let started = Instant::now();
    loop {
        let lines: Vec<String> = warnings()
            .lines()
            .filter(|line| words.iter().all(|word| line.contains(word)))
            .map(str::to_owned)
            .collect();
        if !lines.is_empty() || started.elapsed() > PROMPT {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile peers

/// A bare rustls server configuration that presents `chain` (leaf first, in DER, in any order
/// and of any size: rustls checks neither) with `key`, TLS 1.3 and 1.2, ALPN `sockrpc/1`.
pub(crate) fn rustls_server(
    chain: Vec<sockrpc::tls::pki_types::CertificateDer<'static>>,
    leaf: &Leaf,
) -> sockrpc::tls::rustls::ServerConfig {
    use sockrpc::tls::pki_types::{pem::PemObject, PrivateKeyDer};
    use sockrpc::tls::rustls;
    let mut config = rustls::ServerConfig::builder_with_provider(ring_provider())
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            chain,
            PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).expect("key"),
        )
        .expect("config");
    config.alpn_protocols = vec![sockrpc::tls::ALPN_PROTOCOL.to_vec()];
    config
}

/// A TLS server on loopback that completes each handshake with `config`, then runs `script` on
/// the session (each connection bounded to 15 s; the server to 100 connections).
pub(crate) async fn scripted_server<F, Fut>(
    config: sockrpc::tls::rustls::ServerConfig,
    script: F,
) -> (SocketAddr, JoinHandle<()>)
where
    F: Fn(tokio_rustls::server::TlsStream<TcpStream>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let script = Arc::new(script);
    let task = tokio::spawn(async move {
        for _ in 0..100 {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, script) = (acceptor.clone(), Arc::clone(&script));
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(15), async move {
                    if let Ok(tls) = acceptor.accept(stream).await {
                        script(tls).await;
                    }
                })
                .await;
            });
        }
    });
    (addr, task)
}

/// Reads from `stream` until `at_least` bytes have arrived in all (or it ends, or 5 s pass).
pub(crate) async fn read_at_least<R: tokio::io::AsyncRead + Unpin>(
    stream: &mut R,
    at_least: usize,
) -> Vec<u8> {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        while got.len() < at_least {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    got
}
