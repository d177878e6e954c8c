//! `Body`: a call's messages in the service layer — one, none, or a stream.
//!
//! Unary calls carry `Body::once(bytes)`, which costs nothing beyond the bytes; streaming calls
//! carry a stream, either the caller's own (encoded as it is polled) or one fed by a connection
//! (with flow control behind it).

use crate::compression::{Decoding, Encoding, Side};
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

    /// The reader refused the last message read from here (over its limit, not decodable, in
    /// a compression it does not take): on this side the call ends with `status`. The message
    /// passed through here whole, so a wrapper that watches how the stream ends learns it
    /// only from this call, and should pass it on to what it wraps
    /// ([`Body::refuse`]). By default, nothing.
    fn refused(&mut self, status: &Status) {
        let _ = status;
    }

    /// The next message as it came off the wire, with its MESSAGE's `FLAG_COMPRESSED`. By
    /// default, [`poll_message`](Incoming::poll_message)'s messages, none compressed.
    fn poll_message_flagged(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<(Bytes, bool), Status>>> {
        self.poll_message(cx)
            .map(|next| next.map(|message| message.map(|m| (m, false))))
    }
}

enum Kind {
    Empty,
    Once(Bytes),
    /// One message as it arrived, compressed (decoded when read).
    OnceCompressed(Bytes),
    Stream(Pin<Box<dyn Stream<Item = Result<Bytes, Status>> + Send>>),
    /// Messages arriving on a connection, and whether their sender named no encoding (then a
    /// message flagged compressed is a protocol error, `INTERNAL`, whatever this side accepts).
    Incoming(Box<dyn Incoming>, Unnamed),
    /// A body that failed before its first message (a message over the sending limit).
    Failed(Option<Status>),
}

/// Whether a stream's sender named no encoding in its OPEN or HEADERS: `true` only when the
/// side that made the body said so ([`Body::incoming_received`],
/// [`Body::refuse_unnamed_compression`]); a body made otherwise refuses a compressed message as
/// one in an encoding it does not accept. (A flag beside the box: no bigger a body.)
type Unnamed = bool;

/// How a body decodes what it receives and encodes what it sends, when a generated client or
/// server set it (boxed: most bodies have none, and stay small).
#[derive(Debug, Clone, Default)]
struct Codec {
    decoding: Option<Decoding>,
    encoding: Option<Encoding>,
    /// Whether the last message decoded arrived compressed.
    last_compressed: bool,
}

/// Why a message was not sent: the status, and whether this side refused it (`true`: over the
/// sending limit, or its compression failed) rather than the body's own stream failing.
pub(crate) type Refused = (Status, bool);

/// The messages of a call, encoded.
pub struct Body {
    kind: Kind,
    codec: Option<Box<Codec>>,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Empty => "empty",
            Kind::Once(_) => "once",
            Kind::OnceCompressed(_) => "once (compressed)",
            Kind::Stream(_) => "stream",
            Kind::Incoming(..) => "incoming",
            Kind::Failed(_) => "failed",
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
    fn of(kind: Kind) -> Body {
        Body { kind, codec: None }
    }

    /// Exactly one message as it arrived on the wire: `compressed` when its MESSAGE carried
    /// `FLAG_COMPRESSED` (it is then decoded when read, or refused when not accepted).
    pub fn once_wire(message: Bytes, compressed: bool) -> Body {
        if compressed {
            Body::of(Kind::OnceCompressed(message))
        } else {
            Body::of(Kind::Once(message))
        }
    }

    /// [`once_wire`](Body::once_wire) for a message received under the encoding fields its
    /// sender named (its OPEN's or HEADERS'): one flagged compressed when the sender named no
    /// encoding fails `INTERNAL` when read, a protocol error (`compression::unnamed_encoding`),
    /// whatever this side accepts.
    pub(crate) fn once_received(
        message: Bytes,
        compressed: bool,
        fields: Option<sockrpc_protocol::EncodingFields>,
    ) -> Body {
        if compressed && crate::compression::names_no_encoding(fields) {
            return Body::of(Kind::Failed(Some(crate::compression::unnamed_encoding())));
        }
        Body::once_wire(message, compressed)
    }

