//! Resilience middleware end to end over loopback TCP: retries, throttling and hedging on the
//! client, and gRPC's service config JSON driving them; concurrency, rate and shedding limits, the readiness queue and the server-wide
//! timeout on the server; interceptors on both sides; tower's own layers around generated
//! clients and servers.
//!
//! The servers here misbehave on purpose, by script: `Flaky` (the counter service, whose
//! methods carry every idempotency level) fails or stalls chosen attempts and records what it
//! saw; `Plain` (the echo service) sleeps (recording, by token, which sleeps run: `held`), fails,
//! and reports what it learned about the caller.

#[path = "middleware_resil/hedging.rs"]
mod hedging;
#[path = "middleware_resil/held.rs"]
mod held;
#[path = "middleware_resil/interceptors.rs"]
mod interceptors;
#[path = "middleware_resil/layers.rs"]
mod layers;
#[path = "middleware_resil/limits.rs"]
mod limits;
#[path = "middleware_resil/retry.rs"]
mod retry;
#[path = "middleware_resil/service_config.rs"]
mod service_config;

use bytes::Bytes;
use sockrpc::server::{Finish, ServerBuilder};
use sockrpc::{Code, Request, Response, Status};
use sockrpc_tests::counter::counter_server::{Counter, CounterServer};
use sockrpc_tests::counter::{AddRequest, GetRequest, Total};
use sockrpc_tests::echo::echo_server::Echo;
use sockrpc_tests::echo::{EchoReply, EchoRequest, FailRequest, GrowRequest, SleepRequest};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// A running server and the way to stop it.
struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    async fn start<L: Finish + Send + 'static>(builder: ServerBuilder<L>) -> Running {
        let listener = sockrpc::transport::bind_tcp(
            "127.0.0.1:0".parse().expect("addr"),
            &sockrpc::SocketConfig::default(),
        )
        .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(
            builder
                .grace_period(Duration::from_secs(2))
                .serve_with_listener_and_shutdown(listener, async {
                    let _ = stopped.await;
                }),
        );
        Running {
            addr,
            stop: Some(stop),
            task,
        }
    }

    async fn channel(&self) -> sockrpc::Channel {
        sockrpc::Channel::connect(self.addr).await.expect("connect")
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("server stops")
            .expect("server task")
            .expect("serve");
    }
}

/// Bounds a step of a test, so a hang fails it instead of the whole run.
async fn bounded<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish in 20 s"))
}

/// Runs `call`, which must fail `DEADLINE_EXCEEDED` at its `deadline` (measured from now),
/// and before `before`.
async fn ends_at_its_deadline<T: std::fmt::Debug>(
    call: impl std::future::Future<Output = Result<T, Status>>,
    deadline: Duration,
    before: Duration,
) {
    let started = std::time::Instant::now();
    let err = bounded("the call", call)
        .await
        .expect_err("it outlives its deadline");
    let elapsed = started.elapsed();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(elapsed >= deadline && elapsed < before, "took {elapsed:?}");
}

/// The counter service, `Flaky`, on a server of its own.
async fn flaky_server() -> (Flaky, Running) {
    let flaky = Flaky::default();
    let server =
        Running::start(sockrpc::Server::builder().add_service(CounterServer::new(flaky.clone())))
            .await;
    (flaky, server)
}

/// One attempt as `Flaky` saw it.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    method: &'static str,
    previous: Option<String>,
    /// The time the attempt was sent with (its deadline's remainder when it was sent): what a
    /// test of a deadline shared by attempts checks, whatever the machine's speed.
    timeout: Option<Duration>,
}

/// The counter service, failing and stalling on command.
#[derive(Default)]
struct FlakyState {
    /// The next this-many calls fail with `UNAVAILABLE` (after running: the server started them).
    fail_next: AtomicU32,
    /// Every call fails with `UNAVAILABLE`.
    fail_all: AtomicBool,
    /// A first attempt of `Get` (no `grpc-previous-rpc-attempts`) stalls for 5 s.
    stall_first: AtomicBool,
    /// When not zero, a first attempt of `Get` takes this many milliseconds, then fails with
    /// `UNAVAILABLE`; every later attempt stalls for 5 s.
    slow_first_then_stall: AtomicU64,
    /// Stalled attempts dropped before they finished (the client cancelled them).
    cancelled: AtomicU32,
    seen: Mutex<Vec<Seen>>,
}

#[derive(Clone, Default)]
struct Flaky(Arc<FlakyState>);

impl Flaky {
    fn seen(&self) -> Vec<Seen> {
        self.0.seen.lock().expect("lock").clone()
    }

    fn attempts(&self) -> usize {
        self.0.seen.lock().expect("lock").len()
    }

    fn fail_next(&self, n: u32) {
        self.0.fail_next.store(n, Ordering::SeqCst);
    }

