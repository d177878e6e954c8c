//! The client side: [`Channel`] (the transport as a tower service), [`Endpoint`], and
//! [`Client`], the typed helper generated stubs call.

mod channel;

pub use channel::{Channel, ChannelFuture};
pub use sockrpc_transport::backoff::Backoff;
pub use sockrpc_transport::endpoint::{Endpoint, IntoEndpoint, UdpPolicy};
pub use sockrpc_transport::pool::ConnectionStats;

use crate::streaming::{EncodeStream, Streaming};
use crate::{Body, Call, RpcService};
use futures_core::Stream;
use sockrpc_protocol::codec::{encode_to_bytes, Codec};
use sockrpc_protocol::{MethodPath, Request, Response, Status};

/// Typed calls over any [`RpcService`] (a [`Channel`], or one wrapped in middleware): encodes
/// requests, sends them, decodes answers. Generated clients call one method per call shape.
#[derive(Debug, Clone)]
pub struct Client<T> {
    inner: T,
}

impl<T: RpcService> Client<T> {
    /// Wraps a service.
    pub fn new(inner: T) -> Client<T> {
        Client { inner }
    }

    /// The wrapped service.
    pub fn into_inner(self) -> T {
        self.inner
    }

    /// The wrapped service, to use directly.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    async fn send(&mut self, call: Call) -> Result<Response<Body>, Status> {
        std::future::poll_fn(|cx| self.inner.poll_ready(cx)).await?;
        self.inner.call(call).await
    }

    fn once<Req, C: Codec<Req>>(
        request: Request<Req>,
        path: &'static str,
        codec: &C,
    ) -> Result<Call, Status> {
        let (metadata, message, timeout) = request.into_parts();
        let body = Body::once(encode_to_bytes(codec, &message)?);
        Ok(Call::new(
            MethodPath::from_static(path),
            Request::from_parts(metadata, body, timeout),
        ))
    }

    fn stream<S, Req, C>(request: Request<S>, path: &'static str, codec: C) -> Call
    where
        S: Stream<Item = Req> + Send + 'static,
        C: Codec<Req>,
    {
        let (metadata, stream, timeout) = request.into_parts();
        let body = Body::from_stream(EncodeStream::new(stream, codec));
        Call::new(
            MethodPath::from_static(path),
            Request::from_parts(metadata, body, timeout),
        )
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
        path: &'static str,
        codec: C,
    ) -> Result<Response<Resp>, Status>
    where
        C: Codec<Req> + Codec<Resp>,
    {
        let call = Self::once(request, path, &codec)?;
        let response = self.send(call).await?;
        Self::single(response, &codec).await
    }

    /// One request, a stream of responses.
    pub async fn server_streaming<Req, Resp, C>(
        &mut self,
        request: Request<Req>,
        path: &'static str,
        codec: C,
    ) -> Result<Response<Streaming<Resp>>, Status>
    where
        C: Codec<Req> + Codec<Resp>,
    {
        let call = Self::once(request, path, &codec)?.with_streaming_response();
        let response = self.send(call).await?;
        Ok(response.map(|body| Streaming::new(body, codec)))
    }

    /// A stream of requests, one response.
    pub async fn client_streaming<S, Req, Resp, C>(
        &mut self,
        request: Request<S>,
        path: &'static str,
        codec: C,
    ) -> Result<Response<Resp>, Status>
    where
        S: Stream<Item = Req> + Send + 'static,
        C: Codec<Req> + Codec<Resp>,
    {
        let call = Self::stream(request, path, codec.clone());
        let response = self.send(call).await?;
        Self::single(response, &codec).await
    }

    /// A stream of requests, a stream of responses.
    pub async fn streaming<S, Req, Resp, C>(
        &mut self,
        request: Request<S>,
        path: &'static str,
        codec: C,
    ) -> Result<Response<Streaming<Resp>>, Status>
    where
        S: Stream<Item = Req> + Send + 'static,
        C: Codec<Req> + Codec<Resp>,
    {
        let call = Self::stream(request, path, codec.clone()).with_streaming_response();
        let response = self.send(call).await?;
        Ok(response.map(|body| Streaming::new(body, codec)))
    }
}
