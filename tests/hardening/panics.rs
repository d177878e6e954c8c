//! Behaviour 1: a handler that panics fails its own call with `INTERNAL` and nothing else —
//! whether it panics on its first poll (inline, on the connection's task), after an await (in a
//! task of its own), or in its response stream midway. Calls in flight beside it and calls after
//! it succeed on the same connection, and a panicked handler gives its call slot back.
//!
//! Before the fix, a panic on the first poll killed the connection task and every call on it;
//! a panic in a spawned handler or stream sent no END (the call hung) and kept its slot.

use crate::service::{HardEcho, HardStreamer, PANIC};
use crate::support::{bounded, one_connection, wait_until, Running};
use sockrpc::{Code, Server};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::{EchoRequest, FailRequest, SleepRequest};
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::streamer_server::StreamerServer;
use sockrpc_tests::stream::{Chunk, ProduceRequest};
use tokio::task::JoinHandle;

fn echo_server(echo: &HardEcho) -> sockrpc::server::ServerBuilder<tower::layer::util::Identity> {
    Server::builder().add_service(EchoServer::new(echo.clone()))
}

/// Starts a `Sleep` of `millis` on `client`'s connection and waits until its handler runs.
async fn call_in_flight(
    client: &EchoClient,
    echo: &HardEcho,
    millis: u64,
) -> JoinHandle<Result<sockrpc::Response<sockrpc_tests::echo::EchoReply>, sockrpc::Status>> {
    let before = echo.seen.sleeping();
    let mut client = client.clone();
    let call = tokio::spawn(async move {
        client
            .sleep(SleepRequest {
                millis,
                token: "in flight".into(),
            })
            .await
    });
    wait_until("the call in flight reached its handler", || {
        echo.seen.sleeping() > before
    })
    .await;
    call
}

/// Echo calls that must all succeed.
async fn echo_calls(client: &mut EchoClient, ids: std::ops::Range<u64>) {
    for id in ids {
        let reply = bounded(
            "echo",
            client.echo(EchoRequest {
                payload: vec![7; 9].into(),
                id,
            }),
        )
        .await
        .unwrap_or_else(|status| panic!("echo {id} after the panic failed: {status:?}"))
        .into_inner();
        assert_eq!(reply.id, id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_panicking_on_first_poll_fails_only_its_call() {
    let echo = HardEcho::default();
    let server = Running::start(echo_server(&echo));
    let (channel, conn) = one_connection(server.addr).await;
    let mut client = EchoClient::new(channel);
    let in_flight = call_in_flight(&client, &echo, 300).await;

    // `Fail` with this message panics before its first await: on the connection's task.
    let status = bounded(
        "the panicking call",
        client.fail(FailRequest {
            code: 0,
            message: PANIC.into(),
            details: Default::default(),
        }),
    )
    .await
    .expect_err("a panicking handler cannot succeed");
    assert_eq!(status.code(), Code::Internal, "{status:?}");

    bounded("the call in flight", in_flight)
        .await
        .expect("task")
        .expect("the call in flight beside the panic succeeds");
    echo_calls(&mut client, 0..3).await;
    assert!(!conn.is_closed(), "the connection survived the panic");
    assert_eq!(
        conn.calls_started(),
        5,
        "every call went over that one connection"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_panicking_after_an_await_fails_only_its_call() {
    let echo = HardEcho::default();
    let server = Running::start(echo_server(&echo));
    let (channel, conn) = one_connection(server.addr).await;
    let mut client = EchoClient::new(channel);
    let in_flight = call_in_flight(&client, &echo, 300).await;

    // `Sleep` with this token panics after its sleep: in the task the handler was moved to.
    let status = bounded(
        "the panicking call",
        client.sleep(SleepRequest {
            millis: 20,
            token: PANIC.into(),
        }),
    )
    .await
    .expect_err("a panicking handler cannot succeed");
    assert_eq!(status.code(), Code::Internal, "{status:?}");

    bounded("the call in flight", in_flight)
        .await
        .expect("task")
        .expect("the call in flight beside the panic succeeds");
    echo_calls(&mut client, 0..3).await;
    assert!(!conn.is_closed(), "the connection survived the panic");
    assert_eq!(
        conn.calls_started(),
        5,
        "every call went over that one connection"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicked_handler_releases_its_call_slot() {
    let echo = HardEcho::default();
    let server = Running::start(echo_server(&echo).max_concurrent_calls(1));
    let (channel, conn) = one_connection(server.addr).await;
    let mut client = EchoClient::new(channel);
    for round in 0..3 {
        let status = bounded(
            "the panicking call",
            client.sleep(SleepRequest {
                millis: 10,
                token: PANIC.into(),
            }),
        )
        .await
        .expect_err("a panicking handler cannot succeed");
        assert_eq!(status.code(), Code::Internal, "round {round}: {status:?}");
        // The only slot is free again: not RESOURCE_EXHAUSTED.
        echo_calls(&mut client, round..round + 1).await;
    }
    assert!(!conn.is_closed());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_stream_panicking_midway_ends_its_call_with_internal() {
    let streamer = HardStreamer::default();
    let server = Running::start(
        Server::builder()
            .max_concurrent_calls(1)
            .add_service(StreamerServer::new(streamer)),
    );
    let (channel, conn) = one_connection(server.addr).await;
    let mut client = StreamerClient::new(channel);
    let mut stream = bounded(
        "open Produce",
        client.produce(ProduceRequest {
            count: 10,
            size: 16,
            fail_after: Some(3),
            ..Default::default()
        }),
    )
    .await
    .expect("the stream starts")
    .into_inner();
    for seq in 0..3 {
        let chunk = bounded("a chunk before the panic", stream.message())
            .await
            .expect("chunks before the panic arrive")
            .expect("not the end yet");
        assert_eq!(chunk.seq, seq);
    }
    let status = bounded("the end of the panicked stream", stream.message())
        .await
        .expect_err("a panicked stream ends with an error, not a clean end");
    assert_eq!(status.code(), Code::Internal, "{status:?}");

    // The connection and its only call slot are still there.
    for seq in 0..3 {
        let reply = bounded(
            "unary",
            client.unary(Chunk {
                seq,
                payload: Default::default(),
            }),
        )
        .await
        .unwrap_or_else(|status| panic!("call {seq} after the panic failed: {status:?}"))
        .into_inner();
        assert_eq!(reply.seq, seq);
    }
    assert!(!conn.is_closed());
    server.stop().await;
}