    fn run(&self, method: &'static str, request: &Request<impl Sized>) -> Result<(), Status> {
        let previous = request
            .metadata()
            .get_str(sockrpc::service::PREVIOUS_ATTEMPTS_KEY)
            .map(str::to_owned);
        self.0.seen.lock().expect("lock").push(Seen {
            method,
            previous,
            timeout: request.timeout(),
        });
        let failing = self.0.fail_all.load(Ordering::SeqCst)
            || self
                .0
                .fail_next
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if failing {
            return Err(Status::unavailable(format!("{method} failed on purpose")));
        }
        Ok(())
    }
}

struct Stalled(Arc<FlakyState>, bool);

impl Drop for Stalled {
    fn drop(&mut self) {
        if !self.1 {
            self.0.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Counter for Flaky {
    async fn add(&self, request: Request<AddRequest>) -> Result<Response<Total>, Status> {
        self.run("Add", &request)?;
        Ok(Response::new(Total {
            total: request.into_inner().amount,
        }))
    }

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<Total>, Status> {
        let first = !request
            .metadata()
            .contains_key(sockrpc::service::PREVIOUS_ATTEMPTS_KEY);
        self.run("Get", &request)?;
        let slow = self.0.slow_first_then_stall.load(Ordering::SeqCst);
        if slow > 0 && first {
            tokio::time::sleep(Duration::from_millis(slow)).await;
            return Err(Status::unavailable("Get failed slowly on purpose"));
        }
        if (slow > 0 && !first) || (first && self.0.stall_first.load(Ordering::SeqCst)) {
            let mut stalled = Stalled(Arc::clone(&self.0), false);
            tokio::time::sleep(Duration::from_secs(5)).await;
            stalled.1 = true;
            return Ok(Response::new(Total { total: 1 }));
        }
        let attempt = self.attempts() as i64;
        Ok(Response::new(Total { total: attempt }))
    }

    async fn set(&self, request: Request<AddRequest>) -> Result<Response<Total>, Status> {
        self.run("Set", &request)?;
        Ok(Response::new(Total {
            total: request.into_inner().amount,
        }))
    }
}

/// Who the server thinks called: what interceptors attached, and the connection.
#[derive(Debug, Clone, PartialEq)]
struct Principal(String);

/// The echo service: `Echo` answers `whoami` with what it knows of the caller, `Sleep` sleeps,
/// `Fail` fails as asked.
#[derive(Clone, Default)]
struct Plain;

impl Echo for Plain {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let principal = request
            .extensions()
            .get::<Principal>()
            .map_or("-".to_owned(), |p| p.0.clone());
        let agent = request
            .metadata()
            .get_str("user-agent")
            .unwrap_or("-")
            .to_owned();
        let conn = request.conn_info().cloned();
        let message = request.into_inner();
        let payload = if message.payload.as_ref() == b"whoami" {
            let conn = conn.map_or("-".to_owned(), |c| {
                format!("{:?} {:?} {:?}", c.transport, c.peer, c.local)
            });
            Bytes::from(format!("{principal}|{agent}|{conn}"))
        } else {
            message.payload
        };
        Ok(Response::new(EchoReply {
            payload,
            id: message.id,
        }))
    }

    async fn sleep(&self, request: Request<SleepRequest>) -> Result<Response<EchoReply>, Status> {
        let timeout = request.timeout();
        let SleepRequest { millis, token } = request.into_inner();
        let _holding = held::Holding::begin(token, timeout);
        tokio::time::sleep(Duration::from_millis(millis)).await;
        Ok(Response::new(EchoReply::default()))
    }

    async fn fail(&self, request: Request<FailRequest>) -> Result<Response<EchoReply>, Status> {
        let FailRequest { code, message, .. } = request.into_inner();
        Err(Status::new(Code::from_u32(code as u32), message))
    }

    async fn grow(&self, request: Request<GrowRequest>) -> Result<Response<EchoReply>, Status> {
        let size = request.into_inner().size as usize;
        Ok(Response::new(EchoReply {
            payload: Bytes::from(vec![7u8; size]),
            id: 0,
        }))
    }
}

/// A request for `Get` with a `grpc-timeout` entry, tonic's form of a deadline.
fn get_with_grpc_timeout(value: &str) -> sockrpc::Request<GetRequest> {
    let mut request = sockrpc::Request::new(GetRequest {});
    request
        .metadata_mut()
        .insert_str(sockrpc::protocol::GRPC_TIMEOUT_KEY, value)
        .expect("ascii");
    request
}

fn sleep_request(millis: u64) -> SleepRequest {
    SleepRequest {
        millis,
        token: String::new(),
    }
}

fn whoami() -> EchoRequest {
    EchoRequest {
        payload: Bytes::from_static(b"whoami"),
        id: 0,
    }
}

/// The pushback a refusal carries.
fn pushback(status: &Status) -> Option<Duration> {
    match sockrpc::service::Pushback::of(status) {
        Some(sockrpc::service::Pushback::RetryAfter(delay)) => Some(delay),
        _ => None,
    }
}
