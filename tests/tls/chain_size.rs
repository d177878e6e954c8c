//! Certificate chains larger than TLS lets a handshake message be (64 KiB, rustls' bound, taken
//! before the message is held whole): refused on either side with that said, not as a peer that
//! "does not speak TLS"; the server keeps serving others meanwhile.

use super::*;
use sockrpc::tls::pki_types::CertificateDer;
use sockrpc::tls::rustls;

/// Copies of the CA's certificate appended to a leaf: about 100 KiB of chain.
const PADDING: usize = 250;

/// `leaf`, then [`PADDING`] copies of `ca`'s certificate: a chain past 64 KiB.
fn huge_chain(ca: &Ca, leaf: &Leaf) -> Vec<CertificateDer<'static>> {
    let mut chain = vec![CertificateDer::from(leaf.der())];
    let ca_der = ca.certificates().as_slice()[0].clone();
    chain.extend(std::iter::repeat_n(ca_der, PADDING));
    let size: usize = chain.iter().map(|cert| cert.len()).sum();
    assert!(size > 80 * 1024, "the chain is only {size} bytes");
    chain
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_chain_past_64_kib_fails_the_connect_saying_so() {
    let ca = Ca::new("huge chain CA");
    let leaf = ca.leaf(SERVER_NAMES);
    let config = rustls_server(huge_chain(&ca, &leaf), &leaf);
    let (addr, task) = scripted_server(config, |_| async {}).await;
    let endpoint = Endpoint::new("127.0.0.1", addr.port())
        .tls(ClientTlsConfig::new().ca_certificates(ca.certificates()))
        .connect_timeout(Duration::from_secs(10));
    let started = Instant::now();
    let status = expect_unavailable(greet(endpoint).await, started, "64 KiB");
    assert!(
        !status.message().contains("did not answer in TLS"),
        "{status:?}"
    );
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_chain_past_64_kib_is_refused_and_logged_saying_so() {
    use sockrpc::tls::pki_types::{pem::PemObject, PrivateKeyDer};
    let ca = Ca::new("huge client chain CA");
    let tls = server_tls(
        ServerTlsConfig::new(ca.leaf(SERVER_NAMES).identity())
            .client_ca(ca.certificates())
            .client_auth(ClientAuth::Optional),
    );
    let server = TestServer::start(tls).await;
    let _ = warnings();

    let client_leaf = ca.leaf(&["huge.client.test"]);
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(ca.certificates().as_slice()[0].clone())
        .expect("root");
    let mut config = rustls::ClientConfig::builder_with_provider(ring_provider())
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(
            huge_chain(&ca, &client_leaf),
            PrivateKeyDer::from_pem_slice(client_leaf.key_pem.as_bytes()).expect("key"),
        )
        .expect("client config");
    config.alpn_protocols = vec![sockrpc::tls::ALPN_PROTOCOL.to_vec()];
    let stream = TcpStream::connect(server.addr).await.expect("tcp");
    let me = peer_field(stream.local_addr().expect("addr"));
    let name = sockrpc::tls::pki_types::ServerName::try_from("localhost").expect("name");
    // Under TLS 1.3 the client's side may complete before the server reads its certificate:
    // whatever it sees, the server must refuse it and say why.
    if let Ok(Ok(mut tls)) = tokio::time::timeout(
        PROMPT,
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, stream),
    )
    .await
    {
        let _ = tls.write_all(&sockrpc::protocol::frame::PREFACE).await;
        let _ = read_at_least(&mut tls, 1).await;
    }
    let lines = warned(&["TLS handshake failed", &me]).await;
    assert_eq!(lines.len(), 1, "{}", warnings());
    assert!(lines[0].contains("64 KiB"), "{}", lines[0]);
    assert!(!lines[0].contains("did not speak TLS"), "{}", lines[0]);

    // Others are served meanwhile.
    let trust = ClientTlsConfig::new().ca_certificates(ca.certificates());
    assert_eq!(
        greet(server.endpoint(trust)).await.expect("served"),
        "Hello tls!"
    );
    server.stop().await;
}