    /// [`Body::incoming`] for a stream received under the encoding fields its sender named
    /// (its OPEN's or HEADERS'): each message flagged compressed when the sender named no
    /// encoding fails `INTERNAL` when read, as [`once_received`](Body::once_received)'s one.
    pub(crate) fn incoming_received(
        incoming: impl Incoming + 'static,
        fields: Option<sockrpc_protocol::EncodingFields>,
    ) -> Body {
        let unnamed = crate::compression::names_no_encoding(fields);
        Body::of(Kind::Incoming(Box::new(incoming), unnamed))
    }

    /// [`once_received`](Body::once_received)'s and
    /// [`incoming_received`](Body::incoming_received)'s check on a body already made: one
    /// message that arrived compressed, under `fields` that name no encoding, fails `INTERNAL`
    /// when read, and so does each such message of a stream received.
    pub(crate) fn refuse_unnamed_compression(
        &mut self,
        fields: Option<sockrpc_protocol::EncodingFields>,
    ) {
        if !crate::compression::names_no_encoding(fields) {
            return;
        }
        match &mut self.kind {
            Kind::OnceCompressed(_) => {
                self.kind = Kind::Failed(Some(crate::compression::unnamed_encoding()));
            }
            Kind::Incoming(_, unnamed) => *unnamed = true,
            _ => {}
        }
    }

    /// No messages.
    pub fn empty() -> Body {
        Body::of(Kind::Empty)
    }

    /// Exactly one message: a unary request or response.
    pub fn once(message: Bytes) -> Body {
        Body::of(Kind::Once(message))
    }

    /// A stream of messages.
    pub fn from_stream<S>(stream: S) -> Body
    where
        S: Stream<Item = Result<Bytes, Status>> + Send + 'static,
    {
        Body::of(Kind::Stream(Box::pin(stream)))
    }

    /// Messages arriving on a connection.
    pub fn incoming(incoming: impl Incoming + 'static) -> Body {
        Body::of(Kind::Incoming(Box::new(incoming), false))
    }

    /// `self` seen through `wrap`, which gets every message as it arrived and the trailers, and
    /// gives them on: what a layer that watches or holds a streamed body (counts its messages,
    /// keeps a permit to its end) wraps it with. What `self` was set to do with its messages —
    /// compress or decompress them, bound their size — moves to the body returned, and so does
    /// whatever is set on that later: wrapping changes nothing of what is sent or received.
    /// (Through [`Body::incoming`] or [`Body::from_stream`] instead, a compressed message would
    /// reach a wrapper that cannot read it, and trailers would be lost.) `wrap` should give
    /// what its [`Incoming::poll_message_flagged`] reads from the inner body's
    /// [`poll_message_flagged`](Body::poll_message_flagged), and its trailers from the inner
    /// body's [`trailers`](Body::trailers).
    pub fn wrap<I: Incoming + 'static>(mut self, wrap: impl FnOnce(Body) -> I) -> Body {
        let codec = self.codec.take();
        // Whether the sender named no encoding moves too: the body returned refuses what
        // `self` would have.
        let unnamed = match &mut self.kind {
            Kind::Incoming(_, unnamed) => std::mem::take(unnamed),
            _ => false,
        };
        Body {
            kind: Kind::Incoming(Box::new(wrap(self)), unnamed),
            codec,
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
        let kind = match &self.kind {
            Kind::Empty => Kind::Empty,
            Kind::Once(message) => Kind::Once(message.clone()),
            Kind::OnceCompressed(message) => Kind::OnceCompressed(message.clone()),
            Kind::Failed(status) => Kind::Failed(status.clone()),
            Kind::Stream(_) | Kind::Incoming(..) => return None,
        };
        Some(Body {
            kind,
            codec: self.codec.clone(),
        })
    }

    fn codec_mut(&mut self) -> &mut Codec {
        self.codec.get_or_insert_with(Box::default)
    }

