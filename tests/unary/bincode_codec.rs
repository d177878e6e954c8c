//! The bincode codec end to end: a Rust-only service with serde types, no `.proto`.

use super::*;
use sockrpc::codegen::{unary_handler, BoxFuture, Call};
use sockrpc::BincodeCodec;
use std::task::{Context, Poll};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Point {
    x: i64,
    y: i64,
    label: String,
    tags: Vec<String>,
}

/// A Rust-only service: no `.proto`, serde types through bincode.
#[derive(Clone)]
struct Mover;

impl tower::Service<Call> for Mover {
    type Response = Response<sockrpc::Body>;
    type Error = Status;
    type Future = BoxFuture<Result<Response<sockrpc::Body>, Status>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> Self::Future {
        Box::pin(unary_handler(
            call,
            BincodeCodec,
            |request: Request<Point>| async move {
                let mut point = request.into_inner();
                point.x += 1;
                point.y -= 1;
                point.tags.push("moved".into());
                Ok(Response::new(point))
            },
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bincode_carries_a_serde_struct() {
    let listener = sockrpc::transport::bind_tcp(
        "127.0.0.1:0".parse().expect("addr"),
        &sockrpc::SocketConfig::default(),
    )
    .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = sockrpc::Router::new().add_named("demo.Points", Mover);
    let server = tokio::spawn(
        Server::builder()
            .router(router)
            .serve_with_listener(listener),
    );
    let channel = sockrpc::Channel::connect(addr).await.expect("connect");
    let mut client = sockrpc::Client::new(channel);
    let point = Point {
        x: 1,
        y: 2,
        label: "héllo 𝄞".into(),
        tags: vec!["a".into()],
    };
    let moved: Response<Point> = client
        .unary(
            Request::new(point.clone()),
            "/demo.Points/Move",
            BincodeCodec,
        )
        .await
        .expect("call");
    let moved = moved.into_inner();
    assert_eq!((moved.x, moved.y), (2, 1));
    assert_eq!(moved.label, point.label);
    assert_eq!(moved.tags, vec!["a".to_string(), "moved".to_string()]);
    server.abort();
}
