//! grpc-go's `TestUnaryServerInterceptor` / `TestStreamServerInterceptor` and their client
//! counterparts, tonic's `interceptor.rs`: an interceptor may add and remove metadata on the
//! way in, on either side, and may fail a call of any shape with a status that reaches the
//! client whole (code, message, details, metadata) without the handler running.

use crate::support::{bounded, channel, serve, with_meta, Peer};
use futures_util::stream;
use sockrpc::{Code, MetadataMap, Request, Server, Status};
use sockrpc_tests::parity::test1_client::Test1Client;
use sockrpc_tests::parity::test1_server::Test1Server;
use sockrpc_tests::parity::Input1;

/// Adds `x-added`, drops `x-secret`; refuses a call carrying `x-refuse` with a full status.
fn server_side(mut request: Request<()>) -> Result<Request<()>, Status> {
    if request.metadata().contains_key("x-refuse") {
        let mut metadata = MetadataMap::new();
        metadata.insert_str("x-why", "refused").expect("text");
        metadata
            .insert_bin("x-why-bin", vec![0u8, 0xff].into())
            .expect("bin");
        let mut status = Status::with_metadata(Code::PermissionDenied, "no, 100%\nnot", metadata);
        status.set_details(vec![9u8, 8, 7]);
        return Err(status);
    }
    request.metadata_mut().remove("x-secret");
    request
        .metadata_mut()
        .insert_str("x-added", "by-server")
        .map_err(|e| Status::internal(e.to_string()))?;
    Ok(request)
}

/// Adds `x-client`, drops `x-local-only`.
fn client_side(mut request: Request<()>) -> Result<Request<()>, Status> {
    request.metadata_mut().remove("x-local-only");
    request
        .metadata_mut()
        .insert_str("x-client", "by-client")
        .map_err(|e| Status::internal(e.to_string()))?;
    Ok(request)
}

fn assert_refusal(err: &Status, what: &str) {
    assert_eq!(err.code(), Code::PermissionDenied, "{what}: {err:?}");
    assert_eq!(err.message(), "no, 100%\nnot", "{what}");
    assert_eq!(err.details(), &[9, 8, 7], "{what}");
    assert_eq!(err.metadata().get_str("x-why"), Some("refused"), "{what}");
    assert_eq!(
        err.metadata().get_bin_bytes("x-why-bin"),
        Some(&[0u8, 0xff][..]),
        "{what}"
    );
}

#[tokio::test]
async fn interceptors_add_and_remove_metadata_on_both_sides() {
    let peer = Peer::default();
    let server = serve(
        Server::builder().add_service(Test1Server::with_interceptor(peer.clone(), server_side)),
    );
    let mut client = Test1Client::with_interceptor(channel(server.addr).await, client_side);
    let meta = [
        ("x-echo-meta", "1"),
        ("x-secret", "s"),
        ("x-local-only", "l"),
        ("x-kept", "k"),
    ];

    let answer = bounded(
        "unary",
        client.unary_call(with_meta(Input1::default(), &meta)),
    )
    .await
    .expect("served");
    let seen = answer.metadata();
    assert_eq!(seen.get_str("x-added"), Some("by-server"));
    assert_eq!(seen.get_str("x-client"), Some("by-client"));
    assert_eq!(seen.get_str("x-kept"), Some("k"));
    assert!(
        !seen.contains_key("x-secret"),
        "removed on the server: {seen:?}"
    );
    assert!(
        !seen.contains_key("x-local-only"),
        "removed on the client: {seen:?}"
    );

    let requests = stream::iter(vec![Input1::default(); 2]);
    let answer = bounded("chat", client.chat(with_meta(requests, &meta)))
        .await
        .expect("served");
    let seen = answer.metadata();
    assert_eq!(seen.get_str("x-added"), Some("by-server"));
    assert_eq!(seen.get_str("x-client"), Some("by-client"));
    assert!(!seen.contains_key("x-secret") && !seen.contains_key("x-local-only"));
    server.stop().await;
}

#[tokio::test]
async fn an_interceptors_status_ends_every_shape_before_the_handler() {
    let peer = Peer::default();
    let server = serve(
        Server::builder().add_service(Test1Server::with_interceptor(peer.clone(), server_side)),
    );
    let mut client = Test1Client::new(channel(server.addr).await);
    let refuse = [("x-refuse", "1")];

    let err = bounded(
        "unary",
        client.unary_call(with_meta(Input1::default(), &refuse)),
    )
    .await
    .expect_err("refused");
    assert_refusal(&err, "unary");

    let result = bounded("server stream", async {
        let request = with_meta(Input1::default(), &refuse);
        let mut messages = client.stream_call(request).await?.into_inner();
        messages.message().await
    })
    .await;
    assert_refusal(&result.expect_err("refused"), "server stream");

    // The client streams have request streams that never end on their own.
    let err = bounded(
        "collect",
        client.collect(with_meta(stream::repeat(Input1::default()), &refuse)),
    )
    .await
    .expect_err("refused");
    assert_refusal(&err, "client stream");

    let result = bounded("bidi", async {
        let request = with_meta(stream::repeat(Input1::default()), &refuse);
        let mut messages = client.chat(request).await?.into_inner();
        messages.message().await
    })
    .await;
    assert_refusal(&result.expect_err("refused"), "bidi");
    assert_eq!(peer.counts.started(), 0, "no handler ran");
    server.stop().await;
}
