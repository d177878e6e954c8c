//! grpc-go's `TestContextDeadlineNotIgnored`, `TestLargeTimeout` and the deadline cases of
//! `timeouts_test.go`: a deadline already past when the call starts fails the call
//! `DEADLINE_EXCEEDED` without the server running anything, in every call shape; a deadline
//! years away neither overflows nor cuts the call short; the handler sees the time left.

use crate::support::{bounded, channel, serve, with_meta, Peer};
use futures_util::stream;
use sockrpc::{Code, Request, Response, Server, Status};
use sockrpc_tests::parity::test1_client::Test1Client;
use sockrpc_tests::parity::test1_server::Test1Server;
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::{Input, Input1, Output};
use std::time::Duration;

fn timed<T>(message: T, timeout: Duration) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(timeout);
    request
}

#[tokio::test]
async fn a_zero_deadline_fails_every_shape_without_reaching_the_handler() {
    let peer = Peer::default();
    let server = serve(Server::builder().add_service(Test1Server::new(peer.clone())));
    let mut client = Test1Client::new(channel(server.addr).await);
    for timeout in [Duration::ZERO, Duration::from_nanos(1)] {
        let err = bounded(
            "unary",
            client.unary_call(timed(Input1::default(), timeout)),
        )
        .await
        .expect_err("already expired");
        assert_eq!(
            err.code(),
            Code::DeadlineExceeded,
            "unary {timeout:?}: {err:?}"
        );

        let result = bounded("stream", async {
            let mut messages = client
                .stream_call(timed(Input1::default(), timeout))
                .await?
                .into_inner();
            messages.message().await
        })
        .await;
        let err = result.expect_err("already expired");
        assert_eq!(
            err.code(),
            Code::DeadlineExceeded,
            "stream {timeout:?}: {err:?}"
        );

        let requests = stream::iter(vec![Input1::default()]);
        let err = bounded("collect", client.collect(timed(requests, timeout)))
            .await
            .expect_err("already expired");
        assert_eq!(
            err.code(),
            Code::DeadlineExceeded,
            "collect {timeout:?}: {err:?}"
        );

        let result = bounded("chat", async {
            let requests = stream::iter(vec![Input1::default()]);
            let mut messages = client.chat(timed(requests, timeout)).await?.into_inner();
            messages.message().await
        })
        .await;
        let err = result.expect_err("already expired");
        assert_eq!(
            err.code(),
            Code::DeadlineExceeded,
            "chat {timeout:?}: {err:?}"
        );
    }
    // The same deadline given as tonic's and grpc-go's programs give it, in metadata.
    for value in ["0n", "0m", "0S"] {
        let request = with_meta(Input1::default(), &[("grpc-timeout", value)]);
        let err = bounded("unary", client.unary_call(request))
            .await
            .expect_err("already expired");
        assert_eq!(
            err.code(),
            Code::DeadlineExceeded,
            "grpc-timeout {value}: {err:?}"
        );
    }
    // A call without a deadline still works, and no handler ever ran for the expired ones.
    bounded("unary", client.unary_call(Input1::default()))
        .await
        .expect("served");
    assert_eq!(peer.counts.started(), 1, "expired calls reached a handler");
    server.stop().await;
}

/// Answers with the timeout the handler saw, in whole seconds.
#[derive(Clone)]
struct SeesTimeout;

impl Test for SeesTimeout {
    async fn unary_call(&self, request: Request<Input>) -> Result<Response<Output>, Status> {
        let message = match request.timeout() {
            Some(timeout) => timeout.as_secs().to_string(),
            None => "none".to_owned(),
        };
        Ok(Response::new(Output { message }))
    }
}

#[tokio::test]
async fn deadlines_years_away_work_and_the_handler_sees_the_time_left() {
    let server = serve(Server::builder().add_service(TestServer::new(SeesTimeout)));
    let mut client = TestClient::new(channel(server.addr).await);
    let year = Duration::from_secs(365 * 24 * 3600);
    let cases = [
        (Duration::from_secs(60), 59..=60),
        (year * 10, (year * 10).as_secs() - 1..=(year * 10).as_secs()),
        (
            year * 20_000,
            sockrpc::MAX_TIMEOUT.as_secs() - 1..=sockrpc::MAX_TIMEOUT.as_secs(),
        ),
        (
            Duration::MAX,
            sockrpc::MAX_TIMEOUT.as_secs() - 1..=sockrpc::MAX_TIMEOUT.as_secs(),
        ),
    ];
    for (timeout, seen) in cases {
        let answer = bounded("unary", client.unary_call(timed(Input {}, timeout)))
            .await
            .unwrap_or_else(|e| panic!("{timeout:?}: {e:?}"))
            .into_inner();
        let secs: u64 = answer.message.parse().expect("a timeout was seen");
        assert!(
            seen.contains(&secs),
            "{timeout:?}: the handler saw {secs} s"
        );
    }
    let answer = bounded("unary", client.unary_call(Input {}))
        .await
        .expect("served")
        .into_inner();
    assert_eq!(answer.message, "none");
    server.stop().await;
}

#[tokio::test]
async fn a_huge_deadline_on_a_stream_does_not_cut_it_short() {
    let server = serve(Server::builder().add_service(Test1Server::new(Peer::default())));
    let mut client = Test1Client::new(channel(server.addr).await);
    let mut request = with_meta(Input1::default(), &[("x-count", "3")]);
    request.set_timeout(Duration::MAX);
    let mut messages = bounded("open", client.stream_call(request))
        .await
        .expect("opens")
        .into_inner();
    let mut count = 0;
    while bounded("message", messages.message())
        .await
        .expect("message")
        .is_some()
    {
        count += 1;
    }
    assert_eq!(count, 3);
    server.stop().await;
}
