//! Messages in pieces keep their call's order: a real client and server on one connection,
//! several calls each sending messages larger than a piece (64 KiB) at once, so that split
//! messages queue behind each other in both outboxes while small frames pass them.
//!
//! What each case checks: a call's messages arrive whole, in order, and before its END (the
//! client's half-close, the server's trailers or error); no split message interleaves with
//! another (the receiver would close the connection); the connection carries calls afterwards.

use crate::support::{bounded, fed_by, next, Running};
use bytes::Bytes;
use sockrpc::{Code, Request};
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::{Chunk, ProduceRequest};
use tokio::sync::mpsc;

/// Sizes around and well past a piece, and small ones between them.
const SIZES: [usize; 8] = [
    300 * 1024,
    10,
    64 * 1024 + 1,
    1 << 20,
    64 * 1024,
    5,
    200 * 1024 + 7,
    0,
];

/// A payload that says which call and message it is, byte by byte.
fn payload(call: u64, seq: u64, len: usize) -> Bytes {
    (0..len)
        .map(|i| (call as usize * 31 + seq as usize * 7 + i) as u8)
        .collect::<Vec<u8>>()
        .into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_requests_in_pieces_arrive_whole_in_order_before_the_half_close() {
    let server = Running::start();
    let channel = server.channel().await;
    let mut calls = Vec::new();
    for call in 0..4u64 {
        let channel = channel.clone();
        calls.push(tokio::spawn(async move {
            let mut client = StreamerClient::new(channel);
            // Every request is sent (and the stream half-closed) before the server answers.
            let requests: Vec<Chunk> = (0..SIZES.len() as u64)
                .map(|seq| Chunk {
                    seq,
                    payload: payload(call, seq, SIZES[seq as usize]),
                })
                .collect();
            let sent = requests.clone();
            let mut answers = bounded(
                "gather",
                client.gather(futures_util::stream::iter(requests)),
            )
            .await
            .expect("gather starts")
            .into_inner();
            // Gather answers in reverse.
            for expected in sent.iter().rev() {
                let got = next("gathered", &mut answers).await;
                assert_eq!(got.seq, expected.seq, "call {call}: order");
                assert!(
                    got.payload == expected.payload,
                    "call {call} seq {}: payload",
                    got.seq
                );
            }
            assert!(bounded("end", answers.message())
                .await
                .expect("ok")
                .is_none());
        }));
    }
    for call in calls {
        bounded("call", call).await.expect("no panic");
    }
    // The connection is still good.
    let mut client = StreamerClient::new(channel.clone());
    bounded("unary after", client.unary(Chunk::default()))
        .await
        .expect("unary after the streams");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidi_messages_in_pieces_both_ways_keep_their_order() {
    let server = Running::start();
    let channel = server.channel().await;
    let mut calls = Vec::new();
    for call in 0..3u64 {
        let channel = channel.clone();
        calls.push(tokio::spawn(async move {
            let mut client = StreamerClient::new(channel);
            let (tx, rx) = mpsc::channel(4);
            let mut answers = bounded("ping_pong", client.ping_pong(fed_by(rx)))
                .await
                .expect("ping_pong starts")
                .into_inner();
            for round in 0..3u64 {
                // One at a time (the stream's window would hold more back on both sides), but
                // the other calls' split messages queue beside this one's in both outboxes.
                for (i, &len) in SIZES.iter().enumerate() {
                    let seq = round * 100 + i as u64;
                    let chunk = Chunk {
                        seq,
                        payload: payload(call, seq, len),
                    };
                    bounded("send", tx.send(chunk)).await.expect("send");
                    let got = next("pong", &mut answers).await;
                    assert_eq!(got.seq, seq, "call {call}: order");
                    let mut want = payload(call, seq, len).to_vec();
                    want.reverse();
                    assert!(got.payload == want, "call {call} seq {seq}: payload");
                }
            }
            drop(tx);
            assert!(bounded("end", answers.message())
                .await
                .expect("ok")
                .is_none());
        }));
    }
    for call in calls {
        bounded("call", call).await.expect("no panic");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_after_large_messages_comes_after_them() {
    let server = Running::start();
    let channel = server.channel().await;
    let mut calls = Vec::new();
    for call in 0..4u64 {
        let channel = channel.clone();
        calls.push(tokio::spawn(async move {
            let mut client = StreamerClient::new(channel);
            let request = ProduceRequest {
                count: 10,
                size: 700 * 1024 + call as u32,
                fail_after: Some(3),
                fail_code: Code::Aborted as i32,
                fail_message: "after three".into(),
                ..ProduceRequest::default()
            };
            let mut answers = bounded("produce", client.produce(Request::new(request)))
                .await
                .expect("produce starts")
                .into_inner();
            for seq in 0..3 {
                let got = next("produced", &mut answers).await;
                assert_eq!(got.seq, seq);
                assert_eq!(got.payload.len(), 700 * 1024 + call as usize);
            }
            let status = bounded("error", answers.message())
                .await
                .expect_err("the stream fails after three");
            assert_eq!(status.code(), Code::Aborted, "{status:?}");
        }));
    }
    // Small calls between the large answers, on the same connection.
    let mut client = StreamerClient::new(channel.clone());
    for seq in 0..20 {
        let got = bounded(
            "unary",
            client.unary(Chunk {
                seq,
                ..Chunk::default()
            }),
        )
        .await
        .expect("unary beside the streams");
        assert_eq!(got.into_inner().seq, seq);
    }
    for call in calls {
        bounded("call", call).await.expect("no panic");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_dropped_while_their_large_messages_go_out_leave_the_connection_usable() {
    let server = Running::start();
    let channel = server.channel().await;
    for round in 0..5u64 {
        let mut client = StreamerClient::new(channel.clone());
        // A server stream of large answers, dropped after the first.
        let request = ProduceRequest {
            count: 20,
            size: 1 << 20,
            ..ProduceRequest::default()
        };
        let mut answers = bounded("produce", client.produce(Request::new(request)))
            .await
            .expect("produce starts")
            .into_inner();
        let _ = next("first answer", &mut answers).await;
        drop(answers);
        // A client stream of large requests, dropped while they go out.
        let (tx, rx) = mpsc::channel(8);
        let mut collecting = StreamerClient::new(channel.clone());
        let collect = tokio::spawn(async move { collecting.collect(fed_by(rx)).await });
        for seq in 0..6 {
            let chunk = Chunk {
                seq,
                payload: payload(round, seq, 900 * 1024),
            };
            bounded("send", tx.send(chunk)).await.expect("send");
        }
        collect.abort();
        drop(tx);
        // Later calls on the same connection, large both ways.
        let mut client = StreamerClient::new(channel.clone());
        let (tx, rx) = mpsc::channel(1);
        let mut answers = bounded("ping_pong", client.ping_pong(fed_by(rx)))
            .await
            .expect("ping_pong starts")
            .into_inner();
        let sent = payload(round, 1, 2 << 20);
        bounded(
            "send",
            tx.send(Chunk {
                seq: 1,
                payload: sent.clone(),
            }),
        )
        .await
        .expect("send");
        let got = next("pong", &mut answers).await;
        let mut want = sent.to_vec();
        want.reverse();
        assert!(got.payload == want, "round {round}: payload");
    }
    let produced: usize = {
        let mut client = StreamerClient::new(channel.clone());
        let request = ProduceRequest {
            count: 3,
            size: 100 * 1024,
            ..ProduceRequest::default()
        };
        let mut answers = bounded("produce", client.produce(Request::new(request)))
            .await
            .expect("produce starts")
            .into_inner();
        let mut total = 0;
        while let Some(chunk) = bounded("answer", answers.message()).await.expect("ok") {
            total += chunk.payload.len();
        }
        total
    };
    assert_eq!(produced, 300 * 1024);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_shutting_down_finishes_large_answers_in_pieces_first() {
    let server = Running::start();
    let channel = server.channel().await;
    let mut client = StreamerClient::new(channel.clone());
    let request = ProduceRequest {
        count: 8,
        size: 1 << 20,
        ..ProduceRequest::default()
    };
    let mut answers = bounded("produce", client.produce(Request::new(request)))
        .await
        .expect("produce starts")
        .into_inner();
    let first = next("first answer", &mut answers).await;
    assert_eq!(first.seq, 0);
    // Shut down while most of the answers wait in the server's outbox, cut in pieces.
    let stopping = tokio::spawn(server.stop());
    for seq in 1..8 {
        let got = next("answer during shutdown", &mut answers).await;
        assert_eq!((got.seq, got.payload.len()), (seq, 1 << 20));
    }
    assert!(bounded("end", answers.message())
        .await
        .expect("ok")
        .is_none());
    bounded("server stops", stopping).await.expect("no panic");
}
