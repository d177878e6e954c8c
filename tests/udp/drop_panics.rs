//! A UDP call whose future panics as it is dropped, after it answered, fails nothing: the UDP
//! server goes on answering.
//!
//! The UDP server polls each call once on its own task, and most answer there; the handler's
//! future was then dropped plainly on that task, once its answer was checked. A layer's future
//! keeps what it holds until then (a guard that checks on drop, a metrics recorder), and a
//! panic in its drop unwound through the UDP server's task: no UDP call was answered after it.
//! TCP calls already catch such a panic (`tests/hostile/drop_panics_answered.rs`).

use crate::support::{echo_reply, reply_of, request, Counting, ECHO, GROW};
use sockrpc::service::udp::UdpOutcome;
use sockrpc::service::udp::{UdpClient, UdpClientConfig, UdpServerConfig};
use sockrpc::service::Call;
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::{EchoRequest, GrowRequest};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

/// Panics when dropped, without running the panic hook.
struct Bomb(Arc<AtomicUsize>);

impl Drop for Bomb {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        std::panic::resume_unwind(Box::new("a layer's value panicked as it was dropped"));
    }
}

/// Holds a [`Bomb`] beside the first call's future and every `Grow`'s, until it is dropped.
#[derive(Clone)]
struct Bombing<S> {
    inner: S,
    first: Arc<AtomicBool>,
    exploded: Arc<AtomicUsize>,
}

impl<S: tower::Service<Call>> tower::Service<Call> for Bombing<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = Bombed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: Call) -> Self::Future {
        // The first call, and every `Grow` (whose answer goes out TRUNCATED).
        let first = self.first.swap(false, Ordering::SeqCst);
        let armed = first || call.path().ends_with("/Grow");
        let bomb = armed.then(|| Bomb(Arc::clone(&self.exploded)));
        Bombed {
            inner: Box::pin(self.inner.call(call)),
            _bomb: bomb,
        }
    }
}

struct Bombed<F> {
    inner: Pin<Box<F>>,
    _bomb: Option<Bomb>,
}

impl<F: Future> Future for Bombed<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.inner.as_mut().poll(cx)
    }
}

fn echo(id: u64) -> sockrpc::Request<bytes::Bytes> {
    request(&EchoRequest {
        payload: bytes::Bytes::from_static(b"ping"),
        id,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_future_panics_as_it_is_dropped_leaves_the_udp_server_serving() {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let listener = sockrpc::transport::bind_tcp(any, &Default::default()).expect("bind tcp");
    let udp_socket = UdpSocket::bind(any).await.expect("bind udp");
    let udp = udp_socket.local_addr().expect("addr");
    let exploded = Arc::new(AtomicUsize::new(0));
    let layer = {
        let (armed, exploded) = (Arc::new(AtomicBool::new(true)), Arc::clone(&exploded));
        tower::layer::layer_fn(move |inner| Bombing {
            inner,
            first: Arc::clone(&armed),
            exploded: Arc::clone(&exploded),
        })
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(
        sockrpc::Server::builder()
            .udp(udp_socket, UdpServerConfig::default())
            .layer(layer)
            .add_service(EchoServer::new(Counting::default()))
            .serve_with_listener_and_shutdown(listener, async {
                let _ = stopped.await;
            }),
    );
    let client = UdpClient::connect(udp, UdpClientConfig::default())
        .await
        .expect("udp client");
    let call = |id: u64| {
        let client = &client;
        async move {
            // Short of the client's window of retransmissions: a server gone is a deadline.
            let deadline = Some(tokio::time::Instant::now() + Duration::from_secs(3));
            let answer = reply_of(client.call(&ECHO, &echo(id), deadline).await);
            let answer = answer.unwrap_or_else(|status| panic!("call {id}: {status:?}"));
            assert_eq!(echo_reply(&answer).id, id);
        }
    };
    // Answered on the UDP server's task, its future dropped there.
    call(1).await;
    call(2).await;
    assert_eq!(
        exploded.load(Ordering::SeqCst),
        1,
        "the first call's bomb went off"
    );
    // An answer too large for a datagram: the call is held with it (`HeldCall`) until the
    // client is done with it, then dropped where the cache lets it go.
    let deadline = Some(tokio::time::Instant::now() + Duration::from_secs(3));
    let grow = request(&GrowRequest { size: 5000 });
    match client.call(&GROW, &grow, deadline).await {
        UdpOutcome::Truncated { hold, .. } => drop(hold),
        other => panic!("expected Truncated, got {other:?}"),
    }
    for id in 3..=5 {
        call(id).await;
    }
    crate::support::eventually("the held call dropped", || {
        exploded.load(Ordering::SeqCst) == 2
    })
    .await;
    call(6).await;
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}
