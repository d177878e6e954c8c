//! grpc-go's `TestConcurrentClientConnCloseAndServerGoAway`,
//! `TestClientConnCloseAfterGoAwayWithActiveStream` and the new-connection half of
//! `TestGracefulStop`: a client and a server that close at the same time, in either order,
//! both finish, and the stream between them ends with an error rather than hanging until the
//! server's grace period (30 s, longer than any wait here) runs out.
//!
//! grpc-go's `ClientConn.Close` cancels the calls in flight; sockrpc's counterpart is
//! `Channel::close_now` (`Channel::close` lets calls in flight finish, as a graceful server
//! does, so a client and a server that both wait for a stream the test still holds would wait
//! for each other: tests/shutdown pins that close).

use crate::support::{bounded, channel, serve, wait_until, Peer, Running};
use futures_util::stream;
use sockrpc::{Channel, Code, Server, Streaming};
use sockrpc_tests::parity::test1_client::Test1Client;
use sockrpc_tests::parity::test1_server::Test1Server;
use sockrpc_tests::parity::{Input1, Output1};
use tokio::sync::mpsc;

/// Rounds of each race.
const ROUNDS: usize = 5;

/// A bidi stream on `channel`'s one connection, one echo already through it.
async fn open_chat(channel: &Channel) -> (mpsc::Sender<Input1>, Streaming<Output1>) {
    let mut client = Test1Client::new(channel.clone());
    let (requests, mut feed) = mpsc::channel::<Input1>(4);
    let fed = stream::poll_fn(move |cx| feed.poll_recv(cx));
    let mut answers = bounded("chat", client.chat(fed))
        .await
        .expect("opens")
        .into_inner();
    requests
        .send(Input1 {
            buf: vec![1].into(),
        })
        .await
        .expect("send");
    let echo = bounded("echo", answers.message())
        .await
        .expect("ok")
        .expect("a message");
    assert_eq!(echo.buf.as_ref(), [1]);
    (requests, answers)
}

/// Serves a fresh `Peer`.
fn start(peer: &Peer) -> Running {
    serve(Server::builder().add_service(Test1Server::new(peer.clone())))
}

