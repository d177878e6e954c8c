//! grpc-go's `TestServerStreamingConcurrent`, `TestFlowControlLogicalRace`,
//! `TestClientResourceExhaustedCancelFullDuplex` and `TestSetAndSendHeaderStreamingRPC`: calls
//! that share one connection. Concurrent server streams each get their own messages, whole and
//! in order; streams read in part and dropped, over and over, leave no window behind; an
//! answer over the client's limit, or one it cannot decode, on a bidirectional stream fails it
//! and stops its handler even while the caller still holds the stream (as grpc-go's client
//! cancels the stream); a stream's headers arrive before any message.

use crate::support::{bounded, channel, serve, wait_until, with_meta, Peer};
use futures_util::future::join_all;
use futures_util::stream::{self, Stream};
use sockrpc::{Code, Server};
use sockrpc_tests::parity::test1_client::Test1Client;
use sockrpc_tests::parity::test1_server::Test1Server;
use sockrpc_tests::parity::Input1;
use tokio::sync::mpsc;

/// A request stream the test feeds through `feed`'s sender, open until the sender drops.
fn fed(feed: mpsc::Receiver<Input1>) -> impl Stream<Item = Input1> + Send + 'static {
    stream::unfold(feed, |mut feed| async move {
        feed.recv().await.map(|message| (message, feed))
    })
}

/// Concurrent server streams on the connection.
const STREAMS: usize = 10;
/// Messages in each.
const MESSAGES: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_server_streams_each_get_their_own_messages_in_order() {
    let peer = Peer::default();
    let server = serve(Server::builder().add_service(Test1Server::new(peer.clone())));
    let client = Test1Client::new(channel(server.addr).await);
    let count = MESSAGES.to_string();
    let calls = (0..STREAMS).map(|i| {
        let mut client = client.clone();
        // Sizes differ so that a message crossing into another stream would show.
        let buf = vec![i as u8; 1000 + 3000 * i];
        let request = with_meta(
            Input1 {
                buf: buf.clone().into(),
            },
            &[("x-count", &count)],
        );
        async move {
            let mut messages = client.stream_call(request).await?.into_inner();
            let mut got = 0;
            while let Some(message) = messages.message().await? {
                assert_eq!(message.buf.as_ref(), buf.as_slice(), "stream {i}");
                got += 1;
            }
            Ok::<usize, sockrpc::Status>(got)
        }
    });
    let results = bounded("every stream", join_all(calls)).await;
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(result.expect("stream served"), MESSAGES, "stream {i}");
    }
    assert_eq!(peer.counts.finished(), STREAMS);
    server.stop().await;
}

/// Streams read in part and then dropped: together what they leave unread is several times
/// the client's 16 MiB answer window for the connection (a 1 MiB answer goes out whole once
/// the call's 64 KiB window has room).
const ROUNDS: usize = 30;
/// Each could send 40 × 1 MiB, past the connection's window; the client reads 2 of them.
const ROUND_COUNT: &str = "40";
const ROUND_SIZE: &str = "1048576";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_read_in_part_and_dropped_leave_no_window_behind() {
    let peer = Peer::default();
    let server = serve(Server::builder().add_service(Test1Server::new(peer.clone())));
    let mut client = Test1Client::new(channel(server.addr).await);
    for round in 0..ROUNDS {
        let request = with_meta(
            Input1::default(),
            &[("x-count", ROUND_COUNT), ("x-size", ROUND_SIZE)],
        );
        let mut messages = bounded("open", client.stream_call(request))
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e:?}"))
            .into_inner();
        for _ in 0..2 {
            let message = bounded("read", messages.message())
                .await
                .unwrap_or_else(|e| panic!("round {round}: {e:?}"))
                .expect("a message");
            assert_eq!(message.buf.len(), 1 << 20);
        }
        drop(messages);
    }
    wait_until("every handler ended", || {
        peer.counts.cancelled() + peer.counts.finished() == ROUNDS
    })
    .await;
    // A stream read to its end still gets all of its 40 MiB: no window was lost.
    let request = with_meta(
        Input1::default(),
        &[("x-count", ROUND_COUNT), ("x-size", ROUND_SIZE)],
    );
    let read = bounded("a whole stream", async {
        let mut messages = client.stream_call(request).await?.into_inner();
        let mut read = 0usize;
        while messages.message().await?.is_some() {
            read += 1;
        }
        Ok::<usize, sockrpc::Status>(read)
    })
    .await
    .expect("served");
    assert_eq!(read, 40);
    server.stop().await;
}

