//! tonic's `status.rs::missing_grpc_status_trailer_is_internal_error` (a fix some forks of tonic
//! carry): a server stream whose answer ends without its status must fail, never read as a
//! clean end. sockrpc frames the status itself, so a stream ends without one only when its
//! connection does: here a relay between client and server closes both sides after the first
//! message went through, while the handler's stream still has more to say. The client's next
//! `message()` is an error (`UNAVAILABLE`: the connection was lost), not `Ok(None)`, and the
//! server lets go of the handler's stream.

use crate::support::{bounded, serve, uri, wait_until};
use futures_util::{stream, StreamExt};
use sockrpc::{BoxStream, Channel, Code, Request, Response, Server, Status};
use sockrpc_tests::parity::test_stream_client::TestStreamClient;
use sockrpc_tests::parity::test_stream_server::{TestStream, TestStreamServer};
use sockrpc_tests::parity::{InputStream, OutputStream};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Sets its flag when dropped: the server let go of the handler's stream.
struct Released(Arc<AtomicBool>);

impl Drop for Released {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// One message, then nothing: the stream neither yields nor ends.
#[derive(Clone, Default)]
struct Svc {
    released: Arc<AtomicBool>,
}

impl TestStream for Svc {
    type StreamCallStream = BoxStream<OutputStream>;

    async fn stream_call(
        &self,
        _: Request<InputStream>,
    ) -> Result<Response<BoxStream<OutputStream>>, Status> {
        let guard = Released(Arc::clone(&self.released));
        let rest = stream::pending::<()>().map(move |()| {
            let _held = &guard;
            Ok(OutputStream {})
        });
        Ok(Response::new(Box::pin(
            stream::once(async { Ok(OutputStream {}) }).chain(rest),
        )))
    }
}

/// Relays one connection to `upstream` until `cut` fires, then closes both sides.
async fn relay(upstream: SocketAddr) -> (SocketAddr, oneshot::Sender<()>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (cut, on_cut) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let (mut client, _) = listener.accept().await.expect("accept");
        let mut server = TcpStream::connect(upstream).await.expect("upstream");
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
            _ = on_cut => {}
        }
        // Dropping both streams closes them: the answer stops short of its status.
    });
    (addr, cut, task)
}

#[tokio::test]
async fn a_stream_cut_before_its_status_fails_and_never_ends_clean() {
    let svc = Svc::default();
    let server = serve(Server::builder().add_service(TestStreamServer::new(svc.clone())));
    let (addr, cut, relay_task) = relay(server.addr).await;
    let channel = bounded("connect", Channel::connect(uri(addr)))
        .await
        .expect("connect through the relay");
    let mut client = TestStreamClient::new(channel);
    let mut stream = bounded("open", client.stream_call(InputStream {}))
        .await
        .expect("opens")
        .into_inner();
    assert_eq!(
        bounded("first", stream.message()).await.expect("a message"),
        Some(OutputStream {})
    );
    // The first message went through; the status has not (the handler has not ended).
    cut.send(()).expect("the relay runs");
    bounded("relay", relay_task).await.expect("relay task");
    let err = bounded("after the cut", stream.message())
        .await
        .expect_err("a stream without its status is no clean end");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    // The server saw its connection go and dropped the handler's stream.
    wait_until("the handler's stream released", || {
        svc.released.load(Ordering::SeqCst)
    })
    .await;
    server.stop().await;
}
