//! The interop server (`sockrpc interop server`) fed requests that ask for more answers than it
//! will keep waiting: each `ResponseParameters` costs 2 bytes on the wire (an empty message) and
//! 16 in the server's queue of answers to send, and `HalfDuplexCall` keeps every request's
//! answers until the client half-closes, after the requests themselves were read and credited.
//! So one call sending 2 MiB requests of a million empty parameters each grew the server's
//! memory by 16 MiB a request, without end (and without counting against any budget: the
//! requests were consumed). Now a call may have at most `MAX_PENDING` (1,024) answers waiting;
//! asking for more fails it `RESOURCE_EXHAUSTED`, on each of the three streaming methods, while
//! calls asking for a few answers are served as before.

use crate::support::{bounded, start_serving};
use futures_util::stream;
use sockrpc::{Code, Status};
use sockrpc_interop::pb::test_service_client::TestServiceClient;
use sockrpc_interop::pb::{ResponseParameters, StreamingOutputCallRequest};
use sockrpc_interop::server::MAX_PENDING;
use sockrpc_interop::InteropServer;
use tokio::sync::mpsc;

/// A request asking for `n` empty answers.
fn asking(n: usize) -> StreamingOutputCallRequest {
    StreamingOutputCallRequest {
        response_parameters: vec![ResponseParameters::default(); n],
        ..Default::default()
    }
}

fn exhausted(what: &str, result: Result<impl std::fmt::Debug, Status>) {
    match result {
        Err(status) => assert_eq!(status.code(), Code::ResourceExhausted, "{what}: {status:?}"),
        Ok(got) => panic!("{what}: expected RESOURCE_EXHAUSTED, got {got:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_asked_for_past_the_bound_fail_the_call_not_the_server() {
    let server = start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .add_service(InteropServer::new().into_service())
            .serve_with_listener_and_shutdown(listener, shutdown)
    });
    let mut client = bounded(
        "connect",
        TestServiceClient::connect(format!("tcp://{}", server.addr)),
    )
    .await
    .expect("connect");

    // HalfDuplexCall: requests of half the bound and one more each, never half-closed. The
    // third takes the answers waiting past the bound: the call fails before the half-close.
    let (tx, rx) = mpsc::unbounded_channel();
    let requests = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
    let mut answers = bounded("HalfDuplexCall", client.half_duplex_call(requests))
        .await
        .expect("the call starts")
        .into_inner();
    for _ in 0..3 {
        tx.send(asking(MAX_PENDING / 2 + 1)).expect("queued");
    }
    exhausted(
        "half-duplex, past the bound",
        bounded("the refusal", answers.message()).await,
    );
    drop(tx);

    // FullDuplexCall and StreamingOutputCall: one request past the bound.
    let mut answers = bounded(
        "FullDuplexCall",
        client.full_duplex_call(stream::iter([asking(MAX_PENDING + 1)])),
    )
    .await
    .expect("the call starts")
    .into_inner();
    exhausted(
        "full-duplex, past the bound",
        bounded("the refusal", answers.message()).await,
    );
    exhausted(
        "server streaming, past the bound",
        bounded(
            "StreamingOutputCall",
            client.streaming_output_call(asking(MAX_PENDING + 1)),
        )
        .await
        .map(|_| ()),
    );

    // At the bound, every answer comes; so does a half-duplex call's, at the half-close.
    let mut answers = bounded(
        "HalfDuplexCall",
        client.half_duplex_call(stream::iter([
            asking(MAX_PENDING / 2),
            asking(MAX_PENDING / 2),
        ])),
    )
    .await
    .expect("the call starts")
    .into_inner();
    let mut got = 0usize;
    // Bounded: MAX_PENDING answers, then the end.
    while let Some(_answer) = bounded("an answer", answers.message())
        .await
        .expect("answers at the bound")
    {
        got += 1;
        assert!(got <= MAX_PENDING, "more answers than asked for");
    }
    assert_eq!(got, MAX_PENDING);
    let mut answers = bounded(
        "StreamingOutputCall",
        client.streaming_output_call(asking(MAX_PENDING)),
    )
    .await
    .expect("at the bound")
    .into_inner();
    let mut got = 0usize;
    while let Some(_answer) = bounded("an answer", answers.message())
        .await
        .expect("answers at the bound")
    {
        got += 1;
        assert!(got <= MAX_PENDING, "more answers than asked for");
    }
    assert_eq!(got, MAX_PENDING);
    server.stop().await;
}
