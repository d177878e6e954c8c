//! grpc-go's `TestServerResourceExhausted…` and `TestMalformedStreamMethod`'s server side: a
//! request message the server refuses midway through a client or bidirectional stream — over
//! the generated server's `max_decoding_message_size` (on the wire, or once decompressed), or
//! not decodable — fails the handler's read, and the handler's `?` answers the client with
//! that status: `RESOURCE_EXHAUSTED` or `INTERNAL`, never `CANCELLED` or `UNAVAILABLE`, while
//! the client still holds its request stream open and even sends on. The call's place under
//! the server's call limit comes back, the handler ends, and the connection serves on; many
//! such streams at once change nothing.

use crate::support::{bounded, channel_with, serve, wait_until, Peer, Running};
use futures_util::future::join_all;
use futures_util::stream::{self, Stream};
use sockrpc::{Code, CompressionEncoding, Request, Server, Status};
use sockrpc_tests::parity::test1_client::Test1Client;
use sockrpc_tests::parity::test1_server::Test1Server;
use sockrpc_tests::parity::{Input1, Output1};
use std::time::Duration;
use tokio::sync::mpsc;

/// The generated server's decoding limit: far under the transport's 4 MiB.
const LIMIT: usize = 1024;
/// Calls in flight the server takes per connection.
const CALLS: usize = 8;

/// What the client sends on the request stream: a message of field 1 as a varint, where the
/// server reads bytes. `n == 0` encodes to nothing, which the server reads as an empty
/// `Input1`; any other `n` cannot be decoded as one.
#[derive(Clone, PartialEq, prost::Message)]
struct Misfit {
    #[prost(int64, tag = "1")]
    n: i64,
}

/// A request stream the test feeds through `feed`'s sender, open until the sender drops.
fn fed<T: Send + 'static>(feed: mpsc::Receiver<T>) -> impl Stream<Item = T> + Send + 'static {
    stream::unfold(feed, |mut feed| async move {
        feed.recv().await.map(|message| (message, feed))
    })
}

fn small() -> Input1 {
    Input1 {
        buf: vec![7u8; 100].into(),
    }
}

fn over() -> Input1 {
    Input1 {
        buf: vec![7u8; 4 * LIMIT].into(),
    }
}

/// `Peer` behind a limit of [`CALLS`] calls and of [`LIMIT`] bytes per request message;
/// `accepts` gzip when told.
fn strict_server(peer: &Peer, gzip: bool) -> Running {
    let mut service = Test1Server::new(peer.clone()).max_decoding_message_size(LIMIT);
    if gzip {
        service = service.accept_compressed(CompressionEncoding::Gzip);
    }
    serve(
        Server::builder()
            .max_concurrent_calls(CALLS)
            .add_service(service),
    )
}

/// `CALLS` unary calls at once, each answered within 5 s: every call slot is free.
async fn every_slot_is_free(client: &Test1Client<sockrpc::Channel>, what: &str) {
    let calls = (0..CALLS).map(|_| {
        let mut client = client.clone();
        let mut request = Request::new(small());
        request.set_timeout(Duration::from_secs(5));
        async move { client.unary_call(request).await }
    });
    for (i, answer) in bounded(what, join_all(calls)).await.into_iter().enumerate() {
        let answer = answer.unwrap_or_else(|e| panic!("{what}: call {i}: {e:?}"));
        assert_eq!(answer.into_inner().buf.len(), 100, "{what}: call {i}");
    }
}

#[tokio::test]
async fn a_client_stream_message_over_the_servers_limit_midway_is_resource_exhausted() {
    let peer = Peer::default();
    let server = strict_server(&peer, false);
    let mut client = Test1Client::new(channel_with(server.addr, |e| e).await);
    let (requests, feed) = mpsc::channel::<Input1>(16);
    let mut call = client.clone();
    let answer = tokio::spawn(async move { call.collect(Request::new(fed(feed))).await });
    for _ in 0..2 {
        requests.send(small()).await.expect("send");
    }
    wait_until("two requests read", || peer.counts.received() == 2).await;
    requests.send(over()).await.expect("send");
    let err = bounded("the answer", answer)
        .await
        .expect("joined")
        .expect_err("over the server's limit");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains(&LIMIT.to_string()), "{err:?}");
    wait_until("the handler ended", || peer.counts.cancelled() == 1).await;
    // The client holds its request stream open and sends on: nothing of it reaches a handler.
    for _ in 0..3 {
        let _ = requests.send(small()).await;
    }
    every_slot_is_free(&client, "after the refused client stream").await;
    assert_eq!(peer.counts.received(), 2);
    drop(requests);
    let after = bounded("unary", client.unary_call(small())).await;
    assert!(after.is_ok(), "{after:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_client_stream_message_the_server_cannot_decode_midway_is_internal() {
    let peer = Peer::default();
    let server = strict_server(&peer, false);
    let channel = channel_with(server.addr, |e| e).await;
    let mut raw = sockrpc::Client::new(channel.clone());
    let (requests, feed) = mpsc::channel::<Misfit>(16);
    let answer = tokio::spawn(async move {
        raw.client_streaming::<_, Misfit, Output1, _>(
            Request::new(fed(feed)),
            "/test.Test1/Collect",
            sockrpc::ProstCodec,
        )
        .await
    });
    for _ in 0..2 {
        requests.send(Misfit { n: 0 }).await.expect("send");
    }
    wait_until("two requests read", || peer.counts.received() == 2).await;
    requests.send(Misfit { n: 7 }).await.expect("send");
    let err = bounded("the answer", answer)
        .await
        .expect("joined")
        .expect_err("undecodable");
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    wait_until("the handler ended", || peer.counts.cancelled() == 1).await;
    for _ in 0..3 {
        let _ = requests.send(Misfit { n: 0 }).await;
    }
    every_slot_is_free(&Test1Client::new(channel), "after the undecodable stream").await;
    assert_eq!(peer.counts.received(), 2);
    drop(requests);
    server.stop().await;
}

