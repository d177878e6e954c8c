//! tower's own layers around generated clients (their errors are `BoxError`s) and server
//! layers that change the answer's body or error type.

use super::*;
use futures_util::Stream;
use sockrpc::Body;
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::EchoServer;
use std::pin::Pin;
use std::task::{Context, Poll};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tower_timeout_layer_wraps_a_generated_client() {
    let server =
        Running::start(sockrpc::Server::builder().add_service(EchoServer::new(Plain))).await;
    let stack = tower::ServiceBuilder::new()
        .timeout(Duration::from_millis(100))
        .service(server.channel().await);
    let mut client = EchoClient::new(stack);
    // The handler would take 60 s: a timeout that waited for its answer fails `bounded` (20 s).
    let started = std::time::Instant::now();
    let err = bounded("Sleep", client.sleep(sleep_request(60_000)))
        .await
        .expect_err("tower's timeout fires");
    assert_eq!(
        err.code(),
        Code::DeadlineExceeded,
        "Elapsed maps to DEADLINE_EXCEEDED"
    );
    // At the layer's 100 ms, not the handler's 60 s; 10 s leaves room for a stall of a loaded
    // CI machine (`cargo test` runs this binary's tests at once on 2 cores).
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(100) && took < Duration::from_secs(10),
        "{took:?}"
    );
    // A status from the server passes through the BoxError unchanged.
    let err = bounded(
        "Fail",
        client.fail(FailRequest {
            code: Code::NotFound as i32,
            message: "gone".into(),
            details: Bytes::new(),
        }),
    )
    .await
    .expect_err("the server's status");
    assert_eq!((err.code(), err.message()), (Code::NotFound, "gone"));
    bounded("Echo", client.echo(whoami()))
        .await
        .expect("fast calls pass");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tower_concurrency_limit_layer_wraps_a_generated_client() {
    let server =
        Running::start(sockrpc::Server::builder().add_service(EchoServer::new(Plain))).await;
    let stack = tower::ServiceBuilder::new()
        .concurrency_limit(1)
        .service(server.channel().await);
    let client = EchoClient::new(stack);
    let started = std::time::Instant::now();
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move { client.sleep(sleep_request(100)).await })
        })
        .collect();
    for call in calls {
        bounded("Sleep", call).await.expect("join").expect("Sleep");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "one call at a time: {:?}",
        started.elapsed()
    );
    server.stop().await;
}

/// A response body that counts the messages leaving through it.
struct Counted {
    inner: Body,
    count: Arc<AtomicU32>,
}

impl Stream for Counted {
    type Item = Result<Bytes, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let next = this.inner.poll_message(cx);
        if let Poll::Ready(Some(Ok(_))) = &next {
            this.count.fetch_add(1, Ordering::SeqCst);
        }
        next
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_layers_may_change_the_body_and_the_error_type() {
    let count = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&count);
    let server = Running::start(
        sockrpc::Server::builder()
            // Answers with a body type of its own.
            .layer(tower::util::MapResponseLayer::new(
                move |response: Response<Body>| {
                    let count = Arc::clone(&counter);
                    response.map(|inner| Counted { inner, count })
                },
            ))
            // Fails with tower's `Elapsed` inside a `BoxError`.
            .layer(tower::timeout::TimeoutLayer::new(Duration::from_millis(
                100,
            )))
            .add_service(EchoServer::new(Plain)),
    )
    .await;
    let mut client = EchoClient::new(server.channel().await);
    let reply = bounded("Echo", client.echo(whoami())).await.expect("Echo");
    assert!(!reply.into_inner().payload.is_empty());
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "the answer went through the new body"
    );
    let err = bounded("Sleep", client.sleep(sleep_request(5_000)))
        .await
        .expect_err("the server's tower timeout");
    assert_eq!(err.code(), Code::DeadlineExceeded);
    server.stop().await;
}