    /// Decodes received messages as `decoding` says (a generated client or server sets it),
    /// keeping a smaller receiving limit already set ([`limit_received`](Body::limit_received)).
    pub(crate) fn set_decoding(&mut self, mut decoding: Decoding) {
        let codec = self.codec_mut();
        decoding.tighten(codec.decoding.as_ref().and_then(Decoding::max));
        codec.decoding = Some(decoding);
    }

    /// Encodes sent messages as `encoding` says, keeping a smaller sending limit already set
    /// ([`limit_sent`](Body::limit_sent)).
    pub(crate) fn set_encoding(&mut self, mut encoding: Encoding) {
        let codec = self.codec_mut();
        encoding.tighten(codec.encoding.as_ref().and_then(Encoding::max));
        codec.encoding = Some(encoding);
    }

    /// Bounds each message this body sends to `max` bytes (before compression): a larger one
    /// fails the call `RESOURCE_EXHAUSTED` without being sent. Applies on top of any other
    /// sending limit (the smaller wins): a service config's `maxRequestMessageBytes` sets it.
    pub fn limit_sent(&mut self, max: usize) {
        let codec = self.codec_mut();
        match &mut codec.encoding {
            Some(encoding) => encoding.tighten(Some(max)),
            None => codec.encoding = Some(Encoding::bounded(max)),
        }
    }

    /// Bounds each message a client reads from this body to `max` bytes (after
    /// decompression): a larger one fails the call `RESOURCE_EXHAUSTED`. Applies on top of any
    /// other receiving limit (the smaller wins): a service config's `maxResponseMessageBytes`
    /// sets it on the answer's body.
    pub fn limit_received(&mut self, max: usize) {
        let codec = self.codec_mut();
        match &mut codec.decoding {
            Some(decoding) => decoding.tighten(Some(max)),
            None => codec.decoding = Some(Decoding::bounded(max, Side::Client)),
        }
    }

    /// The encoding set on this body, if any.
    pub(crate) fn encoding(&self) -> Option<&Encoding> {
        self.codec.as_ref()?.encoding.as_ref()
    }

    /// Whether this is exactly one message, known without polling.
    pub fn is_once(&self) -> bool {
        matches!(self.kind, Kind::Once(_) | Kind::OnceCompressed(_))
    }

    /// The single message, if the body is one (and needs no decoding); otherwise the body
    /// back.
    pub fn into_once(self) -> Result<Bytes, Body> {
        let decodes = self.codec.as_ref().is_some_and(|c| c.decoding.is_some());
        match self.kind {
            Kind::Once(message) if !decodes => Ok(message),
            kind => Err(Body {
                kind,
                codec: self.codec,
            }),
        }
    }

    /// The single message as it goes on the wire (compressed when its encoding says so), with
    /// whether it is compressed; otherwise (or when encoding fails) the body back.
    pub(crate) fn into_once_wire(self) -> Result<(Bytes, bool), Body> {
        let Body { kind, codec } = self;
        match (kind, codec.as_ref().and_then(|c| c.encoding.as_ref())) {
            (Kind::Once(message), None) => Ok((message, false)),
            // Already in its wire form (a layer forwarding an answer as it arrived): sent so,
            // flagged, under the encoding fields its response names. A body that decodes (an
            // answer this side received, forwarded) is read first: it goes out decoded, plain.
            (Kind::OnceCompressed(message), None)
                if codec.as_ref().is_none_or(|c| c.decoding.is_none()) =>
            {
                Ok((message, true))
            }
            (Kind::Once(message), Some(encoding)) => match encoding.encode(message) {
                Ok(wire) => Ok(wire),
                Err(status) => Err(Body {
                    kind: Kind::Failed(Some(status)),
                    codec,
                }),
            },
            (kind, _) => Err(Body { kind, codec }),
        }
    }

