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

/// A stream whose writes, once `fail_after` is set to `Some(n)`, take `n` bytes more and then
/// fail: a socket that takes part of a write and is reset before the next.
pub(crate) struct Breaking<T> {
    pub(crate) inner: T,
    pub(crate) fail_after: Arc<Mutex<Option<usize>>>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Breaking<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Breaking<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let left = *self.fail_after.lock().expect("lock");
        match left {
            None => Pin::new(&mut self.inner).poll_write(cx, buf),
            Some(0) => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            Some(left) => {
                let take = left.min(buf.len());
                let polled = Pin::new(&mut self.inner).poll_write(cx, &buf[..take]);
                if let Poll::Ready(Ok(n)) = polled {
                    *self.fail_after.lock().expect("lock") = Some(left - n);
                }
                polled
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A handshaken client session over a stream that breaks once told to, its server, and the
/// switch.
async fn breaking_session() -> (
    TlsWriter<tokio_rustls::client::TlsStream<Breaking<tokio::io::DuplexStream>>>,
    tokio_rustls::server::TlsStream<tokio::io::DuplexStream>,
    Arc<Mutex<Option<usize>>>,
) {
    let (acceptor, connector) = configs();
    let (near, far) = tokio::io::duplex(1024 * 1024);
    let fail_after = Arc::new(Mutex::new(None));
    let near = Breaking {
        inner: near,
        fail_after: Arc::clone(&fail_after),
    };
    let (client, server) = tokio::join!(connector.connect(localhost(), near), acceptor.accept(far));
    let (_reader, writer) = split(client.expect("client"));
    (writer, server.expect("server"), fail_after)
}

#[tokio::test]
async fn a_vectored_write_whose_records_partly_went_out_before_the_socket_failed_counts() {
    // tokio-rustls takes the plaintext, writes part of its records, and returns the error of
    // the next socket write: the plaintext counted as not written, though the server may have
    // read the part that went (a client then marked calls in it never sent, and a balanced
    // channel ran them again). The write half says it took the plaintext; the error comes next.
    let (mut writer, _server, fail_after) = breaking_session().await;
    *fail_after.lock().expect("lock") = Some(100);
    let parts = [vec![1u8; 3000], vec![2u8; 3000]];
    let slices = [io::IoSlice::new(&parts[0]), io::IoSlice::new(&parts[1])];
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let polled = Pin::new(&mut writer).poll_write_vectored(&mut cx, &slices);
    assert!(
        matches!(polled, Poll::Ready(Ok(6000))),
        "the plaintext taken, part of it on the wire: {polled:?}"
    );
    assert!(
        matches!(
            Pin::new(&mut writer).poll_flush(&mut cx),
            Poll::Ready(Err(_))
        ),
        "the socket's error comes next"
    );
}

#[tokio::test]
async fn an_outbox_counts_as_written_what_tls_took_before_the_socket_failed() {
    // As the client's outbox sees it: the bytes written are where its calls start to count as
    // maybe sent, so bytes whose records partly went out count, not only those before them.
    let (writer, _server, fail_after) = breaking_session().await;
    let mut outbox = crate::outbox::Outbox::new(Box::pin(writer));
    outbox.buf_mut().extend_from_slice(&[7u8; 3000]);
    *fail_after.lock().expect("lock") = Some(100);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert!(matches!(outbox.poll_flush(&mut cx), Poll::Ready(Err(_))));
    assert_eq!(
        outbox.written(),
        3000,
        "some of it reached the socket: all of it may have been sent"
    );
}

#[tokio::test]
async fn a_call_whose_first_record_went_out_before_tls_failed_is_not_never_sent() {
    // The whole of it: a unary call whose OPEN's record reached the server before the socket
    // failed under the next record. Counted unwritten, it failed never sent, and a balanced
    // channel picked again without counting an attempt: a second run of a call the server may
    // have run. It may have been sent: it fails as the connection did.
    let (acceptor, connector) = configs();
    let (near, far) = tokio::io::duplex(1024 * 1024);
    let fail_after = Arc::new(Mutex::new(None));
    let near = Breaking {
        inner: near,
        fail_after: Arc::clone(&fail_after),
    };
    let (client, server) = tokio::join!(connector.connect(localhost(), near), acceptor.accept(far));
    let (reader, writer) = split(client.expect("client"));
    // The first record (16 KiB of plaintext: the preface, the OPEN, the message's start) and
    // a little of the second.
    *fail_after.lock().expect("lock") = Some(17 * 1024);
    let conn =
        crate::ClientConnection::spawn(reader, writer, sockrpc_protocol::Limits::default(), None);
    let path = sockrpc_protocol::MethodPath::from_static("/t.S/Once");
    let request = sockrpc_protocol::Request::new(bytes::Bytes::from(vec![5u8; 40 * 1024]));
    let mut call = Box::pin(conn.unary(path, request));
    let mut cx = Context::from_waker(std::task::Waker::noop());
    // Alone on its connection, the call writes from its own poll.
    assert!(std::future::Future::poll(call.as_mut(), &mut cx).is_pending());
    let mut server = server.expect("server");
    let mut got = vec![0u8; 64 * 1024];
    let n = tokio::time::timeout(PROMPT, server.read(&mut got))
        .await
        .expect("in time")
        .expect("the first record");
    assert!(
        got[..n].windows(9).any(|w| w == b"/t.S/Once"),
        "the server read the call's OPEN"
    );
    // The server goes: the client's read side ends, and the call fails.
    drop(server);
    let failed = tokio::time::timeout(PROMPT, call)
        .await
        .expect("in time")
        .expect_err("the connection failed");
    assert!(
        !failed.is_never_sent(),
        "its OPEN reached the server: {failed:?}"
    );
}

#[tokio::test]
async fn an_outbox_flush_that_says_done_has_put_every_record_on_a_socket_that_kept_filling() {
    // The write half hands plaintext to rustls and returns what it took even when the socket
    // is full and records wait in rustls: only a flush puts them on the socket. Over a pipe of
    // 1,000 bytes (full at every record), each outbox flush that answers Ready must have left
    // nothing in rustls, or the peer waits for the rest for ever. 3 MiB, held by reference
    // (vectored writes) and copied (plain writes) in turn.
    let (acceptor, connector) = configs();
    let (near, far) = tokio::io::duplex(1000);
    let (client, server) = tokio::join!(connector.connect(localhost(), near), acceptor.accept(far));
    let (_reader, writer) = split(client.expect("client"));
    let mut server = server.expect("server");
    let mut outbox = crate::outbox::Outbox::new(Box::pin(writer));
    let total: usize = 3 * 1024 * 1024 + 17;
    let sent: bytes::Bytes = (0..total).map(|i| (i % 251) as u8).collect();
    let mut at = 0;
    let mut parts = 0;
    let mut read = 0;
    let mut got = vec![0u8; total];
    while at < total {
        let end = (at + 300_000).min(total);
        let part = sent.slice(at..end);
        if parts % 2 == 0 {
            outbox.append_body(&part);
        } else {
            outbox.buf_mut().extend_from_slice(&part);
        }
        parts += 1;
        at = end;
        // The peer reads while the outbox flushes, until the flush says it is done.
        let flush = std::future::poll_fn(|cx| outbox.poll_flush(cx));
        let drain = async {
            loop {
                let n = server.read(&mut got[read..]).await.expect("read");
                assert!(n > 0, "the stream ended early");
                read += n;
            }
        };
        tokio::time::timeout(PROMPT, async {
            tokio::select! {
                flushed = flush => flushed.expect("flushed"),
                () = drain => unreachable!("the drain only ends by failing"),
            }
        })
        .await
        .expect("flushed in time");
        // Flushed: all of it is on the socket now, with no further write.
        tokio::time::timeout(PROMPT, server.read_exact(&mut got[read..at]))
            .await
            .expect("every record the flush took is on the socket")
            .expect("read");
        read = at;
    }
    assert!(got == sent[..], "whole and in order");
}
