//! grpc-go's `TestNoService` / unknown-method cases and `TestServerGoAwayPendingRPC` /
//! `TestGracefulStop…`, tonic's `routes.rs` and `serve_with_shutdown`: an unknown method of a
//! served service is `UNIMPLEMENTED` like an unknown service, in every call shape; a graceful
//! shutdown lets a bidirectional stream in flight go on both ways until the client ends it.

use crate::support::{bounded, channel, serve, wait_until, Peer};
use sockrpc::{Client, Code, ProstCodec, Request, Server};
use sockrpc_tests::parity::test1_client::Test1Client;
use sockrpc_tests::parity::test1_server::Test1Server;
use sockrpc_tests::parity::{Input1, Output1};
use tokio::sync::mpsc;

#[tokio::test]
async fn unknown_methods_of_a_served_service_are_unimplemented_in_every_shape() {
    let server = serve(Server::builder().add_service(Test1Server::new(Peer::default())));
    let mut client = Client::new(channel(server.addr).await);
    for path in [
        "/test.Test1/Nope",
        "/test.Nope/UnaryCall",
        "/test.Test1/unaryCall",
    ] {
        let err = bounded(
            "unary",
            client.unary::<Input1, Output1, _>(Request::new(Input1::default()), path, ProstCodec),
        )
        .await
        .expect_err("no such method");
        assert_eq!(err.code(), Code::Unimplemented, "{path}: {err:?}");

        let result = bounded("server stream", async {
            let mut messages = client
                .server_streaming::<Input1, Output1, _>(
                    Request::new(Input1::default()),
                    path,
                    ProstCodec,
                )
                .await?
                .into_inner();
            messages.message().await
        })
        .await;
        let err = result.expect_err("no such method");
        assert_eq!(err.code(), Code::Unimplemented, "{path}: {err:?}");

        let requests = futures_util::stream::iter(vec![Input1::default(); 2]);
        let err = bounded(
            "client stream",
            client.client_streaming::<_, Input1, Output1, _>(
                Request::new(requests),
                path,
                ProstCodec,
            ),
        )
        .await
        .expect_err("no such method");
        assert_eq!(err.code(), Code::Unimplemented, "{path}: {err:?}");

        let result = bounded("bidi", async {
            let requests = futures_util::stream::iter(vec![Input1::default(); 2]);
            let mut messages = client
                .streaming::<_, Input1, Output1, _>(Request::new(requests), path, ProstCodec)
                .await?
                .into_inner();
            messages.message().await
        })
        .await;
        let err = result.expect_err("no such method");
        assert_eq!(err.code(), Code::Unimplemented, "{path}: {err:?}");
    }
    // The served method still answers on the same connection.
    let answer = bounded(
        "served",
        client.unary::<Input1, Output1, _>(
            Request::new(Input1::default()),
            "/test.Test1/UnaryCall",
            ProstCodec,
        ),
    )
    .await;
    answer.expect("served");
    server.stop().await;
}

#[tokio::test]
async fn a_graceful_shutdown_lets_a_bidi_stream_in_flight_go_on_both_ways() {
    let peer = Peer::default();
    let server = serve(Server::builder().add_service(Test1Server::new(peer.clone())));
    let mut client = Test1Client::new(channel(server.addr).await);
    let (tx, mut rx) = mpsc::channel::<Input1>(4);
    let requests = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut messages = bounded("chat", client.chat(requests))
        .await
        .expect("opens")
        .into_inner();
    let ping = |n: u8| Input1 {
        buf: vec![n].into(),
    };
    tx.send(ping(1)).await.expect("send");
    let echo = bounded("echo 1", messages.message())
        .await
        .expect("ok")
        .expect("a message");
    assert_eq!(echo.buf.as_ref(), [1]);

    let stopping = tokio::spawn(server.stop());
    // Give the shutdown time to begin (its GOAWAY sent), then keep talking.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    for n in 2..5u8 {
        tx.send(ping(n)).await.expect("send");
        let echo = bounded("echo during shutdown", messages.message())
            .await
            .unwrap_or_else(|e| panic!("echo {n} during shutdown: {e:?}"))
            .expect("a message");
        assert_eq!(echo.buf.as_ref(), [n]);
    }
    drop(tx);
    assert_eq!(
        bounded("end", messages.message()).await.expect("ends OK"),
        None
    );
    wait_until("the handler finished", || peer.counts.finished() == 1).await;
    bounded("server stops", stopping).await.expect("stopped");
}
