//! `sockrpc_interop::BenchmarkServer` answers each method as gRPC's reference benchmark server
//! does, and its unbounded streams stop when their client lets go.

use crate::support::{bounded, Bench, STEP, WHOLE};
use futures_util::stream;
use sockrpc::Code;
use sockrpc_interop::pb::SimpleRequest;
use std::time::Duration;
use tokio::time::Instant;

fn request(response_size: i32) -> SimpleRequest {
    SimpleRequest {
        response_size,
        ..Default::default()
    }
}

fn size(payload: Option<&sockrpc_interop::pb::Payload>) -> usize {
    payload.map_or(0, |p| p.body.len())
}

/// Waits (bounded) until the server holds no response stream.
async fn no_stream_left(bench: &Bench) {
    let deadline = Instant::now() + STEP;
    while bench.server.live_streams() > 0 {
        assert!(
            Instant::now() < deadline,
            "a response stream outlived its call"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// UnaryCall: `response_size` bytes; a negative size is `INVALID_ARGUMENT`, one past the
/// server's cap `RESOURCE_EXHAUSTED`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_answers_the_size_asked_for() {
    let bench = Bench::start();
    let mut client = bench.client().await;
    for asked in [0, 1, 1024, 65_536] {
        let answer = bounded("UnaryCall", client.unary_call(request(asked)))
            .await
            .expect("UnaryCall answers")
            .into_inner();
        assert_eq!(size(answer.payload.as_ref()), asked as usize);
    }
    let negative = bounded("UnaryCall", client.unary_call(request(-1))).await;
    assert_eq!(negative.expect_err("refused").code(), Code::InvalidArgument);
    let huge = sockrpc_interop::benchmark::MAX_RESPONSE_SIZE as i32 + 1;
    let too_big = bounded("UnaryCall", client.unary_call(request(huge))).await;
    assert_eq!(
        too_big.expect_err("refused").code(),
        Code::ResourceExhausted
    );
    bench.running.stop().await;
}

/// StreamingCall answers every request once, in turn; StreamingFromClient answers once, after
/// the last request, with the last request's size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_pong_and_client_stream_answer_as_grpc_does() {
    let bench = Bench::start();
    let mut client = bench.client().await;
    tokio::time::timeout(WHOLE, async {
        let (tx, rx) = tokio::sync::mpsc::channel::<SimpleRequest>(1);
        let pings = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
        tx.send(request(1)).await.expect("queued");
        let mut pongs = bounded("open StreamingCall", client.streaming_call(pings))
            .await
            .expect("StreamingCall opens")
            .into_inner();
        for asked in 1..=100 {
            let pong = bounded("pong", pongs.message())
                .await
                .expect("a pong")
                .expect("a pong, not the end");
            assert_eq!(size(pong.payload.as_ref()), asked);
            if asked < 100 {
                tx.send(request(asked as i32 + 1)).await.expect("queued");
            }
        }
        drop(tx);
        assert!(bounded("the end", pongs.message())
            .await
            .expect("a clean end")
            .is_none());

        let requests = stream::iter([request(5), request(7), request(3)]);
        let answer = bounded(
            "StreamingFromClient",
            client.streaming_from_client(requests),
        )
        .await
        .expect("StreamingFromClient answers")
        .into_inner();
        assert_eq!(size(answer.payload.as_ref()), 3);
    })
    .await
    .expect("test finished in time");
    no_stream_left(&bench).await;
    bench.running.stop().await;
}

/// StreamingFromServer goes on until its client drops the call, and then stops;
/// StreamingBothWays answers before the client half-closes and ends when it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_streams_stop_with_their_client() {
    let bench = Bench::start();
    let mut client = bench.client().await;
    tokio::time::timeout(WHOLE, async {
        let mut answers = bounded(
            "open StreamingFromServer",
            client.streaming_from_server(request(16)),
        )
        .await
        .expect("StreamingFromServer opens")
        .into_inner();
        for _ in 0..1000 {
            let answer = bounded("answer", answers.message())
                .await
                .expect("an answer")
                .expect("an answer, not the end");
            assert_eq!(size(answer.payload.as_ref()), 16);
        }
        assert_eq!(bench.server.live_streams(), 1);
        drop(answers);
        no_stream_left(&bench).await;

        let (tx, rx) = tokio::sync::mpsc::channel::<SimpleRequest>(1);
        let requests = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
        tx.send(request(8)).await.expect("queued");
        let mut answers = bounded(
            "open StreamingBothWays",
            client.streaming_both_ways(requests),
        )
        .await
        .expect("StreamingBothWays opens")
        .into_inner();
        // Answers come without further requests: no ping-pong.
        for _ in 0..100 {
            let answer = bounded("answer", answers.message())
                .await
                .expect("an answer")
                .expect("an answer, not the end");
            assert_eq!(size(answer.payload.as_ref()), 8);
        }
        drop(tx);
        loop {
            match bounded("the end", answers.message()).await {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(status) => panic!("StreamingBothWays failed: {status:?}"),
            }
        }
    })
    .await
    .expect("test finished in time");
    no_stream_left(&bench).await;
    bench.running.stop().await;
}
