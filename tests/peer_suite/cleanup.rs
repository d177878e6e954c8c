//! grpc-go's `stream_cleanup_test.go` and `TestCancelNoIO`, `TestClientStreamingError`,
//! tonic's stream cancellation: a call that ends in any way — an answer over the client's
//! limit, a status the client never reads, a client that drops it, a server that answers
//! before reading every request — gives back its place under the server's limit of calls in
//! flight, and stops the handler, even one that ignores everything.

use crate::support::{bounded, channel, channel_with, serve, wait_until, with_meta, Peer};
use futures_util::stream;
use sockrpc::{Code, Server};
use sockrpc_tests::parity::test1_client::Test1Client;
use sockrpc_tests::parity::test1_server::Test1Server;
use sockrpc_tests::parity::Input1;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// A server that takes one call in flight per connection.
fn one_at_a_time(peer: &Peer) -> crate::support::Running {
    serve(
        Server::builder()
            .max_concurrent_calls(1)
            .add_service(Test1Server::new(peer.clone())),
    )
}

/// A unary call that must be answered at once: fails if the call slot is still held.
async fn next_call_is_served(client: &mut Test1Client<sockrpc::Channel>, what: &str) {
    let mut request = sockrpc::Request::new(Input1 {
        buf: b"next".to_vec().into(),
    });
    request.set_timeout(Duration::from_secs(5));
    let answer = bounded(what, client.unary_call(request))
        .await
        .unwrap_or_else(|e| panic!("{what}: {e:?}"));
    assert_eq!(answer.into_inner().buf.as_ref(), b"next");
}

#[tokio::test]
async fn answers_over_the_clients_limit_release_their_call() {
    let peer = Peer::default();
    let server = one_at_a_time(&peer);
    let channel = channel(server.addr).await;
    let mut client = Test1Client::new(channel).max_decoding_message_size(1024);

    let err = bounded(
        "unary",
        client.unary_call(with_meta(Input1::default(), &[("x-size", "4096")])),
    )
    .await
    .expect_err("over the limit");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    next_call_is_served(&mut client, "after an oversized unary answer").await;

    let result = bounded("stream", async {
        let request = with_meta(
            Input1::default(),
            &[("x-size", "4096"), ("x-count", "1000")],
        );
        let mut messages = client.stream_call(request).await?.into_inner();
        messages.message().await
    })
    .await;
    let err = result.expect_err("over the limit");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    wait_until("the server stream is stopped", || {
        peer.counts.cancelled() == 1
    })
    .await;
    next_call_is_served(&mut client, "after an oversized stream message").await;
    server.stop().await;
}

#[tokio::test]
async fn a_status_the_client_never_reads_still_releases_its_call() {
    let peer = Peer::default();
    let server = one_at_a_time(&peer);
    let channel = channel(server.addr).await;
    let mut client = Test1Client::new(channel.clone());
    // A bidi stream the server fails at once; the client holds it and never reads.
    let request = with_meta(stream::pending::<Input1>(), &[("x-fail", "9")]);
    let held = bounded("chat", client.chat(request)).await.expect("opens");
    wait_until("the handler ended", || peer.counts.finished() == 1).await;
    next_call_is_served(&mut client, "while an ended stream is held unread").await;
    // Nor does the pool count it as load.
    let in_flight =
        |c: &sockrpc::Channel| -> usize { c.connections().iter().map(|c| c.in_flight()).sum() };
    wait_until("no call counted in flight", || in_flight(&channel) == 0).await;
    drop(held);
    server.stop().await;
}

#[tokio::test]
async fn dropping_a_call_stops_a_handler_that_ignores_everything() {
    let peer = Peer::default();
    let server = one_at_a_time(&peer);
    let mut client = Test1Client::new(channel(server.addr).await);

    let hang = with_meta(Input1::default(), &[("x-hang", "1")]);
    let mut call = client.clone();
    let task = tokio::spawn(async move { call.unary_call(hang).await });
    wait_until("the unary handler started", || peer.counts.started() == 1).await;
    task.abort();
    wait_until("the unary handler is dropped", || {
        peer.counts.cancelled() == 1
    })
    .await;
    next_call_is_served(&mut client, "after a dropped unary call").await;

    let hang = with_meta(stream::pending::<Input1>(), &[("x-hang", "1")]);
    let mut call = client.clone();
    let task = tokio::spawn(async move { call.collect(hang).await });
    wait_until("the collect handler started", || peer.counts.started() == 3).await;
    task.abort();
    wait_until("the collect handler is dropped", || {
        peer.counts.cancelled() == 2
    })
    .await;
    next_call_is_served(&mut client, "after a dropped client stream").await;

    let hang = with_meta(Input1::default(), &[("x-hang", "1")]);
    let messages = bounded("stream", client.stream_call(hang))
        .await
        .expect("opens")
        .into_inner();
    wait_until("the stream started", || peer.counts.started() == 5).await;
    drop(messages);
    wait_until("the response stream is dropped", || {
        peer.counts.cancelled() == 3
    })
    .await;
    next_call_is_served(&mut client, "after a dropped server stream").await;
    server.stop().await;
}

