//! The transport's types as the service layer's bodies: a server's streamed request
//! ([`CallReceiver`](sockrpc_transport::server::CallReceiver)) and a client's streamed answer
//! ([`StreamReceiver`](sockrpc_transport::StreamReceiver)) are [`Incoming`] streams, and a
//! [`Body`] is what the transport sends; a server transport's request becomes a body that keeps
//! what the wire said of its compression ([`Body::received`]). Apart from `body.rs` so that
//! file stays about the body itself.

use crate::body::{Body, Incoming};
use bytes::Bytes;
use sockrpc_protocol::{MetadataMap, Request, Status};
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

// No `From<RequestBody> for Body`: a `RequestBody` alone does not say whether its one message
// arrived compressed, nor whether the OPEN named an encoding (its `Request` does), so such a
// conversion handed a compressed request to its reader as if plain. `Body::received` converts
// the whole request.
impl Body {
    /// A request as a server transport delivered it ([`IncomingCall`]'s), its body as the
    /// service layer reads it: a unary message keeps its MESSAGE's `FLAG_COMPRESSED` (decoded,
    /// or refused, when read), and a message flagged compressed under an OPEN that named no
    /// encoding fails `INTERNAL` when read, a stream's as a unary one's. What
    /// [`Call::from_incoming`](crate::Call::from_incoming) does with a call's request; for a
    /// [`Dispatch`](sockrpc_transport::Dispatch) of one's own.
    ///
    /// [`IncomingCall`]: sockrpc_transport::IncomingCall
    pub fn received(request: Request<sockrpc_transport::RequestBody>) -> Request<Body> {
        let compressed = request.message_compressed();
        let fields = request.encoding();
        request.map(|body| match body {
            sockrpc_transport::RequestBody::Once(message) => {
                Body::once_received(message, compressed, fields)
            }
            sockrpc_transport::RequestBody::Stream(receiver) => {
                Body::incoming_received(receiver, fields)
            }
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use sockrpc_protocol::{Code, CompressionEncoding, EncodingFields, EncodingSet};
    use sockrpc_transport::RequestBody;

    /// A unary request as a server transport delivers it: `FLAG_COMPRESSED` (`compressed`) and
    /// the OPEN's encoding fields on the request, the message in the body.
    fn delivered(compressed: bool, fields: Option<EncodingFields>) -> Request<RequestBody> {
        let body = RequestBody::Once(Bytes::from_static(b"\x1f\x8b not plain"));
        let mut request = Request::new(body);
        request.set_message_compressed(compressed);
        request.set_encoding(fields);
        request
    }

    /// What reading the one message of `request`, made a body by `Body::received`, gives.
    async fn read(request: Request<RequestBody>) -> Result<Bytes, Code> {
        Body::received(request)
            .into_inner()
            .single()
            .await
            .map_err(|status| status.code())
    }

    /// The conversion it replaces (`From<RequestBody> for Body`) saw only the body: a compressed
    /// request came out plain, its bytes read as the message.
    #[tokio::test]
    async fn a_received_request_keeps_its_compressed_flag_and_whether_an_encoding_was_named() {
        let gzip = EncodingFields::new(EncodingSet::EMPTY, Some(CompressionEncoding::Gzip));
        assert_eq!(
            read(delivered(true, None)).await,
            Err(Code::Internal),
            "flagged compressed, no encoding named"
        );
        assert_eq!(
            read(delivered(true, Some(gzip))).await,
            Err(Code::Unimplemented),
            "flagged compressed, gzip named, nothing set to decode it"
        );
        assert_eq!(
            read(delivered(false, None)).await,
            Ok(Bytes::from_static(b"\x1f\x8b not plain")),
            "plain"
        );
    }
}
