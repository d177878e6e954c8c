//! `Body`: a call's messages in the service layer — one, none, or a stream.
//!
//! Unary calls carry `Body::once(bytes)`, which costs nothing beyond the bytes; streaming calls
//! carry a stream, either the caller's own (encoded as it is polled) or one fed by a connection
//! (with flow control behind it).

use bytes::Bytes;
use futures_core::Stream;
use sockrpc_protocol::{MetadataMap, Status};
use std::{
    pin::Pin,
    task::{Context, Poll},
};

/// A stream of encoded messages fed by a connection, with trailers at its end.
pub trait Incoming: Send {
    /// The next message; `None` after a clean end.
    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Status>>>;

    /// Trailing metadata, once ended cleanly.
    fn trailers(&self) -> Option<&MetadataMap>;
}

impl Incoming for sockrpc_transport::server::CallReceiver {
    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Status>>> {
        sockrpc_transport::server::CallReceiver::poll_message(self, cx)
    }

    fn trailers(&self) -> Option<&MetadataMap> {
        None
    }
}

impl sockrpc_transport::OutboundBody for Body {
    fn into_once(self) -> Result<Bytes, Body> {
        Body::into_once(self)
    }

    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Status>>> {
        Body::poll_message(self, cx)
    }
}

impl From<sockrpc_transport::RequestBody> for Body {
    fn from(body: sockrpc_transport::RequestBody) -> Body {
        match body {
            sockrpc_transport::RequestBody::Once(message) => Body::once(message),
            sockrpc_transport::RequestBody::Stream(receiver) => Body::incoming(receiver),
        }
    }
}

impl Incoming for sockrpc_transport::StreamReceiver {
    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Status>>> {
        sockrpc_transport::StreamReceiver::poll_message(self, cx)
    }

    fn trailers(&self) -> Option<&MetadataMap> {
        sockrpc_transport::StreamReceiver::trailers(self)
    }
}

enum Kind {
    Empty,
    Once(Bytes),
    Stream(Pin<Box<dyn Stream<Item = Result<Bytes, Status>> + Send>>),
    Incoming(Box<dyn Incoming>),
}

/// The messages of a call, encoded.
pub struct Body {
    kind: Kind,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Empty => "empty",
            Kind::Once(_) => "once",
            Kind::Stream(_) => "stream",
            Kind::Incoming(_) => "incoming",
        };
        f.debug_struct("Body").field("kind", &kind).finish()
    }
}

impl Default for Body {
    fn default() -> Body {
        Body::empty()
    }
}

impl Body {
    /// No messages.
    pub fn empty() -> Body {
        Body { kind: Kind::Empty }
    }

    /// Exactly one message: a unary request or response.
    pub fn once(message: Bytes) -> Body {
        Body {
            kind: Kind::Once(message),
        }
    }

    /// A stream of messages.
    pub fn from_stream<S>(stream: S) -> Body
    where
        S: Stream<Item = Result<Bytes, Status>> + Send + 'static,
    {
        Body {
            kind: Kind::Stream(Box::pin(stream)),
        }
    }

    /// Messages arriving on a connection.
    pub fn incoming(incoming: impl Incoming + 'static) -> Body {
        Body {
            kind: Kind::Incoming(Box::new(incoming)),
        }
    }

    /// Any stream of encoded messages as a body; a `Body` passes through unchanged (not wrapped
    /// a second time, so a single message keeps its one-write path). What lets server layers
    /// that replace the response body (to count or transform messages) sit in front of the
    /// router.
    pub fn new<B>(body: B) -> Body
    where
        B: Stream<Item = Result<Bytes, Status>> + Send + 'static,
    {
        let mut slot = Some(body);
        if let Some(body) = (&mut slot as &mut dyn std::any::Any)
            .downcast_mut::<Option<Body>>()
            .and_then(Option::take)
        {
            return body;
        }
        match slot {
            Some(body) => Body::from_stream(body),
            None => Body::empty(),
        }
    }

    /// A copy, when the body is known without polling (empty or one message; the message is
    /// shared, not copied). `None` for a stream.
    pub fn try_clone(&self) -> Option<Body> {
        match &self.kind {
            Kind::Empty => Some(Body::empty()),
            Kind::Once(message) => Some(Body::once(message.clone())),
            Kind::Stream(_) | Kind::Incoming(_) => None,
        }
    }

    /// Whether this is exactly one message, known without polling.
    pub fn is_once(&self) -> bool {
        matches!(self.kind, Kind::Once(_))
    }

    /// The single message, if the body is one; otherwise the body back.
    pub fn into_once(self) -> Result<Bytes, Body> {
        match self.kind {
            Kind::Once(message) => Ok(message),
            kind => Err(Body { kind }),
        }
    }

    /// The one message of a unary call, however it arrives: fails with `Unimplemented` (gRPC's
    /// code for a cardinality violation) when there are none or more than one.
    pub async fn single(mut self) -> Result<Bytes, Status> {
        self.take_single().await
    }

    /// Like [`single`](Body::single), leaving the body in place so its trailers can be read
    /// afterwards.
    pub async fn take_single(&mut self) -> Result<Bytes, Status> {
        if let Kind::Once(_) = &self.kind {
            if let Kind::Once(message) = std::mem::replace(&mut self.kind, Kind::Empty) {
                return Ok(message);
            }
        }
        let first = std::future::poll_fn(|cx| self.poll_message(cx)).await;
        let Some(first) = first else {
            return Err(Status::unimplemented("expected one message, got none"));
        };
        let first = first?;
        match std::future::poll_fn(|cx| self.poll_message(cx)).await {
            None => Ok(first),
            Some(Err(status)) => Err(status),
            Some(Ok(_)) => Err(Status::unimplemented(
                "expected one message, got more than one",
            )),
        }
    }

    /// The next message.
    pub fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Status>>> {
        match &mut self.kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Once(_) => match std::mem::replace(&mut self.kind, Kind::Empty) {
                Kind::Once(message) => Poll::Ready(Some(Ok(message))),
                _ => Poll::Ready(None),
            },
            Kind::Stream(stream) => stream.as_mut().poll_next(cx),
            Kind::Incoming(incoming) => incoming.poll_message(cx),
        }
    }

    /// Trailing metadata that arrived at the end of an incoming stream.
    pub fn trailers(&self) -> Option<&MetadataMap> {
        match &self.kind {
            Kind::Incoming(incoming) => incoming.trailers(),
            _ => None,
        }
    }
}

impl Stream for Body {
    type Item = Result<Bytes, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_message(cx)
    }
}
