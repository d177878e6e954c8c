//! A chain of our own too large for one TLS handshake message (64 KiB) is refused when the
//! configuration is built, saying so: a server's identity (at start and at a rotation, which
//! keeps the identity in force) and a client's for mutual TLS. A chain at the limit (64 KiB − 1
//! less 1 KiB for what rustls buffers with it) is taken, and served on both sides.
//!
//! The chains are one leaf, padded with a private extension to a chosen size: its TLS 1.3
//! Certificate message is 9 bytes more than its DER (the request context's length, the list's,
//! the certificate's, and its extensions').

use super::*;

/// The largest Certificate message body taken: 64 KiB − 1, less 1 KiB for what rustls holds in
/// the same buffer (`crates/sockrpc-transport/src/tls/chain_size.rs`).
const LIMIT: usize = 0xffff - 1024;

/// The Certificate message a lone certificate of `der` bytes makes.
const FRAMING: usize = 1 + 3 + 3 + 2;

/// Leaves signed before [`padded_leaf`] gives up.
///
/// The CA's ECDSA signature is 70, 71 or 72 bytes (one in four, one in two, one in four), so an
/// attempt after the first lands on the size only when its signature is as long as the one
/// before: three times in eight. Twenty attempts missed about once in 7,700 calls, which a CI
/// run hit (session 50); 200 miss about once in 10^40, and take four on average.
const ATTEMPTS: usize = 200;

/// A leaf for `names` issued by `ca`, whose DER is exactly `der` bytes (a non-critical
/// extension of a private OID carries the padding; ECDSA signatures vary by a byte or two, so
/// the padding is adjusted over a few attempts).
fn padded_leaf(ca: &Ca, names: &[&str], der: usize) -> Leaf {
    let key = rcgen::KeyPair::generate().expect("leaf key");
    let mut padding = der.saturating_sub(600);
    for _ in 0..ATTEMPTS {
        let mut params = rcgen::CertificateParams::new(
            names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
        )
        .expect("leaf params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "padded leaf");
        params
            .custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 4, 1, 55_555, 1],
                vec![0; padding],
            ));
        let cert = params
            .signed_by(&key, &ca.issuer)
            .expect("leaf certificate");
        let len = cert.der().len();
        if len == der {
            return Leaf {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
            };
        }
        padding = (padding + der).saturating_sub(len);
    }
    panic!("no leaf of exactly {der} bytes in {ATTEMPTS} attempts");
}

