//! A TLS client that sends many calls with large answers in one write and never reads: the
//! server's memory stays bounded as it does for a plain one (`unread_answers.rs`). With TLS the
//! connection's writer hands its bytes to rustls, not to the socket: were rustls to take
//! plaintext without bound while its records wait for the socket, the write buffer would look
//! drained and the server would go on producing answers. rustls takes 64 KiB at most ahead of
//! the socket, so the write buffer's high-water mark still holds. Measured as the peak resident
//! size (VmHWM) of a TLS server in a child process (`memory.rs`'s).

use crate::memory::{assert_growth, child_serving, parent_runtime, peak_of, CHILD_ENV, MIB};
use crate::support::{bounded, EchoImpl};
use crate::unread_answers::grow_calls;
use sockrpc::tls::{rustls, Identity, ServerTls, ServerTlsConfig};
use sockrpc_tests::child::{parent_pid, test_name, ChildServer};
use sockrpc_tests::echo::echo_server::EchoServer;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Calls sent at once, each answered with 1 MiB: 120 MiB if the server held them all.
const CALLS: u32 = 120;
/// The high-water mark (8 MiB), an answer, rustls's 64 KiB, TLS state, allocator slack.
const HELD: u64 = 48 * MIB;

/// Where the parent leaves the server's certificate and key for its child (by the parent's
/// process id: tests of other binaries may run at once).
fn pem_dir(parent: u32) -> PathBuf {
    std::env::temp_dir().join(format!("sockrpc-hostile-tls-unread-{parent}"))
}

/// A self-signed certificate for 127.0.0.1 and its key.
pub(crate) fn self_signed() -> rcgen::CertifiedKey<rcgen::KeyPair> {
    rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("a certificate")
}

/// A self-signed certificate for 127.0.0.1, written where the child reads it; its DER.
fn write_certificate() -> Vec<u8> {
    let certified = self_signed();
    let dir = pem_dir(std::process::id());
    std::fs::create_dir_all(&dir).expect("a directory");
    std::fs::write(dir.join("cert.pem"), certified.cert.pem()).expect("write the certificate");
    std::fs::write(dir.join("key.pem"), certified.signing_key.serialize_pem()).expect("write");
    certified.cert.der().to_vec()
}

/// The child's TLS configuration, from what its parent wrote.
fn server_tls() -> ServerTls {
    let dir = pem_dir(parent_pid().expect("a parent"));
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect("read PEM");
    let identity = Identity::from_pem(read("cert.pem"), read("key.pem")).expect("identity");
    ServerTls::new(ServerTlsConfig::new(identity)).expect("TLS configuration")
}

/// A TLS session to `addr` trusting `cert` alone, offering sockrpc's ALPN.
pub(crate) async fn tls_connect(
    addr: std::net::SocketAddr,
    cert: &[u8],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    bounded(
        "handshake",
        tokio_rustls::TlsConnector::from(rustls_client(cert)).connect(server_name(), tcp),
    )
    .await
    .expect("a TLS session")
}

/// The name the certificate of [`self_signed`] carries.
pub(crate) fn server_name() -> sockrpc::tls::pki_types::ServerName<'static> {
    sockrpc::tls::pki_types::ServerName::try_from("127.0.0.1").expect("a name")
}

/// A rustls client configuration trusting `cert` alone, offering sockrpc's ALPN.
pub(crate) fn rustls_client(cert: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.to_vec().into()).expect("a root");
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![sockrpc::tls::ALPN_PROTOCOL.to_vec()];
    Arc::new(config)
}

#[test]
fn answers_a_tls_client_does_not_read_stay_bounded() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return child_serving(|listener, shutdown| {
            sockrpc::Server::builder()
                .tls_handle(server_tls())
                .add_service(EchoServer::new(EchoImpl::default()))
                .serve_with_listener_and_shutdown(listener, shutdown)
        });
    }
    let cert = write_certificate();
    let child = ChildServer::spawn(
        &test_name(
            module_path!(),
            "answers_a_tls_client_does_not_read_stay_bounded",
        ),
        CHILD_ENV,
    );
    parent_runtime().block_on(async {
        // Warm up: a session, a few calls read whole.
        let mut warm = tls_connect(child.addr, &cert).await;
        warm.write_all(&grow_calls(4, 1 << 20))
            .await
            .expect("write");
        let mut sink = vec![0u8; 1 << 16];
        let mut read = 0;
        while read < 4 << 20 {
            read += bounded("warm-up answers", warm.read(&mut sink))
                .await
                .expect("read");
        }
        drop(warm);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = peak_of(child.pid());
        let mut stream = tls_connect(child.addr, &cert).await;
        bounded(
            "write the calls",
            stream.write_all(&grow_calls(CALLS, 1 << 20)),
        )
        .await
        .expect("write");
        // Long enough for a server that holds every answer to have done so; it stops early
        // when the peak already shows it.
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if peak_of(child.pid()).0.saturating_sub(before.0) >= HELD {
                break;
            }
        }
        let after = peak_of(child.pid());
        assert_growth(
            "120 unread 1 MiB answers over TLS",
            before,
            after,
            HELD,
            2 * HELD,
        );
        // The session still delivers: the first answers come once the client reads.
        let mut got = 0;
        while got < 1 << 20 {
            let n = bounded("answers", stream.read(&mut sink))
                .await
                .expect("read");
            assert!(n > 0, "the server closed the session");
            got += n;
        }
    });
    child.finish();
    let _ = std::fs::remove_dir_all(pem_dir(std::process::id()));
}
