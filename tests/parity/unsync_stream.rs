//! tonic's `streams.rs`: a server-streaming handler may answer with a stream that is `Send`
//! but not `Sync` (tonic's test holds a raw pointer; here a `Cell`, which needs no `unsafe`).
//! tonic only checks that such a service compiles and serves; this one also streams from it.

use crate::support::{bounded, channel, serve};
use futures_util::Stream;
use sockrpc::{Request, Response, Server, Status};
use sockrpc_tests::parity::test_stream_client::TestStreamClient;
use sockrpc_tests::parity::test_stream_server::{TestStream, TestStreamServer};
use sockrpc_tests::parity::{InputStream, OutputStream};
use std::cell::Cell;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Counts down from the number it holds; a `Cell` makes it `Send` and not `Sync`.
struct Unsync(Cell<u32>);

impl Stream for Unsync {
    type Item = Result<OutputStream, Status>;

    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let left = self.0.get();
        if left == 0 {
            return Poll::Ready(None);
        }
        self.0.set(left - 1);
        Poll::Ready(Some(Ok(OutputStream {})))
    }
}

struct Svc;

impl TestStream for Svc {
    type StreamCallStream = Pin<Box<dyn Stream<Item = Result<OutputStream, Status>> + Send>>;

    async fn stream_call(
        &self,
        _: Request<InputStream>,
    ) -> Result<Response<Self::StreamCallStream>, Status> {
        Ok(Response::new(Box::pin(Unsync(Cell::new(3)))))
    }
}

#[tokio::test]
async fn a_stream_that_is_send_but_not_sync_is_served() {
    let server = serve(Server::builder().add_service(TestStreamServer::new(Svc)));
    let mut client = TestStreamClient::new(channel(server.addr).await);
    let mut stream = bounded("open", client.stream_call(InputStream {}))
        .await
        .expect("opens")
        .into_inner();
    let mut count = 0;
    while bounded("message", stream.message())
        .await
        .expect("ok")
        .is_some()
    {
        count += 1;
        assert!(count <= 3, "more messages than the stream made");
    }
    assert_eq!(count, 3);
    server.stop().await;
}
