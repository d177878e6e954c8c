//! A stream cancelled while its large message still goes out in pieces gives back the
//! connection credit of what never went out.
//!
//! A client keeps its streams' request messages under the connection window its server
//! announced (`CONNECTION_WINDOW`, 16 MiB), each counted when sent and credited back (WINDOW on
//! call 0) as the server consumes or drops it. Since `Outbox::abandon` (session 36), a cancelled
//! call's split message stops going out: the server sees only the pieces that left, ended by
//! an empty last piece, and credits only those. Before this test, the client went on counting
//! the rest as outstanding, for ever: a few cancelled 4 MiB uploads wedged every stream on the
//! connection (`poll_ready` waited for credit that could never come). So did stream messages
//! past the server's message limit, skipped unread.

use crate::support::{bounded, only_connection, Running};
use bytes::Bytes;
use sockrpc::{Code, MetadataMap, MethodPath};
use sockrpc_tests::mirror::Mirror;
use sockrpc_tests::stream::streamer_server::StreamerServer;
use std::future::poll_fn;
use std::task::Poll;

static PING_PONG: MethodPath = MethodPath::from_static("/sockrpc.test.stream.Streamer/PingPong");

/// Each cancelled message: under the server's 4 MiB message limit, 64 pieces.
const LARGE: usize = 4 << 20;
/// Cancelled streams: together they count four times the 16 MiB window.
const ROUNDS: usize = 16;
/// Streams whose one 60 KiB message the server skips: together they count past the window.
const WHOLE_ROUNDS: usize = 320;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_split_messages_give_their_connection_credit_back() {
    let server = Running::start();
    let channel = server.channel().await;
    let conn = only_connection(&channel);
    let large = Bytes::from(vec![0u8; LARGE - 1024]);
    for round in 0..ROUNDS {
        let (mut sender, receiver) = conn
            .open_stream(&PING_PONG, &MetadataMap::new(), None, None)
            .expect("open a stream");
        bounded(
            &format!("round {round}: room to send (the connection window)"),
            poll_fn(|cx| sender.poll_ready(cx)),
        )
        .await
        .expect("ready");
        poll_fn(|cx| Poll::Ready(sender.send(cx, &large)))
            .await
            .expect("sent");
        // At once: most of its pieces are not cut yet.
        sender.cancel();
        drop(receiver);
    }
    // A stream after them still sends, and is answered.
    let (mut sender, mut receiver) = conn
        .open_stream(&PING_PONG, &MetadataMap::new(), None, None)
        .expect("open the last stream");
    bounded(
        "the last stream's room to send",
        poll_fn(|cx| sender.poll_ready(cx)),
    )
    .await
    .expect("ready");
    // An empty Chunk: echoed as one.
    poll_fn(|cx| Poll::Ready(sender.send(cx, &Bytes::new())))
        .await
        .expect("sent");
    let echo = bounded("the echo", poll_fn(|cx| receiver.poll_message(cx))).await;
    assert!(matches!(echo, Some(Ok(_))), "{echo:?}");
    sender.close();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_messages_past_the_servers_limit_give_their_connection_credit_back() {
    // A server whose message limit (16 KiB) is below what its client sends (60 KiB, one frame,
    // under the client's own 4 MiB): each such message is skipped unread and fails its stream
    // RESOURCE_EXHAUSTED. The client counted it against the connection window; the server
    // must credit it back, as it does any message it drops, or some 280 of them wedge the
    // connection's streams.
    over_the_limit_rounds(16 << 10, 60 << 10, WHOLE_ROUNDS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_messages_past_the_servers_limit_give_all_their_pieces_credit_back() {
    // The same with messages in pieces (2 MiB against a 1 MiB limit): the decoder reports the
    // piece that crossed the limit and skips the rest unreported; those are credited too, or
    // about a dozen such messages wedge the connection.
    over_the_limit_rounds(1 << 20, 2 << 20, 40).await;
}

/// `rounds` streams on one connection each send one message of `len` bytes to a server whose
/// limit is `limit`, and fail; a last stream must still get room to send and its echo.
async fn over_the_limit_rounds(limit: usize, len: usize, rounds: usize) {
    let listener =
        sockrpc::transport::bind_tcp("127.0.0.1:0".parse().expect("address"), &Default::default())
            .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let server = tokio::spawn(
        sockrpc::Server::builder()
            .max_decoding_message_size(limit)
            .add_service(StreamerServer::new(Mirror))
            .serve_with_listener(listener),
    );
    let endpoint = sockrpc::Endpoint::new("127.0.0.1", addr.port()).pool_size(1);
    let channel = bounded("connect", sockrpc::Channel::connect(endpoint))
        .await
        .expect("connect");
    let conn = only_connection(&channel);
    let over = Bytes::from(vec![0u8; len]);
    for round in 0..rounds {
        let (mut sender, mut receiver) = conn
            .open_stream(&PING_PONG, &MetadataMap::new(), None, None)
            .expect("open a stream");
        bounded(
            &format!("round {round}: room to send (the connection window)"),
            poll_fn(|cx| sender.poll_ready(cx)),
        )
        .await
        .expect("ready");
        poll_fn(|cx| Poll::Ready(sender.send(cx, &over)))
            .await
            .expect("sent");
        let end = bounded("the stream's end", poll_fn(|cx| receiver.poll_message(cx))).await;
        assert!(
            matches!(&end, Some(Err(status)) if status.code() == Code::ResourceExhausted),
            "round {round}: {end:?}"
        );
    }
    let (mut sender, mut receiver) = conn
        .open_stream(&PING_PONG, &MetadataMap::new(), None, None)
        .expect("open the last stream");
    bounded(
        "the last stream's room to send",
        poll_fn(|cx| sender.poll_ready(cx)),
    )
    .await
    .expect("ready");
    poll_fn(|cx| Poll::Ready(sender.send(cx, &Bytes::new())))
        .await
        .expect("sent");
    let echo = bounded("the echo", poll_fn(|cx| receiver.poll_message(cx))).await;
    assert!(matches!(echo, Some(Ok(_))), "{echo:?}");
    sender.close();
    server.abort();
}
