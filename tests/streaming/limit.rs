//! A streaming call made while its connection carries the server's limit of calls in flight
//! (announced in SETTINGS) waits for room on the client, unsent, as unary calls do: it opens
//! once a call there ends, or fails `DEADLINE_EXCEEDED` when its deadline passes first. Before,
//! the server refused it with `RESOURCE_EXHAUSTED`.

use crate::support::{bounded, next, only_connection, wait_until, Running};
use sockrpc::{Code, Request};
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::ProduceRequest;
use std::time::Duration;

fn produce(count: u64, delay_ms: u64) -> ProduceRequest {
    ProduceRequest {
        count,
        size: 8,
        delay_ms,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_past_the_servers_limit_waits_for_room_and_then_opens() {
    let server = Running::start_with_limit(1);
    let channel = server.channel().await;
    let conn = only_connection(&channel);
    wait_until("the server's limit arrived", || conn.max_calls() == Some(1)).await;
    let mut client = StreamerClient::new(channel.clone());
    // The first stream holds the only slot until it is read: its answer (100 chunks of 4 KiB)
    // is larger than its window, so the server cannot end it before the client reads. (A
    // stream the server has ended holds no slot, read or not.)
    let first_request = ProduceRequest {
        size: 4096,
        ..produce(100, 0)
    };
    let mut first = bounded("open the first stream", client.produce(first_request))
        .await
        .expect("the first stream opens")
        .into_inner();

    let mut second_client = StreamerClient::new(channel.clone());
    let second = tokio::spawn(async move {
        let mut stream = second_client.produce(produce(2, 0)).await?.into_inner();
        let mut seqs = Vec::new();
        while let Some(chunk) = stream.message().await? {
            seqs.push(chunk.seq);
        }
        Ok::<_, sockrpc::Status>(seqs)
    });
    wait_until("the second stream waits for room", || conn.waiting() == 1).await;
    assert_eq!(conn.calls_started(), 1, "the waiting stream was not sent");

    for seq in 0..100 {
        assert_eq!(next("the first stream's chunks", &mut first).await.seq, seq);
    }
    let end = bounded("the first stream's end", first.message()).await;
    assert!(matches!(end, Ok(None)), "{end:?}");
    let seqs = bounded("the second stream", second)
        .await
        .expect("task")
        .expect("the second stream opens once the first ended, and is not refused");
    assert_eq!(seqs, [0, 1]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_waiting_for_room_gives_up_at_its_deadline() {
    let server = Running::start_with_limit(1);
    let channel = server.channel().await;
    let conn = only_connection(&channel);
    wait_until("the server's limit arrived", || conn.max_calls() == Some(1)).await;
    let mut client = StreamerClient::new(channel.clone());
    let holder = bounded(
        "open the holding stream",
        client.produce(produce(1_000, 1_000)),
    )
    .await
    .expect("the holding stream opens")
    .into_inner();

    let mut request = Request::new(produce(1, 0));
    request.set_timeout(Duration::from_millis(200));
    let status = bounded("the waiting stream", client.produce(request))
        .await
        .expect_err("no room came before its deadline");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains("waiting for room"), "{status:?}");
    assert_eq!(conn.calls_started(), 1, "the waiting stream was never sent");
    assert_eq!(conn.waiting(), 0, "it left the queue");
    // Dropping the holder cancels it on the server, which can then stop.
    drop(holder);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_pass_dropped_unused_hands_its_room_to_the_next_call() {
    let server = Running::start_with_limit(1);
    let channel = server.channel().await;
    let conn = only_connection(&channel);
    wait_until("the server's limit arrived", || conn.max_calls() == Some(1)).await;
    // The pass keeps the only slot: a unary call made now waits.
    let pass = bounded("room on an idle connection", conn.room(None))
        .await
        .expect("room at once");
    let mut client = StreamerClient::new(channel.clone());
    let waiting = tokio::spawn(async move {
        client
            .unary(sockrpc_tests::stream::Chunk {
                seq: 7,
                payload: Default::default(),
            })
            .await
    });
    wait_until("the unary call waits for room", || conn.waiting() == 1).await;
    assert_eq!(conn.calls_started(), 0);
    drop(pass);
    let reply = bounded("the unary call, once the pass is gone", waiting)
        .await
        .expect("task")
        .expect("the call is sent and answered");
    assert_eq!(reply.into_inner().seq, 7);
    server.stop().await;
}
