//! `Streaming<T>`: a stream of decoded messages, as generated code hands it out.

use crate::Body;
use bytes::Bytes;
use futures_core::Stream;
use sockrpc_protocol::{Codec, MetadataMap, RequestCharge, Status};
use std::{
    pin::Pin,
    task::{Context, Poll},
};

type Decoder<T> = Box<dyn Fn(Bytes) -> Result<T, Status> + Send + Sync>;

/// A boxed stream of messages or a status: the usual type for a server-streaming method's
/// associated `XStream` type (`type ListFeaturesStream = BoxStream<Feature>;`) when the handler
/// returns different stream types, or one that is awkward to name.
pub type BoxStream<T> = std::pin::Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Messages of a streaming call, decoded: a `Stream<Item = Result<T, Status>>`, with
/// [`message`](Streaming::message) for use without stream combinators. A call that fails ends the
/// stream with its status; a message this side refuses (over its limit, not decodable) ends it
/// with that error, held or not. A client's call is then cancelled at once; a server's goes on
/// until its handler answers (with that error, through `?`, the client gets
/// `RESOURCE_EXHAUSTED` or `INTERNAL`), the client's later messages dropped as they arrive.
/// A server's `Streaming` dropped before its end does the same for a handler that answers on
/// without reading: what was queued is freed and, with what comes later, credited to the client
/// as if read, so it holds no flow-control window from the connection's other calls. Trailers are available once it ended cleanly ([`trailers`](Streaming::trailers)
/// reads on to that end).
pub struct Streaming<T> {
    body: Body,
    decode: Decoder<T>,
    done: bool,
    /// On a server, a stream whose client names an encoding: its messages decompressed count
    /// against the connection's budget of running requests (see [`Streaming::charged`]).
    charge: Option<RequestCharge>,
}

impl<T> std::fmt::Debug for Streaming<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streaming")
            .field("body", &self.body)
            .finish()
    }
}

impl<T> Streaming<T> {
    /// Decodes `body` with `codec`.
    pub fn new<C>(body: Body, codec: C) -> Streaming<T>
    where
        C: Codec<T>,
    {
        Streaming {
            body,
            decode: Box::new(move |bytes| codec.decode(bytes)),
            done: false,
            charge: None,
        }
    }

    /// Counts what the compressed message read last decompressed to against `charge` (the
    /// `RequestCharge` the server's transport put in the extensions of a stream whose client
    /// names an encoding), until the next message is read or the call ends
    /// ([`RequestCharge::hold`]): its handler holds what it read, far more than the message's
    /// wire size the connection window counted (a gzip message of 1 KiB holds 1 MiB). Past the
    /// connection's budget the read fails `RESOURCE_EXHAUSTED`, and the stream ends
    /// (`tests/hostile/compressed_streams.rs`). A plain message counts nothing here.
    pub(crate) fn charged(mut self, charge: Option<RequestCharge>) -> Streaming<T> {
        self.charge = charge;
        self
    }

    /// The next message, `Ok(None)` at the end. After an error the stream has ended and
    /// gives `Ok(None)` (as a fused stream does): that is not the peer's clean end — on a
    /// server, not the client's half-close, so a handler that reads on past an error and
    /// answers from what it read answers a request it only saw in part.
    pub async fn message(&mut self) -> Result<Option<T>, Status> {
        std::future::poll_fn(|cx| self.poll_message(cx))
            .await
            .transpose()
    }

    /// Trailing metadata, as tonic's `Streaming::trailers`: reads (and drops, undecoded) the
    /// messages still to come, then hands out the trailers; `Ok(None)` if the stream had
    /// already ended with an error, `Err` if it ends with one now. For a look without
    /// waiting, [`trailers_now`](Self::trailers_now).
    pub async fn trailers(&mut self) -> Result<Option<MetadataMap>, Status> {
        while !self.done {
            match std::future::poll_fn(|cx| self.body.poll_message(cx)).await {
                Some(Ok(_)) => {}
                Some(Err(status)) => {
                    self.end();
                    return Err(status);
                }
                None => self.done = true,
            }
        }
        Ok(self.body.trailers().cloned())
    }

