//! Must show 4, and the other call shapes: bidi ping-pong, half-close of client and bidi
//! streams, trailers ending every call, a server error mid-stream.

use crate::support::{
    bounded, fed_by, next, tagged, unary_promptly, wait_until, Running, STEP, WHOLE,
};
use bytes::Bytes;
use futures_util::stream;
use sockrpc::Code;
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::{Chunk, ProduceRequest};
use std::time::Duration;
use tokio::sync::mpsc;

/// Must show 4: 10,000 round trips on one bidi stream with one message in flight: each request
/// is sent only after the previous response arrived, carries a distinct payload, and its
/// response (same `seq`, payload reversed) is matched to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidi_ping_pong_ten_thousand_round_trips() {
    const ROUNDS: u64 = 10_000;
    let server = Running::start();
    let channel = server.channel().await;
    let mut client = StreamerClient::new(channel.clone());
    let probe = server.streamer.probe("ping-pong");
    tokio::time::timeout(WHOLE, async {
        let (tx, rx) = mpsc::channel::<Chunk>(1);
        let mut responses = bounded(
            "open PingPong",
            client.ping_pong(tagged(fed_by(rx), "ping-pong")),
        )
        .await
        .expect("PingPong opens")
        .into_inner();
        for seq in 0..ROUNDS {
            let payload = format!(
                "ping #{seq}: {:016x}",
                seq.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            );
            let ping = Chunk {
                seq,
                payload: Bytes::from(payload.clone()),
            };
            bounded("send", tx.send(ping))
                .await
                .expect("request stream open");
            let pong = next("pong", &mut responses).await;
            assert_eq!(pong.seq, seq, "response matched to its request");
            let mut expected = payload.into_bytes();
            expected.reverse();
            assert_eq!(pong.payload, expected, "payload of round {seq}");
        }
        // Half-close: the server's stream ends after the last answer, with trailers.
        drop(tx);
        let end = bounded("end", responses.message())
            .await
            .expect("clean end");
        assert!(end.is_none(), "exactly one response per request");
        assert!(responses.trailers_now().is_some(), "trailers end the call");
        wait_until("the server saw the end", || probe.finished()).await;
        assert_eq!(probe.received(), ROUNDS as usize);
        assert_eq!(probe.produced(), ROUNDS as usize);
    })
    .await
    .expect("the test finishes in time");
    server.stop().await;
}

/// Half-close, client streaming: the client streams N messages and ends; the server reads all
/// of them and answers after the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_stream_half_close_then_answer() {
    const N: u64 = 1000;
    let server = Running::start();
    let channel = server.channel().await;
    let mut client = StreamerClient::new(channel.clone());
    let probe = server.streamer.probe("collect");
    let chunks = stream::iter((0..N).map(|seq| Chunk {
        seq,
        payload: Bytes::from(vec![1; (seq % 300) as usize]),
    }));
    let response = bounded("Collect", client.collect(tagged(chunks, "collect")))
        .await
        .expect("Collect succeeds");
    let summary = response.get_ref();
    assert_eq!(summary.count, N);
    assert_eq!(summary.seq_sum, N * (N - 1) / 2);
    assert_eq!(summary.bytes, (0..N).map(|seq| seq % 300).sum::<u64>());
    assert_eq!(probe.received(), N as usize);
    assert!(probe.finished());
    server.stop().await;
}

/// Trailers end every call, client streaming included: the summary's response carries the
/// trailing metadata the server set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_stream_response_carries_trailers() {
    let server = Running::start();
    let channel = server.channel().await;
    let mut client = StreamerClient::new(channel.clone());
    let chunks = stream::iter((0..3).map(|seq| Chunk {
        seq,
        payload: Bytes::new(),
    }));
    let response = bounded("Collect", client.collect(chunks))
        .await
        .expect("Collect succeeds");
    assert_eq!(response.get_ref().count, 3);
    assert_eq!(
        response.trailers().get_str("x-collected"),
        Some("3"),
        "the client-streaming response lacks the server's trailers: {:?}",
        response.trailers()
    );
    server.stop().await;
}

