//! tonic's `Endpoint::http2_keep_alive_interval`, `keep_alive_timeout` and
//! `keep_alive_while_idle` turn on sockrpc's PING keepalive with those settings: a server that
//! stops answering (here a proxy that drops everything the server sends, PONGs included) fails
//! a call in flight `UNAVAILABLE` within interval + timeout, and, with while-idle, closes an
//! idle connection too. On tokio's paused clock, so the seconds cost nothing.

use sockrpc::transport::{Endpoint, Server};
use sockrpc::{Channel, Code, Request, Response, Status};
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::{Input, Output};
use sockrpc_tests::serve::Running;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::{timeout, Instant};

const INTERVAL: Duration = Duration::from_secs(10);
const TIMEOUT: Duration = Duration::from_secs(5);
/// Far past interval + timeout, on the paused clock.
const BOUND: Duration = Duration::from_secs(600);

/// Answers only after an hour (on the paused clock), noting that a call came.
#[derive(Clone, Default)]
struct Slow {
    started: Arc<Notify>,
}

impl Test for Slow {
    async fn unary_call(&self, _: Request<Input>) -> Result<Response<Output>, Status> {
        self.started.notify_one();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(Response::new(Output::default()))
    }
}

/// Forwards one connection both ways; once `mute` is set, drops what the server sends.
async fn muting_proxy(server: SocketAddr, mute: Arc<AtomicBool>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        let Ok(upstream) = TcpStream::connect(server).await else {
            return;
        };
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = upstream.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        });
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) if mute.load(Ordering::SeqCst) => {}
                Ok(n) => {
                    if client_write.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    addr
}

struct Setup {
    server: Running,
    service: Slow,
    mute: Arc<AtomicBool>,
    channel: Channel,
}

async fn setup(tune: impl FnOnce(Endpoint) -> Endpoint) -> Setup {
    let service = Slow::default();
    let server = Running::start(
        Server::builder()
            .idle_timeout(None)
            .add_service(TestServer::new(service.clone())),
    );
    let mute = Arc::new(AtomicBool::new(false));
    let proxy = muting_proxy(server.addr, Arc::clone(&mute)).await;
    let endpoint = tune(Endpoint::from_shared(format!("tcp://{proxy}")).expect("uri"));
    let channel = timeout(BOUND, Channel::connect(endpoint))
        .await
        .expect("connect in time")
        .expect("connect");
    Setup {
        server,
        service,
        mute,
        channel,
    }
}

#[tokio::test(start_paused = true)]
async fn a_call_fails_unavailable_when_pongs_stop() {
    // The timeout given before the interval counts too (tonic takes them in any order).
    let setup = setup(|e| {
        e.keep_alive_timeout(TIMEOUT)
            .http2_keep_alive_interval(INTERVAL)
    })
    .await;
    let mut client = TestClient::new(setup.channel.clone());
    let call = tokio::spawn(async move { client.unary_call(Input {}).await });
    timeout(BOUND, setup.service.started.notified())
        .await
        .expect("the call reached the server");
    setup.mute.store(true, Ordering::SeqCst);
    let muted = Instant::now();

    let result = timeout(BOUND, call)
        .await
        .expect("keepalive failed the call, the handler's hour did not pass")
        .expect("task");
    let err = result.expect_err("no answer can come");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("keepalive"), "{err:?}");
    let took = muted.elapsed();
    assert!(took >= TIMEOUT, "the PONG had its {TIMEOUT:?}: {took:?}");
    assert!(
        took <= INTERVAL + TIMEOUT + Duration::from_secs(1),
        "{took:?}"
    );
    setup.server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn while_idle_pings_with_no_call_in_flight() {
    let setup = setup(|e| {
        e.http2_keep_alive_interval(INTERVAL)
            .keep_alive_timeout(TIMEOUT)
            .keep_alive_while_idle(true)
    })
    .await;
    let conn = setup.channel.connections().pop().expect("a connection");
    setup.mute.store(true, Ordering::SeqCst);
    tokio::time::sleep(INTERVAL + TIMEOUT + Duration::from_secs(1)).await;
    let reason = conn
        .closed_reason()
        .expect("keepalive closed the idle connection");
    assert!(reason.message().contains("keepalive"), "{reason:?}");
    setup.server.stop().await;
}