    /// Trailing metadata if the stream has already ended cleanly, without reading further.
    pub fn trailers_now(&self) -> Option<&MetadataMap> {
        self.body.trailers()
    }

    /// Whether the last message read arrived compressed (see
    /// [`Body::last_message_compressed`]): a sender may compress some messages of a stream and
    /// not others.
    pub fn last_message_compressed(&self) -> bool {
        self.body.last_message_compressed()
    }

    /// Ends the stream after an error: a message this side could not take (over its limit,
    /// not decodable) fails the call here, as a status from the peer does, so the call is
    /// cancelled now, as gRPC's clients cancel a stream whose message they refused, rather than
    /// when the caller drops the stream: until then the peer's handler would run on and keep
    /// its place under the server's limit of calls in flight. (A server's request body dropped
    /// tells the client nothing: its later messages are dropped and credited as they arrive,
    /// and the handler's answer ends the call.)
    fn end(&mut self) {
        self.done = true;
        self.body = Body::empty();
    }

    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, Status>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.body.poll_message(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                let counted = match &self.charge {
                    Some(charge) if self.body.last_message_compressed() => charge.hold(bytes.len()),
                    Some(charge) => charge.hold(0),
                    None => Ok(()),
                };
                let decoded = counted.and_then(|()| (self.decode)(bytes));
                if let Err(status) = &decoded {
                    self.body.refuse(status);
                    self.end();
                }
                Poll::Ready(Some(decoded))
            }
            Poll::Ready(Some(Err(status))) => {
                self.end();
                Poll::Ready(Some(Err(status)))
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> Stream for Streaming<T> {
    type Item = Result<T, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_message(cx)
    }
}

/// Encodes a stream of messages lazily, as the transport pulls them (so flow control reaches
/// all the way back to the producer).
pub(crate) struct EncodeStream<S, C> {
    stream: Pin<Box<S>>,
    codec: C,
}

// The stream is boxed and the codec is never pinned: moving the adapter is fine.
impl<S, C> Unpin for EncodeStream<S, C> {}

impl<S, C> EncodeStream<S, C> {
    pub(crate) fn new(stream: S, codec: C) -> EncodeStream<S, C> {
        EncodeStream {
            stream: Box::pin(stream),
            codec,
        }
    }
}

impl<S, C, T> Stream for EncodeStream<S, C>
where
    S: Stream<Item = T>,
    C: Codec<T>,
{
    type Item = Result<Bytes, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match this.stream.as_mut().poll_next(cx) {
            Poll::Ready(Some(item)) => Poll::Ready(Some(sockrpc_protocol::codec::encode_to_bytes(
                &this.codec,
                &item,
            ))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Like [`EncodeStream`] for streams of `Result<T, Status>` (a server's response stream): an
/// error item ends the call with that status.
pub(crate) struct EncodeResultStream<S, C> {
    stream: Pin<Box<S>>,
    codec: C,
}

impl<S, C> Unpin for EncodeResultStream<S, C> {}

impl<S, C> EncodeResultStream<S, C> {
    pub(crate) fn new(stream: S, codec: C) -> EncodeResultStream<S, C> {
        EncodeResultStream {
            stream: Box::pin(stream),
            codec,
        }
    }
}

impl<S, C, T> Stream for EncodeResultStream<S, C>
where
    S: Stream<Item = Result<T, Status>>,
    C: Codec<T>,
{
    type Item = Result<Bytes, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match this.stream.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(item))) => Poll::Ready(Some(
                sockrpc_protocol::codec::encode_to_bytes(&this.codec, &item),
            )),
            Poll::Ready(Some(Err(status))) => Poll::Ready(Some(Err(status))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}