#[tokio::test]
async fn an_answer_over_the_limit_fails_a_held_bidi_stream_and_stops_its_handler() {
    let peer = Peer::default();
    let server = serve(Server::builder().add_service(Test1Server::new(peer.clone())));
    let mut client = Test1Client::new(channel(server.addr).await).max_decoding_message_size(1024);
    let (requests, feed) = mpsc::channel::<Input1>(4);
    let request = with_meta(fed(feed), &[("x-size", "4096")]);
    let mut answers = bounded("chat", client.chat(request))
        .await
        .expect("opens")
        .into_inner();
    requests.send(Input1::default()).await.expect("send");
    let err = bounded("read", answers.message())
        .await
        .expect_err("over the client's limit");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    // The caller still holds both halves of the stream; the call is over all the same.
    wait_until("the handler is stopped", || peer.counts.cancelled() == 1).await;
    assert_eq!(peer.counts.finished(), 0);
    let after = bounded("read after the failure", answers.message()).await;
    assert!(
        matches!(after, Ok(None)),
        "ended after the failure: {after:?}"
    );
    drop((requests, answers));
    // The connection goes on.
    let answer = bounded("unary", client.unary_call(Input1::default()))
        .await
        .expect("served");
    assert!(answer.into_inner().buf.is_empty());
    server.stop().await;
}

/// What the client reads `Chat`'s answers as: field 1 a varint, where the answer has bytes.
#[derive(Clone, PartialEq, prost::Message)]
struct Misread {
    #[prost(int64, tag = "1")]
    n: i64,
}

#[tokio::test]
async fn an_answer_the_client_cannot_decode_fails_a_held_bidi_stream_and_stops_its_handler() {
    let peer = Peer::default();
    let server = serve(Server::builder().add_service(Test1Server::new(peer.clone())));
    let mut client = sockrpc::Client::new(channel(server.addr).await);
    let (requests, feed) = mpsc::channel::<Input1>(4);
    let mut answers = bounded(
        "chat",
        client.streaming::<_, Input1, Misread, _>(
            sockrpc::Request::new(fed(feed)),
            "/test.Test1/Chat",
            sockrpc::ProstCodec,
        ),
    )
    .await
    .expect("opens")
    .into_inner();
    requests
        .send(Input1 {
            buf: b"not a varint".to_vec().into(),
        })
        .await
        .expect("send");
    let err = bounded("read", answers.message())
        .await
        .expect_err("undecodable");
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    wait_until("the handler is stopped", || peer.counts.cancelled() == 1).await;
    // A second request is not answered: the call is over.
    let _ = requests.send(Input1::default()).await;
    let after = bounded("read after the failure", answers.message()).await;
    assert!(matches!(after, Ok(None)), "{after:?}");
    drop((requests, answers));
    server.stop().await;
}

#[tokio::test]
async fn a_bidi_streams_headers_arrive_before_any_message() {
    let peer = Peer::default();
    let server = serve(Server::builder().add_service(Test1Server::new(peer.clone())));
    let mut client = Test1Client::new(channel(server.addr).await);
    let (requests, feed) = mpsc::channel::<Input1>(4);
    let request = with_meta(fed(feed), &[("x-echo-meta", "1"), ("x-mine", "early")]);
    // No request sent, none answered: the headers alone open the call.
    let response = bounded("headers", client.chat(request))
        .await
        .expect("opens");
    assert_eq!(response.metadata().get_str("x-mine"), Some("early"));
    let mut answers = response.into_inner();
    requests
        .send(Input1 {
            buf: b"one".to_vec().into(),
        })
        .await
        .expect("send");
    let answer = bounded("answer", answers.message())
        .await
        .expect("answered")
        .expect("a message");
    assert_eq!(answer.buf.as_ref(), b"one");
    drop(requests);
    let end = bounded("end", answers.message()).await.expect("ends ok");
    assert!(end.is_none());
    server.stop().await;
}
