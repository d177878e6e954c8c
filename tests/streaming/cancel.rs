//! Must show 3, and deadlines: dropping a client's stream, or its deadline passing, ends the
//! server's side too, and the connection carries later calls.

use crate::support::{
    bounded, fed_by, next, only_connection, tagged, unary_promptly, wait_until, Running, STEP,
    WHOLE,
};
use bytes::Bytes;
use sockrpc::Code;
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::{Chunk, ProduceRequest};
use std::time::Duration;
use tokio::sync::mpsc;

/// Must show 3: dropping a client's stream midway — bidi, then server streaming — cancels the
/// server's side (its stream is dropped before its end), stops the client's request stream,
/// and the same connection carries later calls, streaming and unary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_client_stream_cancels_the_server_and_the_connection_lives_on() {
    let server = Running::start();
    let channel = server.channel().await;
    let conn = only_connection(&channel);
    let mut client = StreamerClient::new(channel.clone());
    tokio::time::timeout(WHOLE, async {
        // Bidi: ten round trips, then the client drops its response stream.
        let probe = server.streamer.probe("cancel-bidi");
        let (tx, rx) = mpsc::channel::<Chunk>(1);
        let mut responses = bounded(
            "open PingPong",
            client.ping_pong(tagged(fed_by(rx), "cancel-bidi")),
        )
        .await
        .expect("PingPong opens")
        .into_inner();
        for seq in 0..10 {
            let ping = Chunk {
                seq,
                payload: Bytes::from(vec![seq as u8, 1, 2]),
            };
            bounded("send", tx.send(ping))
                .await
                .expect("request stream open");
            assert_eq!(next("pong", &mut responses).await.seq, seq);
        }
        drop(responses);
        wait_until("the server's bidi stream is dropped", || probe.cancelled()).await;
        assert_eq!(probe.received(), 10);
        // The client stops pulling its request stream too: the receiver half is dropped.
        bounded("the request stream is dropped", tx.closed()).await;

        // Server streaming: a long stream, dropped after ten messages.
        let probe = server.streamer.probe("cancel-server");
        let request = ProduceRequest {
            count: 1_000_000,
            size: 16,
            ..Default::default()
        };
        let mut responses = bounded(
            "open Produce",
            client.produce(tagged(request, "cancel-server")),
        )
        .await
        .expect("Produce opens")
        .into_inner();
        for seq in 0..10 {
            assert_eq!(next("message", &mut responses).await.seq, seq);
        }
        drop(responses);
        wait_until("the server's response stream is dropped", || {
            probe.cancelled()
        })
        .await;
        let produced = probe.produced();
        assert!(produced < 1_000_000, "stopped early: {produced}");
        // Stopped for good: nothing more is produced after the drop was observed.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(probe.produced(), produced);

        // The same connection carries later calls.
        wait_until("the client forgets the cancelled calls", || {
            conn.in_flight() == 0
        })
        .await;
        unary_promptly(&channel, 99, STEP).await;
        let request = ProduceRequest {
            count: 100,
            size: 8,
            ..Default::default()
        };
        let mut responses = bounded("open Produce again", client.produce(request))
            .await
            .expect("Produce opens")
            .into_inner();
        for seq in 0..100 {
            assert_eq!(next("message", &mut responses).await.seq, seq);
        }
        assert!(bounded("end", responses.message())
            .await
            .expect("clean end")
            .is_none());
        assert_eq!(
            only_connection(&channel).peer_addr(),
            conn.peer_addr(),
            "no reconnect happened"
        );
        assert!(!conn.is_closed());
    })
    .await
    .expect("the test finishes in time");
    server.stop().await;
}

