//! One call of any shape with messages already encoded, through a plain [`Channel`]: the
//! service layer already speaks bytes ([`Call`] is a method path and a [`Body`] of encoded
//! messages), so no codec is involved. This is the whole hook a codec-agnostic client needs:
//! `Call::new(path, request)` (plus `with_streaming_response()` for a streamed answer) sent
//! through `Channel` as a `tower::Service<Call>`.

use bytes::Bytes;
use futures_util::Stream;
use sockrpc::{Body, Call, Channel, MetadataMap, MethodPath, Request, Response, Status};
use std::time::Duration;
use tower::ServiceExt;

/// What to send.
#[derive(Debug)]
pub(crate) struct Outgoing {
    /// `/package.Service/Method`.
    pub(crate) path: String,
    /// Metadata sent with the call.
    pub(crate) metadata: MetadataMap,
    /// The deadline, sent to the server.
    pub(crate) timeout: Option<Duration>,
    /// The answer is a stream (server or bidirectional streaming).
    pub(crate) streaming_response: bool,
}

impl Outgoing {
    fn call(&self, body: Body) -> Result<Call, Status> {
        let path = MethodPath::try_from_bytes(Bytes::from(self.path.clone()))
            .map_err(|err| Status::invalid_argument(format!("{}: {err}", self.path)))?;
        let request = Request::from_parts(self.metadata.clone(), body, self.timeout);
        let call = Call::new(path, request);
        Ok(if self.streaming_response {
            call.with_streaming_response()
        } else {
            call
        })
    }

    /// Sends one message (unary and server-streaming methods).
    pub(crate) async fn once(
        &self,
        channel: &Channel,
        message: Bytes,
    ) -> Result<Response<Body>, Status> {
        let call = self.call(Body::once(message))?;
        channel.clone().oneshot(call).await
    }

    /// Sends a stream of messages (client- and bidirectional-streaming methods).
    pub(crate) async fn stream<S>(
        &self,
        channel: &Channel,
        messages: S,
    ) -> Result<Response<Body>, Status>
    where
        S: Stream<Item = Result<Bytes, Status>> + Send + 'static,
    {
        let call = self.call(Body::from_stream(messages))?;
        channel.clone().oneshot(call).await
    }
}

/// The next message of an answer; `None` at its clean end, `Err` for a non-OK status.
pub(crate) async fn next_message(body: &mut Body) -> Option<Result<Bytes, Status>> {
    std::future::poll_fn(|cx| body.poll_message(cx)).await
}
