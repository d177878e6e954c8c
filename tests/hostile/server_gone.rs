//! Must show 6: the server is gone. A client fails with `Unavailable`, never hangs.

use crate::raw::{server_frames, END, PREFACE};
use crate::support::{assert_no_worker_panics, bounded, start_echo, EchoImpl, BOUND};
use sockrpc::Code;
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::{EchoRequest, SleepRequest};
use sockrpc_tests::refused::Refused;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_unavailable() {
    // Held (bound, never listening) until the test ends: no other server can take the port.
    let closed = Refused::loopback();
    let err = bounded(
        "connect to a closed port",
        EchoClient::connect(closed.addr().to_string()),
    )
    .await
    .expect_err("nothing listens there");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stopped_between_calls_is_unavailable() {
    let server = start_echo(EchoImpl::default());
    let addr = server.addr;
    let mut client = bounded("connect", EchoClient::connect(addr.to_string()))
        .await
        .expect("connect");
    bounded("echo", client.echo(EchoRequest::default()))
        .await
        .expect("first call");
    server.stop().await;
    for _ in 0..2 {
        let err = bounded("echo after stop", client.echo(EchoRequest::default()))
            .await
            .expect_err("server is gone");
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    }
}

/// A fake server that accepts, reads the whole request (OPEN + MESSAGE), then does `then`.
async fn fake_server(send_preface: bool, tail: &'static [u8]) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let task = tokio::spawn(async move {
        let Ok(Ok((mut stream, _))) = tokio::time::timeout(BOUND, listener.accept()).await else {
            return;
        };
        if send_preface {
            let _ = stream.write_all(PREFACE).await;
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        // Read until the preface and two whole frames are in (bounded in bytes and time).
        let _ = tokio::time::timeout(BOUND, async {
            while got.len() < 1 << 20 {
                let frames = server_frames(&got);
                if frames.len() >= 2 {
                    break;
                }
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        let _ = stream.write_all(tail).await;
        drop(stream);
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_dropping_the_socket_mid_call_is_unavailable() {
    let partial_end: &'static [u8] = &[0, 0, 0, 20, END, 0, 0, 0, 0, 0, 0, 1, 0, 0];
    for (preface, tail, name) in [
        (true, &b""[..], "preface, then drop"),
        (false, &b""[..], "no preface, drop"),
        (true, partial_end, "preface, half an END, drop"),
    ] {
        let (addr, task) = fake_server(preface, tail).await;
        let mut client = bounded("connect", EchoClient::connect(addr.to_string()))
            .await
            .expect("connect to the fake server");
        let err = bounded(name, client.echo(EchoRequest::default()))
            .await
            .expect_err("the server dropped the call");
        assert_eq!(err.code(), Code::Unavailable, "{name}: {err:?}");
        bounded("fake server", task).await.expect("fake server");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_task_aborted_mid_call_is_unavailable() {
    let service = EchoImpl::default();
    let sleeping = Arc::clone(&service.sleeping);
    let server = start_echo(service);
    let mut client = bounded("connect", EchoClient::connect(server.addr.to_string()))
        .await
        .expect("connect");
    let call = tokio::spawn(async move {
        client
            .sleep(SleepRequest {
                millis: 30_000,
                token: "killed".into(),
            })
            .await
    });
    bounded("handler start", sleeping.notified()).await;
    // "Kill" the server: drop its accept loop and everything it owns, mid-call.
    server.task.abort();
    let result = tokio::time::timeout(BOUND, call)
        .await
        .expect("the in-flight call must fail promptly once the server is gone, not hang")
        .expect("call task did not panic");
    let err = result.expect_err("the server died mid-call");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_no_worker_panics();
}

/// A writer that takes everything until `fail` is set, then fails every write with a broken
/// pipe: a server that closed while the client's next call was on its way.
struct BreakingWriter {
    fail: Arc<std::sync::atomic::AtomicBool>,
}

impl tokio::io::AsyncWrite for BreakingWriter {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            Err(std::io::ErrorKind::BrokenPipe.into())
        } else {
            Ok(buf.len())
        })
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// When a write fails, a call whose frames the socket never took fails "not processed" (a
/// balanced or pooled channel sends it elsewhere); a call already written may have run, and
/// fails plain `UNAVAILABLE`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_a_failed_write_never_sent_is_not_processed() {
    use sockrpc::transport::ClientConnection;
    use sockrpc::{Limits, MethodPath, Request};
    let (client_side, mut server_side) = tokio::io::duplex(1024);
    server_side
        .write_all(PREFACE)
        .await
        .expect("server preface");
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let conn = ClientConnection::spawn(
        client_side,
        BreakingWriter {
            fail: Arc::clone(&fail),
        },
        Limits::default(),
        None,
    );
    let path = MethodPath::from_static("/sockrpc.test.Echo/Echo");
    let request = || Request::new(bytes::Bytes::from_static(b"payload"));
    // Written, never answered.
    let mut written = Box::pin(conn.unary(path.clone(), request()));
    let pending =
        tokio::time::timeout(std::time::Duration::from_millis(50), written.as_mut()).await;
    assert!(pending.is_err(), "no answer comes: {pending:?}");

    fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let unsent = bounded("the call whose write fails", conn.unary(path, request()))
        .await
        .expect_err("the write fails");
    assert!(unsent.is_not_processed(), "{unsent:?}");
    // No byte of it left: a balanced channel picks it again without counting an attempt.
    assert!(unsent.is_never_sent(), "{unsent:?}");
    let sent = bounded("the call written before", written)
        .await
        .expect_err("the connection is gone");
    assert_eq!(sent.code(), Code::Unavailable, "{sent:?}");
    assert!(
        !sent.is_not_processed() && !sent.is_never_sent(),
        "a written call may have run: {sent:?}"
    );
    drop(server_side);
}
