//! The client side: [`Channel`] (the transport as a tower service), [`Endpoint`], and
//! [`Client`], the typed helper generated stubs call.

mod channel;

pub use channel::{Channel, ChannelFuture};
pub use sockrpc_transport::backoff::Backoff;
pub use sockrpc_transport::endpoint::{Endpoint, IntoEndpoint, UdpPolicy};
pub use sockrpc_transport::pool::ConnectionStats;

use crate::ready::to_status;
use crate::streaming::{EncodeStream, Streaming};
use crate::{Body, Call, ClientService, RpcMethod};
use futures_core::Stream;
use sockrpc_protocol::codec::{encode_to_bytes, Codec};
use sockrpc_protocol::{MethodPath, Request, Response, Status};

/// Typed calls over any [`ClientService`] (a [`Channel`], or one wrapped in middleware, whose
/// errors may be tower's as well as [`Status`]): encodes requests, sends them, decodes answers.
/// Generated clients call one method per call shape, naming the method with its path and
/// idempotency level ([`RpcMethod`]; a bare path works too).
#[derive(Debug, Clone)]
pub struct Client<T> {
    inner: T,
}

impl<T> Client<T> {
    /// Wraps a service.
    pub fn new(inner: T) -> Client<T> {
        Client { inner }
    }

    /// The wrapped service.
    pub fn into_inner(self) -> T {
        self.inner
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The wrapped service, to use directly.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

impl<T: ClientService> Client<T> {
    async fn send(&mut self, call: Call) -> Result<Response<Body>, Status> {
        std::future::poll_fn(|cx| self.inner.poll_ready(cx))
            .await
            .map_err(to_status)?;
        self.inner.call(call).await.map_err(to_status)
    }

    fn call(method: RpcMethod, request: Request<Body>) -> Call {
        Call::new(MethodPath::from_static(method.path()), request)
            .with_idempotency(method.idempotency())
    }

    fn once<Req, C: Codec<Req>>(
        request: Request<Req>,
        method: RpcMethod,
        codec: &C,
    ) -> Result<Call, Status> {
        let message = encode_to_bytes(codec, request.get_ref())?;
        // `map` keeps the request's extensions (what an interceptor or the caller attached).
        Ok(Self::call(method, request.map(|_| Body::once(message))))
    }

    fn stream<S, Req, C>(request: Request<S>, method: RpcMethod, codec: C) -> Call
    where
        S: Stream<Item = Req> + Send + 'static,
        C: Codec<Req>,
    {
        let request = request.map(|stream| Body::from_stream(EncodeStream::new(stream, codec)));
        Self::call(method, request)
    }

    async fn single<Resp, C: Codec<Resp>>(
        response: Response<Body>,
        codec: &C,
    ) -> Result<Response<Resp>, Status> {
        let (metadata, mut body, mut trailers) = response.into_parts();
        let message = codec.decode(body.take_single().await?)?;
        // A streamed answer's trailers arrive at its end, inside the body.
        if let Some(late) = body.trailers() {
            trailers.extend(late.clone());
        }
        Ok(Response::from_parts(metadata, message, trailers))
    }

    /// One request, one response.
    pub async fn unary<Req, Resp, C>(
        &mut self,
        request: Request<Req>,
        method: impl Into<RpcMethod>,
        codec: C,
    ) -> Result<Response<Resp>, Status>
    where
        C: Codec<Req> + Codec<Resp>,
    {
        let call = Self::once(request, method.into(), &codec)?;
        let response = self.send(call).await?;
        Self::single(response, &codec).await
    }

    /// One request, a stream of responses.
    pub async fn server_streaming<Req, Resp, C>(
        &mut self,
        request: Request<Req>,
        method: impl Into<RpcMethod>,
        codec: C,
    ) -> Result<Response<Streaming<Resp>>, Status>
    where
        C: Codec<Req> + Codec<Resp>,
    {
        let call = Self::once(request, method.into(), &codec)?.with_streaming_response();
        let response = self.send(call).await?;
        Ok(response.map(|body| Streaming::new(body, codec)))
    }

    /// A stream of requests, one response.
    pub async fn client_streaming<S, Req, Resp, C>(
        &mut self,
        request: Request<S>,
        method: impl Into<RpcMethod>,
        codec: C,
    ) -> Result<Response<Resp>, Status>
    where
        S: Stream<Item = Req> + Send + 'static,
        C: Codec<Req> + Codec<Resp>,
    {
        let call = Self::stream(request, method.into(), codec.clone());
        let response = self.send(call).await?;
        Self::single(response, &codec).await
    }

    /// A stream of requests, a stream of responses.
    pub async fn streaming<S, Req, Resp, C>(
        &mut self,
        request: Request<S>,
        method: impl Into<RpcMethod>,
        codec: C,
    ) -> Result<Response<Streaming<Resp>>, Status>
    where
        S: Stream<Item = Req> + Send + 'static,
        C: Codec<Req> + Codec<Resp>,
    {
        let call = Self::stream(request, method.into(), codec.clone()).with_streaming_response();
        let response = self.send(call).await?;
        Ok(response.map(|body| Streaming::new(body, codec)))
    }
}