/// Half-close, bidi: the client streams N messages, nothing comes back until it ends its side;
/// it keeps reading after the end and gets all N back (reversed), then trailers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidi_half_close_keeps_reading() {
    const N: u64 = 500;
    let server = Running::start();
    let channel = server.channel().await;
    let mut client = StreamerClient::new(channel.clone());
    let probe = server.streamer.probe("gather");
    let (tx, rx) = mpsc::channel::<Chunk>(16);
    let response = bounded("open Gather", client.gather(tagged(fed_by(rx), "gather")))
        .await
        .expect("Gather opens");
    assert_eq!(response.metadata().get_str("x-head"), Some("gather"));
    let mut responses = response.into_inner();
    for seq in 0..N {
        let chunk = Chunk {
            seq,
            payload: Bytes::from(seq.to_le_bytes().to_vec()),
        };
        bounded("send", tx.send(chunk))
            .await
            .expect("request stream open");
    }
    wait_until("the server read every request", || {
        probe.received() == N as usize
    })
    .await;
    // Not ended yet: the server answers nothing before the half-close.
    assert!(!probe.finished());
    let early = tokio::time::timeout(Duration::from_millis(50), responses.message()).await;
    assert!(early.is_err(), "an answer before the half-close: {early:?}");
    assert!(
        responses.trailers_now().is_none(),
        "no trailers before the end"
    );
    drop(tx);
    for seq in (0..N).rev() {
        let chunk = next("gathered", &mut responses).await;
        assert_eq!(chunk.seq, seq);
        assert_eq!(chunk.payload, seq.to_le_bytes().to_vec());
    }
    assert!(bounded("end", responses.message())
        .await
        .expect("clean end")
        .is_none());
    let trailers = responses
        .trailers_now()
        .expect("trailers after a clean end");
    assert_eq!(trailers.get_str("x-gather"), Some("done"));
    assert!(probe.finished());
    server.stop().await;
}

/// Trailers end a server stream: `Streaming::trailers()` is empty until the end, then carries
/// the server's trailing metadata; the head carries its leading metadata.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stream_ends_with_trailers() {
    let server = Running::start();
    let channel = server.channel().await;
    let mut client = StreamerClient::new(channel.clone());
    let request = ProduceRequest {
        count: 10,
        size: 3,
        ..Default::default()
    };
    let response = bounded("open Produce", client.produce(request))
        .await
        .expect("Produce opens");
    assert_eq!(response.metadata().get_str("x-head"), Some("produce"));
    let mut responses = response.into_inner();
    for seq in 0..10 {
        assert_eq!(next("message", &mut responses).await.seq, seq);
        assert!(
            responses.trailers_now().is_none(),
            "no trailers before the end"
        );
    }
    assert!(bounded("end", responses.message())
        .await
        .expect("clean end")
        .is_none());
    let trailers = responses
        .trailers_now()
        .expect("trailers after a clean end");
    assert_eq!(trailers.get_str("x-produced"), Some("10"));
    server.stop().await;
}

/// A server error mid-stream ends the client's stream with that status, code and message,
/// after the messages sent before it; an error before the first message likewise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_error_mid_stream_ends_the_client_stream_with_its_status() {
    let server = Running::start();
    let channel = server.channel().await;
    let mut client = StreamerClient::new(channel.clone());
    let message = "stopped at 5: disk \"full\"\t🦀";
    for fail_after in [5u64, 0] {
        let request = ProduceRequest {
            count: 100,
            size: 4,
            fail_after: Some(fail_after),
            fail_code: Code::FailedPrecondition.as_u32() as i32,
            fail_message: message.to_owned(),
            ..Default::default()
        };
        let mut responses = bounded("open Produce", client.produce(request))
            .await
            .expect("Produce opens")
            .into_inner();
        for seq in 0..fail_after {
            assert_eq!(
                next("message before the error", &mut responses).await.seq,
                seq
            );
        }
        let status = bounded("error", responses.message())
            .await
            .expect_err("the stream fails where the server failed it");
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert_eq!(status.message(), message);
        assert!(bounded("after", responses.message())
            .await
            .expect("ended")
            .is_none());
        assert!(
            responses.trailers_now().is_none(),
            "a failed call has no clean end"
        );
    }
    unary_promptly(&channel, 8, STEP).await;
    server.stop().await;
}
