use super::*;

// Certificates trusted as they are (`crates/sockrpc-transport/src/tls/verify.rs`): one listed
// among the CAs that the peer presents byte for byte. Accepted, as grpc-go accepts a leaf found
// among its roots, only while valid, for the purpose its extended key usage allows, and (a
// server's) for the names it holds. One with no subjectAltName at all (`openssl req -x509
// -subj /CN=HOST`) names nothing WebPKI reads: its pin stands for its key under any name.

/// A self-signed CA certificate as `openssl req -x509 -subj /CN=cn` makes it: no
/// subjectAltName, no extended key usage.
fn openssl_style(cn: &str) -> (rcgen::CertificateParams, rcgen::KeyPair) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    (params, rcgen::KeyPair::generate().expect("key"))
}

/// A leaf of `ca` for `names`, whose extended key usage allows only `purpose`.
fn leaf_only_for(ca: &Ca, names: &[&str], purpose: rcgen::ExtendedKeyUsagePurpose) -> Leaf {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = rcgen::CertificateParams::new(names).expect("leaf params");
    params.extended_key_usages = vec![purpose];
    let key = rcgen::KeyPair::generate().expect("leaf key");
    let cert = params
        .signed_by(&key, &ca.issuer)
        .expect("leaf certificate");
    Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

fn pem(text: &str) -> Certificates {
    Certificates::from_pem(text).expect("PEM")
}

/// Serves the certificate `params` self-sign with `key`, and a client configuration that lists
/// exactly it as its CA.
async fn serve_self_signed(
    params: &rcgen::CertificateParams,
    key: &rcgen::KeyPair,
) -> (TestServer, ClientTlsConfig) {
    let cert = params.self_signed(key).expect("cert");
    let server = TestServer::start(server_tls(ServerTlsConfig::new(
        Identity::from_pem(cert.pem(), key.serialize_pem()).expect("identity"),
    )))
    .await;
    (
        server,
        ClientTlsConfig::new().ca_certificates(pem(&cert.pem())),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_self_signed_certificate_is_trusted_as_it_is_but_not_once_expired() {
    // No subjectAltName, and a CN that is not the host the client connects to (127.0.0.1).
    let (mut params, key) = openssl_style("localhost");
    let (server, pinned) = serve_self_signed(&params, &key).await;
    assert_eq!(
        greet(server.endpoint(pinned)).await.expect("call"),
        "Hello tls!"
    );
    server.stop().await;

    let now = std::time::SystemTime::now();
    params.not_before = (now - Duration::from_secs(30 * 86_400)).into();
    params.not_after = (now - Duration::from_secs(86_400)).into();
    let (server, pinned) = serve_self_signed(&params, &key).await;
    let started = Instant::now();
    expect_unavailable(greet(server.endpoint(pinned)).await, started, "has expired");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_self_signed_certificate_with_names_is_trusted_for_those_names_only() {
    let (mut params, key) = openssl_style("localhost");
    params.subject_alt_names = SERVER_NAMES
        .iter()
        .map(|name| match name.parse() {
            Ok(ip) => rcgen::SanType::IpAddress(ip),
            Err(_) => rcgen::SanType::DnsName((*name).try_into().expect("DNS name")),
        })
        .collect();
    let (server, pinned) = serve_self_signed(&params, &key).await;
    assert_eq!(
        greet(server.endpoint(pinned.clone())).await.expect("call"),
        "Hello tls!"
    );
    let started = Instant::now();
    let elsewhere = server.endpoint(pinned.server_name("payments.internal"));
    expect_unavailable(greet(elsewhere).await, started, "not valid for the name");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_among_the_cas_is_still_checked_for_the_name() {
    // A "full chain" file (the CA and the server's own certificate) given as the client's CAs.
    let ca = Ca::new("test CA");
    let leaf = ca.leaf(SERVER_NAMES);
    let server = TestServer::start(server_tls(ServerTlsConfig::new(leaf.identity()))).await;
    let full_chain = pem(&format!("{}{}", ca.pem(), leaf.cert_pem));
    let alone = pem(&leaf.cert_pem);
    for cas in [full_chain, alone.clone()] {
        let started = Instant::now();
        let config = ClientTlsConfig::new()
            .ca_certificates(cas)
            .server_name("payments.internal");
        expect_unavailable(
            greet(server.endpoint(config)).await,
            started,
            "not valid for the name",
        );
    }
    // The leaf alone is still a pin for the names it holds.
    let pinned = ClientTlsConfig::new().ca_certificates(alone);
    assert_eq!(
        greet(server.endpoint(pinned)).await.expect("call"),
        "Hello tls!"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_certificate_for_clients_only_is_no_server_certificate() {
    let ca = Ca::new("test CA");
    let leaf = leaf_only_for(
        &ca,
        SERVER_NAMES,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    );
    let server = TestServer::start(server_tls(ServerTlsConfig::new(leaf.identity()))).await;
    let started = Instant::now();
    let pinned = ClientTlsConfig::new().ca_certificates(pem(&leaf.cert_pem));
    expect_unavailable(
        greet(server.endpoint(pinned)).await,
        started,
        "not for server authentication",
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_client_certificate_for_servers_only_is_refused() {
    let ca = Ca::new("server CA");
    let clients = Ca::new("client CA");
    let for_servers = leaf_only_for(
        &clients,
        &["client.example.test"],
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
    );
    let any_use = clients.leaf(&["client.example.test"]);
    // The server trusts the two client certificates as they are, not their CA.
    let bundle = pem(&format!("{}{}", for_servers.cert_pem, any_use.cert_pem));
    let server = TestServer::start(server_tls(
        ServerTlsConfig::new(ca.leaf(SERVER_NAMES).identity())
            .client_ca(bundle)
            .client_auth(ClientAuth::Required),
    ))
    .await;
    let as_client = |me: &Leaf| {
        server.endpoint(
            ClientTlsConfig::new()
                .ca_certificates(ca.certificates())
                .identity(me.identity()),
        )
    };
    assert_eq!(
        greet(as_client(&any_use)).await.expect("call"),
        "Hello tls!"
    );
    let started = Instant::now();
    expect_unavailable(
        greet(as_client(&for_servers)).await,
        started,
        "refused this client's certificate",
    );
    server.stop().await;
}
