//! gRPC's `MAX_CONNECTION_AGE` and its grace, server side, with a real client's pool: a
//! connection past its age is sent away, its calls in flight finish (or, past the grace, fail
//! `UNAVAILABLE`), and the client's next calls go on a new connection without one failing.

use super::BOUND;
use sockrpc::{Channel, Code, Request, Response, Server, Status};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::{Echo, EchoServer};
use sockrpc_tests::echo::{EchoReply, EchoRequest, FailRequest, GrowRequest, SleepRequest};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Notes the client port of every call, so a test can tell how many connections carried them.
#[derive(Clone, Default)]
struct Ports(Arc<Mutex<HashSet<u16>>>);

impl Ports {
    fn note<T>(&self, request: &Request<T>) {
        if let Some(peer) = request.remote_addr() {
            self.0.lock().expect("lock").insert(peer.port());
        }
    }

    fn count(&self) -> usize {
        self.0.lock().expect("lock").len()
    }
}

impl Echo for Ports {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        self.note(&request);
        Ok(Response::new(EchoReply {
            payload: request.get_ref().payload.clone(),
            id: request.get_ref().id,
        }))
    }

    async fn sleep(&self, request: Request<SleepRequest>) -> Result<Response<EchoReply>, Status> {
        self.note(&request);
        tokio::time::sleep(Duration::from_millis(request.into_inner().millis)).await;
        Ok(Response::new(EchoReply::default()))
    }

    async fn fail(&self, _: Request<FailRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::internal("not used"))
    }

    async fn grow(&self, _: Request<GrowRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::internal("not used"))
    }
}

/// A server whose connections live `age`, then `grace` for their calls (`None`: unbounded).
async fn serve(age: Duration, grace: Option<Duration>) -> (SocketAddr, Ports, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let ports = Ports::default();
    let mut builder = Server::builder().max_connection_age(age);
    if let Some(grace) = grace {
        builder = builder.max_connection_age_grace(grace);
    }
    let (stop, stopped) = oneshot::channel::<()>();
    let server = builder
        .add_service(EchoServer::new(ports.clone()))
        .serve_with_listener_and_shutdown(listener, async {
            let _ = stopped.await;
        });
    tokio::spawn(server);
    (addr, ports, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_their_age_are_replaced_without_failing_a_call() {
    let (addr, ports, _stop) = serve(Duration::from_millis(300), None).await;
    let channel = Channel::connect(format!("tcp://{addr}"))
        .await
        .expect("connect");
    let client = EchoClient::new(channel);
    // A call that outlives the first connection's age: the GOAWAY lets it finish.
    let mut long = client.clone();
    let long = tokio::spawn(async move {
        long.sleep(SleepRequest {
            millis: 900,
            ..Default::default()
        })
        .await
    });

    // Four callers back to back, so calls race each GOAWAY: one sent just as the server sent
    // it away is refused unstarted and goes again on the new connection, never failed.
    let mut callers = Vec::new();
    for caller in 0..4u64 {
        let mut client = client.clone();
        callers.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut calls = 0;
            // Bounded: 200,000 calls, 1.2 s (the time ends it first).
            for i in 0..200_000 {
                if started.elapsed() >= Duration::from_millis(1_200) {
                    break;
                }
                let id = caller << 32 | i;
                let request = EchoRequest {
                    payload: b"age".to_vec().into(),
                    id,
                };
                let reply = tokio::time::timeout(BOUND, client.echo(request))
                    .await
                    .expect("answered in time")
                    .unwrap_or_else(|err| panic!("call {id} failed across an age: {err:?}"));
                assert_eq!(reply.into_inner().id, id);
                calls += 1;
            }
            calls
        }));
    }
    let mut calls = 0;
    for caller in callers {
        calls += caller.await.expect("no call failed");
    }
    tokio::time::timeout(BOUND, long)
        .await
        .expect("the long call ends")
        .expect("task")
        .expect("a call in flight at the GOAWAY finishes on its connection");
    // Connections live 270–330 ms: 1.2 s of calls took at least four (three, to leave room for
    // a slow reconnect).
    let connections = ports.count();
    assert!(
        connections >= 3,
        "{calls} calls over {connections} connection(s)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_still_running_when_the_grace_ends_fails_unavailable() {
    let (addr, ports, _stop) =
        serve(Duration::from_millis(200), Some(Duration::from_millis(200))).await;
    let channel = Channel::connect(format!("tcp://{addr}"))
        .await
        .expect("connect");
    let mut client = EchoClient::new(channel);
    let mut request = Request::new(SleepRequest {
        millis: 30_000,
        ..Default::default()
    });
    request.set_timeout(Duration::from_secs(60));
    let started = Instant::now();
    let err = tokio::time::timeout(BOUND, client.sleep(request))
        .await
        .expect("ends with the grace, not the handler's 30 s")
        .expect_err("closed under the call");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(started.elapsed() < BOUND);
    // The client's next call goes on a new connection.
    let reply = tokio::time::timeout(BOUND, client.echo(EchoRequest::default()))
        .await
        .expect("answered in time");
    reply.expect("a new connection takes the call");
    assert_eq!(ports.count(), 2);
}