#[tokio::test]
async fn a_server_that_answers_before_reading_every_request_ends_the_call() {
    let peer = Peer::default();
    let server = one_at_a_time(&peer);
    let mut client = Test1Client::new(channel(server.addr).await);
    // Endless request streams of 1 KiB messages, far past any window: the handler reads one.
    let request = || {
        with_meta(
            stream::repeat(Input1 {
                buf: vec![1u8; 1024].into(),
            }),
            &[("x-read", "1")],
        )
    };
    let answer = bounded("collect", client.collect(request()))
        .await
        .expect("answered early");
    assert_eq!(answer.into_inner().buf.len(), 1024);
    assert_eq!(peer.counts.received(), 1, "the handler read one request");
    next_call_is_served(&mut client, "after an early client-stream answer").await;

    let mut messages = bounded("chat", client.chat(request()))
        .await
        .expect("opens")
        .into_inner();
    bounded("echo", messages.message())
        .await
        .expect("echo")
        .expect("a message");
    assert_eq!(
        bounded("end", messages.message()).await.expect("ends OK"),
        None
    );
    next_call_is_served(&mut client, "after an early bidi end").await;
    server.stop().await;
}

#[tokio::test]
async fn a_deadline_stops_a_handler_that_ignores_it() {
    let peer = Peer::default();
    let server = serve(Server::builder().add_service(Test1Server::new(peer.clone())));
    let channel = channel_with(server.addr, |endpoint| endpoint).await;
    let mut client = Test1Client::new(channel);
    let mut request = with_meta(Input1::default(), &[("x-hang", "1")]);
    request.set_timeout(Duration::from_millis(200));
    let err = bounded("unary", client.unary_call(request))
        .await
        .expect_err("times out");
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    wait_until("the handler is dropped", || peer.counts.cancelled() == 1).await;
    server.stop().await;
}

/// An endless request stream that flags when it is dropped: the client stopped feeding it.
struct Endless {
    dropped: Arc<AtomicBool>,
}

impl futures_util::Stream for Endless {
    type Item = Input1;

    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Input1>> {
        Poll::Ready(Some(Input1 {
            buf: vec![7u8; 512].into(),
        }))
    }
}

impl Drop for Endless {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn the_client_stops_feeding_requests_once_the_call_has_ended() {
    // grpc-go's `TestClientStreamingError`: the client's sends end once the server has
    // answered; nothing keeps pulling from the caller's stream (a task and a connection held
    // for ever) after the call is over, whether it ended OK, with an error, or was refused.
    let peer = Peer::default();
    let server = serve(Server::builder().add_service(Test1Server::new(peer.clone())));
    let mut client = Test1Client::new(channel(server.addr).await);
    let cases: [&[(&str, &str)]; 3] = [
        &[("x-read", "2")],
        &[("x-read", "1"), ("x-fail", "10")],
        &[("x-read", "0"), ("x-fail", "7")],
    ];
    for steer in cases {
        let dropped = Arc::new(AtomicBool::new(false));
        let requests = Endless {
            dropped: Arc::clone(&dropped),
        };
        let _ = bounded("collect", client.collect(with_meta(requests, steer))).await;
        wait_until("the request stream is dropped", || {
            dropped.load(Ordering::SeqCst)
        })
        .await;

        let dropped = Arc::new(AtomicBool::new(false));
        let requests = Endless {
            dropped: Arc::clone(&dropped),
        };
        let result = bounded("chat", async {
            let mut messages = client.chat(with_meta(requests, steer)).await?.into_inner();
            while messages.message().await?.is_some() {}
            Ok::<_, sockrpc::Status>(messages)
        })
        .await;
        // Held, not dropped: the call's end alone must stop the feeding.
        wait_until("the request stream is dropped", || {
            dropped.load(Ordering::SeqCst)
        })
        .await;
        drop(result);
    }
    next_call_is_served(&mut client, "after the early ends").await;
    server.stop().await;
}

#[tokio::test]
async fn a_message_larger_than_the_window_then_ok_survives_a_graceful_shutdown() {
    // grpc-go's `TestStreamCleanupAfterSendStatus`: the handler sends a message larger than the
    // stream's window and returns; its end waits behind that message. A graceful shutdown
    // begun before the client reads must let the client read the message, then the end.
    let peer = Peer::default();
    let server = one_at_a_time(&peer);
    let mut client = Test1Client::new(channel(server.addr).await);
    let size = 3 * 64 * 1024;
    let request = with_meta(Input1::default(), &[("x-size", &size.to_string())]);
    let mut messages = bounded("open", client.stream_call(request))
        .await
        .expect("opens")
        .into_inner();
    wait_until("the handler started", || peer.counts.started() == 1).await;
    let stopping = tokio::spawn(server.stop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let message = bounded("message", messages.message())
        .await
        .expect("the message")
        .expect("one message");
    assert_eq!(message.buf.len(), size);
    assert_eq!(
        bounded("end", messages.message()).await.expect("ends OK"),
        None
    );
    bounded("server stops", stopping).await.expect("stopped");
}