/// A deadline ends both sides of a server stream slower than it: the client gets
/// `DeadlineExceeded`, the server's stream is dropped before its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_ends_a_server_stream_on_both_sides() {
    let server = Running::start();
    let channel = server.channel().await;
    let mut client = StreamerClient::new(channel.clone());
    let probe = server.streamer.probe("deadline-server");
    let request = ProduceRequest {
        count: 1000,
        size: 8,
        delay_ms: 100,
        ..Default::default()
    };
    let mut request = tagged(request, "deadline-server");
    request.set_timeout(Duration::from_millis(350));
    let mut responses = bounded("open Produce", client.produce(request))
        .await
        .expect("Produce opens")
        .into_inner();
    let mut received = 0u64;
    let status = loop {
        match bounded("message", responses.message()).await {
            Ok(Some(chunk)) => {
                assert_eq!(chunk.seq, received);
                received += 1;
                assert!(received < 1000, "the deadline never hit");
            }
            Ok(None) => panic!("the stream ended cleanly despite its deadline"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(bounded("after", responses.message())
        .await
        .expect("ended")
        .is_none());
    wait_until("the server's stream is dropped at the deadline", || {
        probe.cancelled()
    })
    .await;
    unary_promptly(&channel, 5, STEP).await;
    server.stop().await;
}

/// A deadline ends both sides of a client stream that never ends: the client gets
/// `DeadlineExceeded`, the server's handler is dropped, the client's request stream too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_ends_a_client_stream_on_both_sides() {
    let server = Running::start();
    let channel = server.channel().await;
    let mut client = StreamerClient::new(channel.clone());
    let probe = server.streamer.probe("deadline-client");
    let (tx, rx) = mpsc::channel::<Chunk>(1);
    let mut request = tagged(fed_by(rx), "deadline-client");
    request.set_timeout(Duration::from_millis(300));
    let call = tokio::spawn(async move { client.collect(request).await });
    for seq in 0..3 {
        let chunk = Chunk {
            seq,
            payload: Bytes::new(),
        };
        bounded("send", tx.send(chunk))
            .await
            .expect("request stream open");
    }
    // ...and then nothing more, never ending.
    let status = bounded("Collect", call)
        .await
        .expect("no panic")
        .expect_err("the deadline ends the call");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    wait_until("the server's handler is dropped at the deadline", || {
        probe.cancelled()
    })
    .await;
    // All three, unless the deadline beat the server to some of them.
    assert!(probe.received() <= 3);
    bounded("the request stream is dropped", tx.closed()).await;
    unary_promptly(&channel, 6, STEP).await;
    server.stop().await;
}

/// A request stream that fails mid-call cancels the call; the call ends `CANCELLED` with the
/// stream's message, not with the stream's own code (an `UNAVAILABLE` relayed from elsewhere, a
/// quota's `RESOURCE_EXHAUSTED`, must not read as this server's), and the connection carries
/// later calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_stream_that_fails_ends_its_call_cancelled_with_the_reason() {
    let server = Running::start();
    let channel = server.channel().await;
    for error in [
        sockrpc::Status::unavailable("the upstream went away"),
        sockrpc::Status::resource_exhausted("the upstream's quota ran out"),
    ] {
        let status = stream_failing_with(&channel, error.clone()).await;
        assert_eq!(status.code(), Code::Cancelled, "{status:?}");
        assert!(status.message().contains(error.message()), "{status:?}");
    }
    unary_promptly(&channel, 9, STEP).await;
    server.stop().await;
}

/// The status of a PingPong call whose request stream sends one message, then fails with
/// `error`.
async fn stream_failing_with(
    channel: &sockrpc::Channel,
    error: sockrpc::Status,
) -> sockrpc::Status {
    use sockrpc::service::{Body, Call};
    use sockrpc::{MethodPath, Request};
    use tower::{Service, ServiceExt};

    let first = prost::Message::encode_to_vec(&Chunk {
        seq: 1,
        payload: Bytes::from_static(b"one"),
    });
    let messages = futures_util::stream::iter([Ok(Bytes::from(first)), Err(error)]);
    let call = Call::new(
        MethodPath::from_static("/sockrpc.test.stream.Streamer/PingPong"),
        Request::new(Body::from_stream(messages)),
    )
    .with_streaming_response();
    let mut channel = channel.clone();
    let ready = bounded("ready", channel.ready()).await.expect("ready");
    let mut body = match bounded("open", ready.call(call)).await {
        Err(status) => return status,
        Ok(response) => response.into_inner(),
    };
    for _ in 0..4 {
        match bounded("read", std::future::poll_fn(|cx| body.poll_message(cx))).await {
            Some(Err(status)) => return status,
            Some(Ok(_)) => continue,
            None => break,
        }
    }
    panic!("the call did not fail");
}
