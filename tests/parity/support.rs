//! What the parity tests share: a bound on every wait, a server on a fresh loopback port, a
//! client for it, and an address nothing listens on (held: [`Refused`]).

use futures_util::stream;
use sockrpc::service::ServerBuilder;
use sockrpc::{BoxStream, Channel, Endpoint, Request, Response, Status, Streaming};
use sockrpc_tests::parity::test1_server::Test1;
use sockrpc_tests::parity::{Input1, Output1};
use std::net::SocketAddr;
use std::time::Duration;
use tower::layer::util::Identity;

pub(crate) use sockrpc_tests::refused::Refused;
pub(crate) use sockrpc_tests::serve::Running;

pub(crate) use sockrpc_tests::bounded::bounded;

/// Serves `builder` on `127.0.0.1:0`.
pub(crate) fn serve(builder: ServerBuilder<Identity>) -> Running {
    Running::start(builder)
}

/// The server's address as a `tcp://` URI.
pub(crate) fn uri(addr: SocketAddr) -> String {
    format!("tcp://{addr}")
}

/// A channel connected to `addr`.
pub(crate) async fn channel(addr: SocketAddr) -> Channel {
    bounded("connect", Channel::connect(uri(addr)))
        .await
        .expect("connect")
}

/// A channel connected to `addr` through `endpoint`'s settings.
pub(crate) async fn channel_with(
    addr: SocketAddr,
    endpoint: impl FnOnce(Endpoint) -> Endpoint,
) -> Channel {
    let endpoint = endpoint(Endpoint::from_uri(&uri(addr)).expect("endpoint"));
    bounded("connect", Channel::connect(endpoint))
        .await
        .expect("connect")
}

/// Polls `done` every 10 ms, at most for [`STEP`].
pub(crate) async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    bounded(what, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// Serves `builder`, tower layers on it, on `127.0.0.1:0`.
pub(crate) fn serve_layered<L>(builder: ServerBuilder<L>) -> Running
where
    L: sockrpc::service::server::Finish + Send + Sync + 'static,
{
    Running::start_layered(builder)
}

/// `Test1` as the routing and size tests need it: with a blob size, every answer is a blob of
/// that many zero bytes (two of them on a stream); without, it echoes the request (once on a
/// stream). Its client-streaming and bidi methods are not used there.
#[derive(Clone, Copy, Default)]
pub(crate) struct Test1Svc {
    pub(crate) blob: Option<usize>,
}

impl Test1Svc {
    fn answer(&self, request: Input1) -> Output1 {
        match self.blob {
            Some(size) => Output1 {
                buf: vec![0; size].into(),
            },
            None => Output1 { buf: request.buf },
        }
    }
}

impl Test1 for Test1Svc {
    async fn unary_call(&self, request: Request<Input1>) -> Result<Response<Output1>, Status> {
        Ok(Response::new(self.answer(request.into_inner())))
    }

    type StreamCallStream = BoxStream<Output1>;

    async fn stream_call(
        &self,
        request: Request<Input1>,
    ) -> Result<Response<BoxStream<Output1>>, Status> {
        let answer = self.answer(request.into_inner());
        let count = if self.blob.is_some() { 2 } else { 1 };
        Ok(Response::new(Box::pin(stream::iter(
            std::iter::repeat_n(answer, count).map(Ok),
        ))))
    }

    async fn collect(&self, _: Request<Streaming<Input1>>) -> Result<Response<Output1>, Status> {
        Err(Status::unimplemented("not used here"))
    }

    type ChatStream = BoxStream<Output1>;

    async fn chat(
        &self,
        _: Request<Streaming<Input1>>,
    ) -> Result<Response<BoxStream<Output1>>, Status> {
        Err(Status::unimplemented("not used here"))
    }
}