    /// The next message as it goes on the wire, with whether it is compressed.
    pub(crate) fn poll_wire(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<(Bytes, bool), Status>>> {
        self.poll_wire_refused(cx)
            .map(|next| next.map(|wire| wire.map_err(|(status, _)| status)))
    }

    /// Like [`poll_wire`](Body::poll_wire), telling an error of the body's own stream
    /// (`false`) from this side's refusal to send the message (`true`: over the sending limit,
    /// or its compression failed).
    pub(crate) fn poll_wire_refused(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<(Bytes, bool), Refused>>> {
        if self.codec.is_none() {
            // Nothing to decode or encode: messages go on as they came, flagged as they came
            // (a compressed one a layer forwards is not this side's to read).
            return self
                .poll_message_flagged(cx)
                .map(|next| next.map(|wire| wire.map_err(|s| (s, false))));
        }
        let polled = self.poll_message(cx);
        match (polled, self.encoding()) {
            (Poll::Ready(Some(Ok(message))), Some(encoding)) => {
                Poll::Ready(Some(encoding.encode(message).map_err(|s| (s, true))))
            }
            (polled, _) => polled.map(|next| {
                next.map(|message| message.map(|m| (m, false)).map_err(|s| (s, false)))
            }),
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
        self.take_single_with(Ok).await
    }

    /// Like [`take_single`](Body::take_single), handing the message to `decode` before the
    /// stream's end is read: a streamed answer the reader refuses is then refused while the
    /// layers watching it wait for its end ([`refuse`](Body::refuse)), as a stream's
    /// messages are, rather than after they saw it end cleanly. A second message is refused
    /// so too (`UNIMPLEMENTED`). (An answer with no message has ended cleanly before this can
    /// tell: the layers saw its end.)
    pub async fn take_single_with<T>(
        &mut self,
        decode: impl FnOnce(Bytes) -> Result<T, Status>,
    ) -> Result<T, Status> {
        let decodes = self.codec.as_ref().is_some_and(|c| c.decoding.is_some());
        if let (Kind::Once(_), false) = (&self.kind, decodes) {
            if let Kind::Once(message) = std::mem::replace(&mut self.kind, Kind::Empty) {
                return decode(message);
            }
        }
        let first = std::future::poll_fn(|cx| self.poll_message(cx)).await;
        let Some(first) = first else {
            return Err(Status::unimplemented("expected one message, got none"));
        };
        let first = match decode(first?) {
            Ok(first) => first,
            Err(status) => {
                self.refuse(&status);
                return Err(status);
            }
        };
        match std::future::poll_fn(|cx| self.poll_message(cx)).await {
            None => Ok(first),
            Some(Err(status)) => Err(status),
            Some(Ok(_)) => {
                // Refused as a message that does not decode is: the layers watching the
                // stream hear the caller's code, not the `CANCELLED` of a body dropped early.
                let status = Status::unimplemented("expected one message, got more than one");
                self.refuse(&status);
                Err(status)
            }
        }
    }

    /// The next message, decoded: a compressed one is decompressed when this side accepts
    /// its encoding and refused (`UNIMPLEMENTED`) otherwise, or `INTERNAL` when its sender
    /// named no encoding; one over the receiving limit fails `RESOURCE_EXHAUSTED`.
    pub fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Status>>> {
        let mut unnamed = false;
        let (message, compressed) = match &mut self.kind {
            Kind::Empty => return Poll::Ready(None),
            Kind::Once(_) | Kind::OnceCompressed(_) => {
                match std::mem::replace(&mut self.kind, Kind::Empty) {
                    Kind::Once(message) => (message, false),
                    Kind::OnceCompressed(message) => (message, true),
                    _ => return Poll::Ready(None),
                }
            }
            Kind::Failed(status) => {
                return Poll::Ready(status.take().map(Err));
            }
            Kind::Stream(stream) => match std::task::ready!(stream.as_mut().poll_next(cx)) {
                Some(Ok(message)) => (message, false),
                other => return Poll::Ready(other),
            },
            Kind::Incoming(incoming, named_none) => {
                unnamed = *named_none;
                match std::task::ready!(incoming.poll_message_flagged(cx)) {
                    Some(Ok(wire)) => wire,
                    Some(Err(status)) => return Poll::Ready(Some(Err(status))),
                    None => return Poll::Ready(None),
                }
            }
        };
        let decoded = match self.codec.as_deref_mut() {
            _ if compressed && unnamed => Err(crate::compression::unnamed_encoding()),
            Some(Codec {
                decoding: Some(decoding),
                last_compressed,
                ..
            }) => {
                *last_compressed = compressed;
                decoding.decode(message, compressed)
            }
            _ if compressed => Err(crate::compression::encoding_refused(
                "Content is compressed, which isn't supported: this side accepts no compression"
                    .to_owned(),
                sockrpc_protocol::EncodingSet::EMPTY,
            )),
            _ => Ok(message),
        };
        if let Err(status) = &decoded {
            self.refuse(status);
        }
        Poll::Ready(Some(decoded))
    }

    /// Tells the stream this body reads (through the layers that wrapped it,
    /// [`Body::wrap`]) that the reader refused the last message it gave, and ends the call
    /// with `status` on this side: [`Incoming::refused`]. What decodes a message after the
    /// body gave it ([`Streaming`](crate::Streaming)'s codec) calls this when that fails; the
    /// body's own refusals (over its limit, not decompressible) call it themselves. Nothing
    /// for a body that is not a stream received.
    pub fn refuse(&mut self, status: &Status) {
        if let Kind::Incoming(incoming, _) = &mut self.kind {
            incoming.refused(status);
        }
    }

    /// The next message as it arrived, with whether it arrived compressed (its MESSAGE's
    /// `FLAG_COMPRESSED`), not yet decoded: what an [`Incoming`] made by [`wrap`](Body::wrap)
    /// reads from the body it wraps. A body set to decode its messages gives them decoded, none
    /// flagged, as [`poll_message`](Body::poll_message) does.
    pub fn poll_message_flagged(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<(Bytes, bool), Status>>> {
        let decodes = self.codec.as_ref().is_some_and(|c| c.decoding.is_some());
        let plain = |next: Option<Result<Bytes, Status>>| next.map(|m| m.map(|m| (m, false)));
        match &mut self.kind {
            // A message its sender named no encoding for is refused here too, as a unary one
            // is wherever it is read (`once_received`).
            _ if decodes => self.poll_message(cx).map(plain),
            Kind::Incoming(_, true) => self.poll_message(cx).map(plain),
            Kind::Incoming(incoming, false) => incoming.poll_message_flagged(cx),
            Kind::OnceCompressed(_) => match std::mem::replace(&mut self.kind, Kind::Empty) {
                Kind::OnceCompressed(message) => Poll::Ready(Some(Ok((message, true)))),
                _ => Poll::Ready(None),
            },
            _ => self.poll_message(cx).map(plain),
        }
    }

    /// Whether the last message read from this body arrived compressed (its MESSAGE carried
    /// `FLAG_COMPRESSED`): what gRPC's interop cases check of each message. Always `false` on
    /// a side that accepts no compression (a compressed message is refused there).
    pub fn last_message_compressed(&self) -> bool {
        self.codec.as_ref().is_some_and(|c| c.last_compressed)
    }

    /// Trailing metadata that arrived at the end of an incoming stream.
    pub fn trailers(&self) -> Option<&MetadataMap> {
        match &self.kind {
            Kind::Incoming(incoming, _) => incoming.trailers(),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A compressed message goes out as it is only from a body that does not decode (a layer
    /// forwarding what it got on the wire); a body that decodes what it holds (an answer this
    /// side received, passed on) is read first, as before it could be sent raw at all.
    #[test]
    fn only_a_body_that_does_not_decode_sends_its_compressed_message_as_it_is() {
        let wire = Bytes::from_static(b"\x1f\x8b compressed");
        let forwarded = Body::once_wire(wire.clone(), true).into_once_wire();
        assert_eq!(forwarded.ok(), Some((wire.clone(), true)));
        let mut received = Body::once_wire(wire, true);
        received.set_decoding(Decoding::bounded(1024, Side::Client));
        assert!(received.into_once_wire().is_err(), "sent raw");
    }
}
