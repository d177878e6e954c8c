//! The split halves over real TLS sessions: plaintext of several records in one read with one
//! socket read, an empty socket pending until data comes, writes, the end of the stream.

use super::*;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const PROMPT: Duration = Duration::from_secs(5);

/// A server and a client configuration that trust each other (a self-signed `localhost`).
pub(crate) fn configs() -> (TlsAcceptor, TlsConnector) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let cert = made.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let server = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .expect("server config");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("root");
    let client = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    (
        TlsAcceptor::from(Arc::new(server)),
        TlsConnector::from(Arc::new(client)),
    )
}

/// A stream that counts the reads made of it.
pub(crate) struct Counted<T> {
    pub(crate) inner: T,
    pub(crate) reads: Arc<AtomicUsize>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

crate::tls::io::write_through!(Counted);

pub(crate) fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("name")
}

#[tokio::test]
async fn records_read_together_come_out_in_one_read_with_one_socket_read() {
    let (acceptor, connector) = configs();
    // An in-memory pipe, so that all three records are surely waiting before the first read.
    let (near, far) = tokio::io::duplex(64 * 1024);
    let reads = Arc::new(AtomicUsize::new(0));
    let near = Counted {
        inner: near,
        reads: Arc::clone(&reads),
    };
    let (client, server) = tokio::join!(connector.connect(localhost(), near), acceptor.accept(far));
    let (client, mut server) = (client.expect("client"), server.expect("server"));
    for word in [&b"one"[..], b"two", b"three"] {
        // One record each.
        server.write_all(word).await.expect("write");
        server.flush().await.expect("flush");
    }
    let (mut reader, _writer) = split(client);
    let before = reads.load(Ordering::SeqCst);
    let mut buf = [0u8; 64];
    let mut filled = ReadBuf::new(&mut buf);
    std::future::poll_fn(|cx| Pin::new(&mut reader).poll_read(cx, &mut filled))
        .await
        .expect("read");
    assert_eq!(
        filled.filled(),
        b"onetwothree",
        "every record's plaintext at once"
    );
    assert_eq!(
        reads.load(Ordering::SeqCst) - before,
        1,
        "one read of the socket, not a second one to find it empty"
    );
    // Nothing more: the next read goes to the socket, finds it empty, and waits.
    let mut more = [0u8; 64];
    let mut more = ReadBuf::new(&mut more);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert!(Pin::new(&mut reader)
        .poll_read(&mut cx, &mut more)
        .is_pending());
    assert_eq!(reads.load(Ordering::SeqCst) - before, 2);
}

#[tokio::test]
async fn over_tcp_a_waiting_read_wakes_for_data_writes_go_through_and_the_end_reads_empty() {
    let (acceptor, connector) = configs();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accept = async {
        let (tcp, _) = listener.accept().await.expect("accept");
        acceptor.accept(tcp).await.expect("server handshake")
    };
    let connect = async {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        connector
            .connect(localhost(), tcp)
            .await
            .expect("client handshake")
    };
    let (mut server, client) = tokio::join!(accept, connect);
    let (mut reader, mut writer) = split(client);

    // A read with nothing sent waits; the server's write wakes it.
    let mut buf = vec![0u8; 64];
    let read = reader.read(&mut buf);
    let write = async {
        tokio::task::yield_now().await;
        server.write_all(b"late").await.expect("server write");
        server.flush().await.expect("server flush");
    };
    let (n, ()) = tokio::time::timeout(PROMPT, async { tokio::join!(read, write) })
        .await
        .expect("the read woke");
    assert_eq!(&buf[..n.expect("read")], b"late");

    // The write half, vectored or not, reaches the server.
    writer.write_all(b"ping").await.expect("client write");
    writer.flush().await.expect("client flush");
    let mut got = [0u8; 4];
    tokio::time::timeout(PROMPT, server.read_exact(&mut got))
        .await
        .expect("in time")
        .expect("server read");
    assert_eq!(&got, b"ping");

    // The server ends its session: the client reads the end, as an empty read.
    server.shutdown().await.expect("server shutdown");
    let n = tokio::time::timeout(PROMPT, reader.read(&mut buf))
        .await
        .expect("in time")
        .expect("read the end");
    assert_eq!(n, 0);
}