/// The stream ended in error, cancelled by its client or cut by its server.
async fn assert_ended(answers: &mut Streaming<Output1>, what: &str) {
    let end = bounded(what, answers.message()).await;
    match end {
        Err(status) => assert!(
            matches!(status.code(), Code::Cancelled | Code::Unavailable),
            "{what}: {status:?}"
        ),
        Ok(other) => panic!("{what}: the stream ended without an error: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_closed_while_its_server_shuts_down_ends_both() {
    for round in 0..ROUNDS {
        let peer = Peer::default();
        let server = start(&peer);
        let channel = channel(server.addr).await;
        let (requests, mut answers) = open_chat(&channel).await;
        let stopping = tokio::spawn(server.stop());
        channel.close_now();
        // `Running::stop` fails past 10 s: far below the 30 s grace a live stream would hold.
        bounded("server stops", stopping)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        bounded("channel closed", channel.closed()).await;
        assert_ended(&mut answers, "the stream").await;
        wait_until("the handler is stopped", || peer.counts.cancelled() == 1).await;
        drop(requests);
    }
}

#[tokio::test]
async fn a_channel_closed_after_the_servers_goaway_ends_the_drain() {
    let peer = Peer::default();
    let server = start(&peer);
    let channel = channel(server.addr).await;
    let (requests, mut answers) = open_chat(&channel).await;
    let stopping = tokio::spawn(server.stop());
    let connection = channel.connections().pop().expect("one connection");
    wait_until("the GOAWAY arrived", || connection.was_sent_away()).await;
    // The stream still works while the server drains …
    requests
        .send(Input1 {
            buf: vec![2].into(),
        })
        .await
        .expect("send");
    let echo = bounded("echo while draining", answers.message())
        .await
        .expect("ok")
        .expect("a message");
    assert_eq!(echo.buf.as_ref(), [2]);
    // … until the client closes: the server's drain ends with it.
    channel.close_now();
    assert_ended(&mut answers, "the stream after close_now").await;
    bounded("server stops", stopping).await.expect("stopped");
    bounded("channel closed", channel.closed()).await;
    assert_eq!(peer.counts.cancelled(), 1);
    drop(requests);
}

#[tokio::test]
async fn a_new_connection_is_refused_while_the_server_drains() {
    let peer = Peer::default();
    let server = start(&peer);
    let addr = server.addr;
    let first = channel(addr).await;
    let (requests, mut answers) = open_chat(&first).await;
    let stopping = tokio::spawn(server.stop());
    let connection = first.connections().pop().expect("one connection");
    wait_until("the GOAWAY arrived", || connection.was_sent_away()).await;

    // A newcomer finds no listener: it fails UNAVAILABLE, it does not wait for the drain.
    let endpoint = sockrpc::Endpoint::new("127.0.0.1", addr.port()).pool_size(1);
    let late = bounded("a late connect", async {
        let channel = Channel::connect(endpoint).await?;
        Test1Client::new(channel)
            .unary_call(Input1::default())
            .await
    })
    .await;
    let err = late.expect_err("refused while draining");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");

    // A new call on the draining connection's channel is not sent there either.
    let mut client = Test1Client::new(first.clone());
    let err = bounded("a call on the draining channel", async {
        let mut request = sockrpc::Request::new(Input1::default());
        request.set_timeout(std::time::Duration::from_secs(2));
        client.unary_call(request).await
    })
    .await
    .expect_err("no new call while draining");
    assert!(
        matches!(err.code(), Code::Unavailable | Code::DeadlineExceeded),
        "{err:?}"
    );
    assert_eq!(
        peer.counts.started(),
        1,
        "only the stream reached a handler"
    );

    // The stream in flight still ends as its client says.
    drop(requests);
    let end = bounded("end", answers.message()).await.expect("ends OK");
    assert!(end.is_none());
    bounded("server stops", stopping).await.expect("stopped");
}

/// grpc-go's `TestDetailedConnectionCloseErrorPropagatesToRpcError`: a server whose grace
/// period runs out closes the connection under a stream and a unary call still in flight; both
/// fail `UNAVAILABLE` with a message that says why, not a bare code, and their handlers stop.
#[tokio::test]
async fn calls_cut_at_the_end_of_the_grace_period_say_why() {
    let peer = Peer::default();
    let server = serve(
        Server::builder()
            .grace_period(std::time::Duration::from_millis(200))
            .add_service(Test1Server::new(peer.clone())),
    );
    let channel = channel(server.addr).await;
    let (requests, mut answers) = open_chat(&channel).await;
    let mut client = Test1Client::new(channel.clone());
    let hang = crate::support::with_meta(Input1::default(), &[("x-hang", "1")]);
    let unary = tokio::spawn(async move { client.unary_call(hang).await });
    wait_until("the unary handler started", || peer.counts.started() == 2).await;

    bounded("server stops", server.stop()).await;
    let stream_err = bounded("the stream", answers.message())
        .await
        .expect_err("cut");
    let unary_err = bounded("the unary call", unary)
        .await
        .expect("no panic")
        .expect_err("cut");
    for (what, err) in [("stream", stream_err), ("unary", unary_err)] {
        assert_eq!(err.code(), Code::Unavailable, "{what}: {err:?}");
        assert!(
            REASONS.iter().any(|reason| err.message().contains(reason)),
            "{what}: the message names no reason: {err:?}"
        );
    }
    wait_until("both handlers stopped", || peer.counts.cancelled() == 2).await;
    drop(requests);
}

/// What a message about a connection the server closed may say.
const REASONS: &[&str] = &["shutting down", "closed"];