/// A leaf whose Certificate message is `message` bytes.
fn leaf_with_message(ca: &Ca, names: &[&str], message: usize) -> Leaf {
    padded_leaf(ca, names, message - FRAMING)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_identity_past_64_kib_is_refused_when_the_config_is_built() {
    let ca = Ca::new("padded server CA");
    let past = leaf_with_message(&ca, SERVER_NAMES, LIMIT + 1);
    let config = ServerTlsConfig::new(past.identity());
    let err = config.build().expect_err("past the limit");
    let text = err.to_string();
    for words in [
        "message of 64512 bytes",
        "64 KiB",
        "65535 bytes",
        "server identity",
    ] {
        assert!(text.contains(words), "{words:?} not in {text:?}");
    }
    assert!(ServerTls::new(config.clone()).is_err());
    let Err(refused) = Server::builder().tls(config) else {
        panic!("the builder takes an identity past the limit");
    };
    assert!(refused.to_string().contains("64 KiB"), "{refused}");

    // At the limit: taken, and every handshake completes.
    let at = leaf_with_message(&ca, SERVER_NAMES, LIMIT);
    let server = TestServer::start(server_tls(ServerTlsConfig::new(at.identity()))).await;
    let trust = ClientTlsConfig::new().ca_certificates(ca.certificates());
    assert_eq!(
        greet(server.endpoint(trust))
            .await
            .expect("served at the limit"),
        "Hello tls!"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_to_an_identity_past_64_kib_is_refused_and_the_old_one_kept() {
    let ca = Ca::new("rotation size CA");
    let tls = server_tls(ServerTlsConfig::new(ca.leaf(SERVER_NAMES).identity()));
    let before = tls.config();
    let server = TestServer::start(tls.clone()).await;
    let trust = ClientTlsConfig::new().ca_certificates(ca.certificates());
    let live = Channel::connect(server.endpoint(trust.clone()))
        .await
        .expect("connect");
    assert_eq!(call(&live).await.expect("served"), "Hello tls!");

    let other = Ca::new("rotation size CA, too large");
    let past = leaf_with_message(&other, SERVER_NAMES, LIMIT + 1);
    let err = tls.reload_identity(past.identity()).expect_err("refused");
    assert!(err.to_string().contains("64 KiB"), "{err}");
    let err = tls
        .reload(ServerTlsConfig::new(past.identity()))
        .expect_err("refused as a whole configuration too");
    assert!(err.to_string().contains("64512 bytes"), "{err}");
    assert_eq!(tls.reloads(), 0);
    assert_eq!(tls.config(), before, "the identity in force stays");

    // Live connections and new handshakes alike are served as before.
    assert_eq!(call(&live).await.expect("still serving"), "Hello tls!");
    assert_eq!(
        greet(server.endpoint(trust.unshared()))
            .await
            .expect("new handshake"),
        "Hello tls!"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_identity_past_64_kib_is_refused_before_any_handshake() {
    let ca = Ca::new("padded client CA");
    let tls = server_tls(
        ServerTlsConfig::new(ca.leaf(SERVER_NAMES).identity()).client_ca(ca.certificates()),
    );
    let server = TestServer::start(tls).await;
    let _ = warnings();

    let past = leaf_with_message(&ca, &["padded.client.test"], LIMIT + 1);
    let client = ClientTlsConfig::new()
        .ca_certificates(ca.certificates())
        .identity(past.identity());
    let err = client.build().expect_err("past the limit");
    let text = err.to_string();
    for words in ["message of 64512 bytes", "64 KiB", "client identity"] {
        assert!(text.contains(words), "{words:?} not in {text:?}");
    }
    // A connect fails with it at once, a configuration error (not the server's doing).
    let started = Instant::now();
    let status = greet(server.endpoint(client)).await.expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("64 KiB"), "{status:?}");
    assert!(started.elapsed() < PROMPT, "took {:?}", started.elapsed());

    // At the limit: the server takes it (mutual TLS completes, the handler sees it).
    let at = leaf_with_message(&ca, &["padded.client.test"], LIMIT);
    let client = ClientTlsConfig::new()
        .ca_certificates(ca.certificates())
        .identity(at.identity());
    assert_eq!(
        greet(server.endpoint(client))
            .await
            .expect("served at the limit"),
        "Hello tls!"
    );
    let peers = server.peers();
    let seen = peers.last().and_then(Option::as_ref).expect("a TLS peer");
    assert_eq!(seen.leaf().map(|c| c.len()), Some(LIMIT - FRAMING));
    server.stop().await;
}

/// Whether a bare rustls client completes a handshake with a bare rustls server presenting a
/// lone leaf whose Certificate message is `message` bytes (no check of sockrpc's in the way),
/// under TLS 1.3 or, `tls12`, 1.2.
async fn bare_handshake(message: usize, tls12: bool) -> Result<(), std::io::Error> {
    let ca = Ca::new("bare handshake CA");
    let leaf = leaf_with_message(&ca, SERVER_NAMES, message);
    let chain = vec![sockrpc::tls::pki_types::CertificateDer::from(leaf.der())];
    let (addr, task) = scripted_server(rustls_server(chain, &leaf), |_| async {}).await;
    let stream = TcpStream::connect(addr).await.expect("tcp");
    let name = sockrpc::tls::pki_types::ServerName::try_from("localhost").expect("name");
    let connector =
        tokio_rustls::TlsConnector::from(rustls_client(&ca, &[sockrpc::tls::ALPN_PROTOCOL], tls12));
    let outcome = tokio::time::timeout(PROMPT, connector.connect(name, stream))
        .await
        .expect("the handshake ends in time");
    task.abort();
    outcome.map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_filling_64_kib_exactly_fails_the_handshake_hence_the_margin() {
    for tls12 in [false, true] {
        let err = bare_handshake(0xffff, tls12)
            .await
            .expect_err("65,535 bytes: refused");
        eprintln!("a Certificate message of 65,535 bytes (TLS 1.2: {tls12}): {err}");
        bare_handshake(LIMIT, tls12)
            .await
            .expect("64,511 bytes: served");
    }
}
