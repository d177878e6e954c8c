//! The server under attack, and the well-behaved client that must not notice.

use crate::raw::{expect_closed, xorshift_bytes, Case};
use sockrpc::{Code, Request, Response, Status};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::{Echo, EchoServer};
use sockrpc_tests::echo::{EchoReply, EchoRequest, FailRequest, GrowRequest, SleepRequest};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

/// How long the server may take to close a hostile connection, or a client to fail a call: 10 s,
/// as the other suites allow (5 s was outlasted beside eight busy loops on the 2-core machine).
pub(crate) const BOUND: Duration = Duration::from_secs(10);

/// Panics on tokio worker threads (where the server's connection tasks and handlers run) since
/// the binary started; every test asserts it stays 0. Assertion failures in the tests themselves
/// happen on the test threads and are not counted.
pub(crate) static WORKER_PANICS: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn count_worker_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("tokio-runtime-worker"))
            {
                WORKER_PANICS.fetch_add(1, Ordering::SeqCst);
            }
            previous(info);
        }));
    });
}

pub(crate) fn assert_no_worker_panics() {
    assert_eq!(
        WORKER_PANICS.load(Ordering::SeqCst),
        0,
        "a server task panicked (see stderr)"
    );
}

#[derive(Default)]
pub(crate) struct EchoImpl {
    /// Notified when a `Sleep` handler starts.
    pub(crate) sleeping: Arc<Notify>,
}

impl Echo for EchoImpl {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let request = request.into_inner();
        Ok(Response::new(EchoReply {
            payload: request.payload,
            id: request.id,
        }))
    }

    async fn sleep(&self, request: Request<SleepRequest>) -> Result<Response<EchoReply>, Status> {
        self.sleeping.notify_one();
        let millis = request.into_inner().millis.min(60_000);
        tokio::time::sleep(Duration::from_millis(millis)).await;
        Ok(Response::new(EchoReply::default()))
    }

    async fn fail(&self, request: Request<FailRequest>) -> Result<Response<EchoReply>, Status> {
        let request = request.into_inner();
        let code = u32::try_from(request.code).unwrap_or(2);
        Err(Status::new(Code::from_u32(code), request.message))
    }

    async fn grow(&self, request: Request<GrowRequest>) -> Result<Response<EchoReply>, Status> {
        let size = request.into_inner().size.min(1 << 20) as usize;
        Ok(Response::new(EchoReply {
            payload: vec![0; size].into(),
            id: 0,
        }))
    }
}

pub(crate) struct Running {
    pub(crate) addr: SocketAddr,
    pub(crate) stop: Option<oneshot::Sender<()>>,
    pub(crate) task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(Duration::from_secs(40), self.task)
            .await
            .expect("server stops in time")
            .expect("server task did not panic");
        result.expect("server returned an error");
        assert_no_worker_panics();
    }
}

pub(crate) fn start_echo(service: EchoImpl) -> Running {
    start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .add_service(EchoServer::new(service))
            .serve_with_listener_and_shutdown(listener, shutdown)
    })
}

/// The shutdown signal [`start_serving`] hands its server.
pub(crate) type Shutdown = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// Serves what `serve` builds on a fresh 127.0.0.1 listener, until [`Running::stop`] sends
/// the shutdown: the start-up every hostile test's server shares.
pub(crate) fn start_serving<Fut>(
    serve: impl FnOnce(tokio::net::TcpListener, Shutdown) -> Fut,
) -> Running
where
    Fut: Future<Output = std::io::Result<()>> + Send + 'static,
{
    start_serving_with(&Default::default(), serve)
}

/// [`start_serving`] on a listener bound with `socket`'s options (its accepted connections
/// inherit its buffer sizes).
pub(crate) fn start_serving_with<Fut>(
    socket: &sockrpc::transport::SocketConfig,
    serve: impl FnOnce(tokio::net::TcpListener, Shutdown) -> Fut,
) -> Running
where
    Fut: Future<Output = std::io::Result<()>> + Send + 'static,
{
    count_worker_panics();
    let listener = sockrpc::transport::bind_tcp("127.0.0.1:0".parse().expect("address"), socket)
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(
        listener,
        Box::pin(async move {
            let _ = stopped.await;
        }),
    ));
    Running {
        addr,
        stop: Some(stop),
        task,
    }
}

pub(crate) async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    // In slices, so that the paused clock cannot jump past bytes still in flight.
    sockrpc_tests::bounded::within(BOUND, what, future).await
}

/// One echo call on a fresh connection, checked.
pub(crate) async fn fresh_call(addr: SocketAddr, id: u64) {
    let mut client = bounded("connect", EchoClient::connect(format!("tcp://{addr}")))
        .await
        .expect("a well-behaved client connects");
    let payload = format!("fresh {id}").into_bytes();
    let reply = bounded(
        "echo",
        client.echo(EchoRequest {
            payload: payload.clone().into(),
            id,
        }),
    )
    .await
    .expect("a well-behaved call succeeds")
    .into_inner();
    assert_eq!(reply.id, id);
    assert_eq!(&reply.payload[..], &payload[..]);
}

/// A generated client calling in a loop on one connection while the attack runs.
pub(crate) struct Witness {
    stop: Arc<AtomicBool>,
    calls: Arc<AtomicU64>,
    pub(crate) task: JoinHandle<Result<u64, String>>,
}

impl Witness {
    pub(crate) async fn start(addr: SocketAddr) -> Witness {
        let mut client = bounded("witness connect", EchoClient::connect(addr.to_string()))
            .await
            .expect("witness connects");
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicU64::new(0));
        let (stop2, calls2) = (Arc::clone(&stop), Arc::clone(&calls));
        let task = tokio::spawn(async move {
            let mut done = 0u64;
            // Bounded: at most 20,000 calls (about a minute at the pace below).
            for i in 0..20_000u64 {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let payload = xorshift_bytes(i + 1, (i % 512) as usize);
                let reply = tokio::time::timeout(
                    BOUND,
                    client.echo(EchoRequest {
                        payload: payload.clone().into(),
                        id: i,
                    }),
                )
                .await
                .map_err(|_| format!("witness call {i} hung"))?
                .map_err(|status| format!("witness call {i} failed: {status:?}"))?
                .into_inner();
                if reply.id != i || reply.payload[..] != payload[..] {
                    return Err(format!("witness call {i}: wrong reply"));
                }
                done += 1;
                calls2.store(done, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Ok(done)
        });
        // "Before": the witness has succeeded at least once before the attack starts.
        bounded("witness first call", async {
            while calls.load(Ordering::SeqCst) == 0 && !task.is_finished() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
        Witness { stop, calls, task }
    }

    /// Waits until the witness made a few more calls after the attack, then stops it.
    pub(crate) async fn finish(self) {
        let seen = self.calls.load(Ordering::SeqCst);
        bounded("witness progress after the attack", async {
            while self.calls.load(Ordering::SeqCst) < seen + 3 && !self.task.is_finished() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
        self.stop.store(true, Ordering::SeqCst);
        let done = bounded("witness stop", self.task)
            .await
            .expect("witness task did not panic")
            .expect("the well-behaved client kept succeeding");
        assert!(done > seen, "witness made no calls after the attack");
    }
}

/// Runs `cases` against a fresh server with a witness before, during and after.
pub(crate) async fn attack(cases: Vec<Case>) {
    let server = start_echo(EchoImpl::default());
    fresh_call(server.addr, 1).await;
    let witness = Witness::start(server.addr).await;
    for case in &cases {
        expect_closed(server.addr, case).await;
    }
    witness.finish().await;
    fresh_call(server.addr, 2).await;
    server.stop().await;
}
