//! The transport's types as the service layer's bodies: a server's streamed request
//! ([`CallReceiver`](sockrpc_transport::server::CallReceiver)) and a client's streamed answer
//! ([`StreamReceiver`](sockrpc_transport::StreamReceiver)) are [`Incoming`] streams, and a
//! [`Body`] is what the transport sends. Apart from `body.rs` so that file stays about the
//! body itself.

use crate::body::{Body, Incoming};
use bytes::Bytes;
use sockrpc_protocol::{MetadataMap, Status};
use std::task::{Context, Poll};

impl Incoming for sockrpc_transport::server::CallReceiver {
    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Status>>> {
        sockrpc_transport::server::CallReceiver::poll_message(self, cx)
    }

    fn poll_message_flagged(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<(Bytes, bool), Status>>> {
        sockrpc_transport::server::CallReceiver::poll_message_flagged(self, cx)
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

    fn into_once_flagged(self) -> Result<(Bytes, bool), Body> {
        Body::into_once_wire(self)
    }

    fn poll_message_flagged(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<(Bytes, bool), Status>>> {
        Body::poll_wire(self, cx)
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

    fn poll_message_flagged(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<(Bytes, bool), Status>>> {
        sockrpc_transport::StreamReceiver::poll_message_flagged(self, cx)
    }

    fn trailers(&self) -> Option<&MetadataMap> {
        sockrpc_transport::StreamReceiver::trailers(self)
    }
}