#[tokio::test]
async fn a_compressed_request_that_inflates_past_the_limit_midway_is_resource_exhausted() {
    let peer = Peer::default();
    let server = strict_server(&peer, true);
    let channel = channel_with(server.addr, |e| e).await;
    let client = Test1Client::new(channel).send_compressed(CompressionEncoding::Gzip);
    let (requests, feed) = mpsc::channel::<Input1>(16);
    let mut call = client.clone();
    let answer = tokio::spawn(async move { call.collect(Request::new(fed(feed))).await });
    requests.send(small()).await.expect("send");
    wait_until("a request read", || peer.counts.received() == 1).await;
    // 1 MiB of zeros: about a kilobyte on the wire, a thousand times the limit inflated.
    let bomb = Input1 {
        buf: vec![0u8; 1 << 20].into(),
    };
    requests.send(bomb).await.expect("send");
    let err = bounded("the answer", answer)
        .await
        .expect("joined")
        .expect_err("over the limit once inflated");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    wait_until("the handler ended", || peer.counts.cancelled() == 1).await;
    every_slot_is_free(&client, "after the inflated request").await;
    drop(requests);
    server.stop().await;
}

/// A bidi stream: `good` requests echoed, then `bad` sent; returns the error the answers end
/// with and what they give after it. The request sender is held until the caller drops it.
async fn chat_until_refused<T>(
    channel: sockrpc::Channel,
    good: T,
    bad: T,
) -> (Status, Result<Option<Output1>, Status>, mpsc::Sender<T>)
where
    T: prost::Message + Default + Clone + Send + 'static,
{
    let mut raw = sockrpc::Client::new(channel);
    let (requests, feed) = mpsc::channel::<T>(16);
    let mut answers = bounded(
        "chat",
        raw.streaming::<_, T, Output1, _>(
            Request::new(fed(feed)),
            "/test.Test1/Chat",
            sockrpc::ProstCodec,
        ),
    )
    .await
    .expect("opens")
    .into_inner();
    for _ in 0..2 {
        requests.send(good.clone()).await.expect("send");
        bounded("echo", answers.message())
            .await
            .expect("echoed")
            .expect("a message");
    }
    requests.send(bad).await.expect("send");
    let err = bounded("the refusal", answers.message())
        .await
        .expect_err("refused");
    let after = bounded("after the refusal", answers.message()).await;
    (err, after, requests)
}

#[tokio::test]
async fn a_bidi_request_refused_midway_ends_the_answers_with_its_status() {
    let peer = Peer::default();
    let server = strict_server(&peer, false);
    let channel = channel_with(server.addr, |e| e).await;

    let (err, after, requests) = chat_until_refused(channel.clone(), small(), over()).await;
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(matches!(after, Ok(None)), "{after:?}");
    wait_until("the handler ended", || peer.counts.cancelled() == 1).await;
    let _ = requests.send(small()).await;

    let (err, after, misfits) =
        chat_until_refused(channel.clone(), Misfit { n: 0 }, Misfit { n: 7 }).await;
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    assert!(matches!(after, Ok(None)), "{after:?}");
    wait_until("the handler ended", || peer.counts.cancelled() == 2).await;
    let _ = misfits.send(Misfit { n: 0 }).await;

    // Both request streams are still held open by the client.
    every_slot_is_free(&Test1Client::new(channel), "while refused streams are held").await;
    assert_eq!(peer.counts.received(), 4);
    drop((requests, misfits));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_streams_refused_at_once_each_get_their_status_and_free_their_slot() {
    let peer = Peer::default();
    let server = strict_server(&peer, false);
    let channel = channel_with(server.addr, |e| e).await;
    // As many streams as the server takes calls, half of them over the limit, half
    // undecodable, all refused while every one of them is open.
    let chats = (0..CALLS).map(|i| {
        let channel = channel.clone();
        async move {
            if i % 2 == 0 {
                let (err, after, held) = chat_until_refused(channel, small(), over()).await;
                (
                    err.code(),
                    after.is_ok_and(|a| a.is_none()),
                    Box::new(held) as Box<dyn Send>,
                )
            } else {
                let (err, after, held) =
                    chat_until_refused(channel, Misfit { n: 0 }, Misfit { n: 1 << 40 }).await;
                (
                    err.code(),
                    after.is_ok_and(|a| a.is_none()),
                    Box::new(held) as Box<dyn Send>,
                )
            }
        }
    });
    let ended = bounded("every stream refused", join_all(chats)).await;
    let mut held = Vec::new();
    for (i, (code, clean_after, sender)) in ended.into_iter().enumerate() {
        let expected = if i % 2 == 0 {
            Code::ResourceExhausted
        } else {
            Code::Internal
        };
        assert_eq!(code, expected, "stream {i}");
        assert!(clean_after, "stream {i}: nothing after its status");
        held.push(sender);
    }
    wait_until("every handler ended", || peer.counts.cancelled() == CALLS).await;
    assert_eq!(peer.counts.finished(), 0);
    every_slot_is_free(&Test1Client::new(channel), "with every refused stream held").await;
    drop(held);
    server.stop().await;
}
