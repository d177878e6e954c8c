//! The client side: [`Channel`] (the transport as a tower service), [`Endpoint`], and
//! [`Client`], the typed helper generated stubs call.

mod backoff;
mod channel;
mod endpoint;
mod pool;

pub use backoff::Backoff;
pub use channel::{Channel, ChannelFuture};
pub use endpoint::{Endpoint, IntoEndpoint};
pub use pool::ConnectionStats;

use crate::{Call, RpcService};
use sockrpc_protocol::codec::{encode_to_bytes, Codec};
use sockrpc_protocol::{MethodPath, Request, Response, Status};

/// Typed calls over any [`RpcService`] (a [`Channel`], or one wrapped in middleware): encodes
/// the request, sends it, decodes the answer.
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

    /// One unary call of `path` with `codec`.
    pub async fn unary<Req, Resp, C>(
        &mut self,
        request: Request<Req>,
        path: &'static str,
        codec: C,
    ) -> Result<Response<Resp>, Status>
    where
        C: Codec<Req> + Codec<Resp>,
    {
        let (metadata, message, timeout) = request.into_parts();
        let body = encode_to_bytes(&codec, &message)?;
        let call = Call::new(
            MethodPath::from_static(path),
            Request::from_parts(metadata, body, timeout),
        );
        std::future::poll_fn(|cx| self.inner.poll_ready(cx)).await?;
        let response = self.inner.call(call).await?;
        let (metadata, body, trailers) = response.into_parts();
        let message = Codec::<Resp>::decode(&codec, body)?;
        Ok(Response::from_parts(metadata, message, trailers))
    }
}
