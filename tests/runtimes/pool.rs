//! The pool's reconnecting task when the runtime running it ends while another runtime uses
//! the pool: the task's end must not leave the other runtime's calls without a reconnect.
//!
//! Both tests start with the task in its backoff on the first runtime (the server refused the
//! first attempt; the next is 30 s off), and a server that starts listening afterwards on the
//! same socket (bound, not yet listening: refused, then accepting, with no port given up).

use super::support::{on_runtime, serving, Flavor, Server, BOUND};
use sockrpc::client::Backoff;
use sockrpc::{Channel, Code, Endpoint, Request, Status};
use sockrpc_tests::helloworld::greeter_client::GreeterClient;
use sockrpc_tests::helloworld::HelloRequest;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpSocket;

/// A socket bound on loopback that does not listen yet: connects to it are refused.
fn bound_not_listening() -> (TcpSocket, SocketAddr) {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let addr = socket.local_addr().expect("addr");
    (socket, addr)
}

/// A lazy channel to `addr` whose reconnects back off 30 s after a failure.
fn channel_to(addr: SocketAddr) -> Channel {
    let endpoint = Endpoint::from_uri(&format!("tcp://{addr}"))
        .expect("endpoint")
        .backoff(Backoff::starting_at(Duration::from_secs(30)).max(Duration::from_secs(60)));
    Channel::lazy(endpoint).expect("channel")
}

async fn hello(channel: &Channel, wait_for_ready: bool) -> Result<(), Status> {
    let mut client = GreeterClient::new(channel.clone());
    let mut request = Request::new(HelloRequest { name: "x".into() });
    request.set_timeout(Duration::from_secs(5));
    if wait_for_ready {
        request.set_wait_for_ready(true);
    }
    client.say_hello(request).await.map(drop)
}

/// A first call, refused: the pool's task starts on this runtime, fails, and backs off.
async fn refused(channel: &Channel) {
    let err = hello(channel, false).await.expect_err("nothing listens");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
}

#[test]
fn a_call_waiting_when_the_tasks_runtime_shuts_down_gets_a_reconnect() {
    let serving = serving();
    let (socket, addr) = bound_not_listening();
    let channel = channel_to(addr);
    let (drop_first, first_may_drop) = std::sync::mpsc::channel::<()>();
    let (first_used, first_is_used) = std::sync::mpsc::channel::<()>();

    std::thread::scope(|scope| {
        // The first runtime: used, then left alone (its task parked in its backoff) until the
        // second runtime's call is waiting, then shut down.
        let channel_ref = &channel;
        scope.spawn(move || {
            let first = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            first.block_on(async {
                tokio::time::timeout(BOUND, refused(channel_ref))
                    .await
                    .expect("refused in time");
            });
            first_used.send(()).expect("test waits");
            let _ = first_may_drop.recv_timeout(BOUND * 2);
            drop(first);
        });
        first_is_used
            .recv_timeout(BOUND)
            .expect("first runtime used");
        let server = serving.block_on(async { Server::on(socket.listen(64).expect("listen")) });

        on_runtime(Flavor::Multi, "second runtime", || async {
            // Waits for a connection: the pool's task is still counted as running (on the
            // first runtime, in its backoff), so this call starts none.
            let call = tokio::spawn({
                let channel = channel.clone();
                async move { hello(&channel, true).await }
            });
            tokio::time::sleep(Duration::from_millis(300)).await;
            // The first runtime shuts down, the task with it.
            drop_first.send(()).expect("first runtime waits");
            let answer = call.await.expect("task");
            answer.unwrap_or_else(|status| {
                panic!(
                    "the waiting call got no reconnect after the task's runtime ended: {status:?}"
                )
            });
        });
        drop(server);
    });
    drop(channel);
    drop(serving);
}

#[test]
fn after_the_tasks_runtime_ended_in_backoff_a_fail_fast_call_connects_at_once() {
    let serving = serving();
    let (socket, addr) = bound_not_listening();
    let channel = channel_to(addr);
    on_runtime(Flavor::Current, "first runtime", || refused(&channel));
    let server = serving.block_on(async { Server::on(socket.listen(64).expect("listen")) });

    // The first runtime's backoff (30 s) ended with its task: a fail-fast call on the next
    // runtime gets an attempt now rather than failing at once for a retry nobody will make.
    on_runtime(Flavor::Multi, "second runtime", || async {
        hello(&channel, false)
            .await
            .unwrap_or_else(|status| panic!("a fail-fast call on the next runtime: {status:?}"));
    });
    drop(server);
    drop(channel);
    drop(serving);
}
