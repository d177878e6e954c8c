//! The client side: [`Channel`] (the transport as a tower service), [`Endpoint`], and
//! [`Client`], the typed helper generated stubs call.

mod channel;
mod default_timeout;
mod udp_side;

pub use channel::{Channel, ChannelFuture, EndpointExt};
pub use sockrpc_transport::backoff::Backoff;
pub use sockrpc_transport::endpoint::{Endpoint, IntoEndpoint, UdpPolicy};
pub use sockrpc_transport::pool::ConnectionStats;
/// The statuses of a closed channel's calls: new ones ([`closed_status`], `UNAVAILABLE`) and
/// those in flight at a [`Channel::close_now`] ([`closing_now_status`], `CANCELLED`).
pub use sockrpc_transport::pool::{closed_status, closing_now_status};

use crate::compression::{
    CompressionEncoding, CompressionSwitch, EncodingSet, MessageSettings, Side,
};
use crate::ready::to_status;
use crate::streaming::{EncodeStream, Streaming};
use crate::{Body, Call, ClientService, RpcMethod};
use futures_core::Stream;
use sockrpc_protocol::codec::{encode_to_bytes, Codec};
use sockrpc_protocol::{Request, Response, Status};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

/// Typed calls over any [`ClientService`] (a [`Channel`], or one wrapped in middleware, whose
/// errors may be tower's as well as [`Status`]): encodes requests, sends them, decodes answers.
/// Generated clients call one method per call shape, naming the method with its path and
/// idempotency level ([`RpcMethod`]; a bare path works too).
///
/// Compression ([`send_compressed`](Client::send_compressed)) goes only toward a server that
/// said it accepts the encoding: the client learns the server's accept set from the HEADERS of
/// its answers (shared by the clones of this client), so the first call goes plain, and from
/// the END of an error answer, which carries it too: after a server's refusal of the encoding
/// it stops using one the server does not read. An error without it (a method the server does
/// not implement, answered by its router) leaves compression as it was, and so does any
/// `grpc-accept-encoding` metadata: a handler writes that, so it is no protocol signal.
#[derive(Debug, Clone)]
pub struct Client<T> {
    inner: T,
    settings: MessageSettings,
    /// The server's accept set, as its last HEADERS (or an error's END) said (bits of
    /// [`EncodingSet`]).
    learned: Arc<AtomicU16>,
}

impl<T> Client<T> {
    /// Wraps a service.
    pub fn new(inner: T) -> Client<T> {
        Client {
            inner,
            settings: MessageSettings::default(),
            learned: Arc::default(),
        }
    }

    /// Compresses requests with `encoding` once the server has said it accepts it.
    #[must_use]
    pub fn send_compressed(mut self, encoding: CompressionEncoding) -> Self {
        self.settings = self.settings.send_compressed(encoding);
        self
    }

    /// Accepts answers compressed with `encoding` (and tells the server so in each OPEN).
    #[must_use]
    pub fn accept_compressed(mut self, encoding: CompressionEncoding) -> Self {
        self.settings = self.settings.accept_compressed(encoding);
        self
    }

    /// Requests shorter than `bytes` go uncompressed.
    #[must_use]
    pub fn compression_min_size(mut self, bytes: usize) -> Self {
        self.settings = self.settings.compression_min_size(bytes);
        self
    }

    /// The largest answer message accepted, counted after decompression.
    #[must_use]
    pub fn max_decoding_message_size(mut self, bytes: usize) -> Self {
        self.settings = self.settings.max_decoding_message_size(bytes);
        self
    }

    /// The largest request message sent, counted before compression.
    #[must_use]
    pub fn max_encoding_message_size(mut self, bytes: usize) -> Self {
        self.settings = self.settings.max_encoding_message_size(bytes);
        self
    }

    /// The compression and size settings in force.
    pub fn settings(&self) -> MessageSettings {
        self.settings
    }

    /// The encodings the server has said it accepts (empty until an answer said so).
    pub fn server_accepts(&self) -> EncodingSet {
        EncodingSet::from_bits(self.learned.load(Ordering::Relaxed))
    }

    /// Sets the OPEN's encoding fields and how the request's messages are encoded.
    fn outgoing(&self, request: &mut Request<Body>) {
        if self.settings.is_default() {
            return;
        }
        let send = self
            .settings
            .sends()
            .filter(|e| self.server_accepts().contains(*e));
        let switch = request.extensions().get::<CompressionSwitch>().cloned();
        let encoding = self.settings.encoding(send, switch);
        request.get_mut().set_encoding(encoding);
        request.set_encoding(self.settings.fields());
    }

    /// Learns the server's accept set from its HEADERS; sets how the answer is decoded.
    fn incoming(&self, response: &mut Response<Body>) {
        if let Some(fields) = response.encoding() {
            self.learned.store(fields.accept.bits(), Ordering::Relaxed);
        }
        // An answer (its one message, or each of a stream's) flagged compressed under no named
        // encoding: `INTERNAL`, as tonic's client answers, whether or not this client accepts
        // compression. A `Channel`'s answer is so marked already; this marks any other
        // service's (a body made with `Body::once_wire`, say).
        let fields = response.encoding();
        response.get_mut().refuse_unnamed_compression(fields);
        if !self.settings.is_default() {
            let decoding = self.settings.decoding(response.encoding(), Side::Client);
            response.get_mut().set_decoding(decoding);
            if self.settings.fields().is_some() {
                // Configured for compression: its encoding fields say what the answer is in.
                show_encoding(response, self.settings.accepted());
            }
        }
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

/// The metadata key under which a client configured for compression shows the encoding an
/// answer's messages are compressed with, as tonic's response header reads.
pub(crate) const ENCODING_KEY: &str = "grpc-encoding";

/// Shows, as tonic's `grpc-encoding` response header does, the encoding the server's HEADERS
/// say the answer's messages are compressed with (one `accepted` here): the entry is this
/// side's reading of the encoding fields, so one the handler wrote itself is dropped.
fn show_encoding(response: &mut Response<Body>, accepted: EncodingSet) {
    let encoding = response
        .encoding()
        .and_then(|fields| fields.send_encoding().ok().flatten())
        .filter(|encoding| accepted.contains(*encoding));
    let metadata = response.metadata_mut();
    metadata.remove(ENCODING_KEY);
    if let Some(encoding) = encoding {
        // A valid key and an ASCII value: this cannot fail, and nothing is lost if it did.
        let _ = metadata.insert_str(ENCODING_KEY, encoding.as_str());
    }
}

impl<T: ClientService> Client<T> {
    /// Sends `request` with this client's compression settings; learns from the answer.
    async fn exchange(
        &mut self,
        method: RpcMethod,
        request: Request<Body>,
        streaming_response: bool,
    ) -> Result<Response<Body>, Status> {
        let call = self.prepare(method, request, streaming_response);
        std::future::poll_fn(|cx| self.inner.poll_ready(cx))
            .await
            .map_err(to_status)?;
        let mut answer = self.inner.call(call).await.map_err(to_status);
        self.learn(&mut answer);
        answer
    }

    /// The call that sends `request`.
    fn prepare(
        &self,
        method: RpcMethod,
        mut request: Request<Body>,
        streaming_response: bool,
    ) -> Call {
        self.outgoing(&mut request);
        let mut call =
            Call::new(method.method_path(), request).with_idempotency(method.idempotency());
        if streaming_response {
            call = call.with_streaming_response();
        }
        call
    }

    /// What the answer to a request says of the server's encodings: learned, and the answer
    /// set to decode. In place: the answer is not moved in and out (a `Response<Body>` is 112
    /// bytes, copied twice a call).
    fn learn(&self, answer: &mut Result<Response<Body>, Status>) {
        match answer {
            Ok(response) => self.incoming(response),
            Err(status) => {
                // The server's encoding fields came with its error (a refusal of the encoding,
                // perhaps by a server behind the same channel that does not read it): what it
                // reads. Without them (a router's answer for a method it does not have, a failure
                // before any server answered) what was learned stands.
                if let Some(fields) = status.encoding() {
                    self.learned.store(fields.accept.bits(), Ordering::Relaxed);
                    // Learned here, and not passed on: a handler that returns this status as
                    // its own must not send another server's fields to its caller.
                    status.set_encoding(None);
                }
            }
        }
    }

    fn once<Req, C: Codec<Req>>(request: Request<Req>, codec: &C) -> Result<Request<Body>, Status> {
        let message = encode_to_bytes(codec, request.get_ref())?;
        // `map` keeps the request's extensions (what an interceptor or the caller attached).
        Ok(request.map(|_| Body::once(message)))
    }

    fn stream<S, Req, C>(request: Request<S>, codec: C) -> Request<Body>
    where
        S: Stream<Item = Req> + Send + 'static,
        C: Codec<Req>,
    {
        request.map(|stream| Body::from_stream(EncodeStream::new(stream, codec)))
    }

    async fn single<Resp, C: Codec<Resp>>(
        response: Response<Body>,
        codec: &C,
    ) -> Result<Response<Resp>, Status> {
        let mut response = response;
        let body = response.get_mut();
        // Decoded before the stream's end is read: a streamed answer that does not decode is
        // refused to the layers watching it (`Body::refuse`), which then record its code.
        let message = body
            .take_single_with(|message| codec.decode(message))
            .await?;
        // A streamed answer's trailers arrive at its end, inside the body.
        let late = body.trailers().cloned();
        let compressed = body.last_message_compressed();
        // `map` keeps what the answer's wire form said (its encoding fields).
        let mut response = response.map(|_| message);
        if let Some(late) = late {
            response.trailers_mut().extend(late);
        }
        response.set_message_compressed(compressed);
        Ok(response)
    }

    /// [`single`](Self::single) without a future, for the answer nearly every unary call
    /// gets: one message that arrived whole and needs no decompressing. Any other body comes
    /// back ([`Single::Later`]) for `single`.
    fn single_now<Resp, C: Codec<Resp>>(mut response: Response<Body>, codec: &C) -> Single<Resp> {
        if !response.get_ref().is_once() {
            return Single::Later(response);
        }
        let body = std::mem::take(response.get_mut());
        let compressed = body.last_message_compressed();
        match body.into_once() {
            Ok(message) => Single::Now(codec.decode(message).map(|message| {
                let mut response = response.map(|_| message);
                response.set_message_compressed(compressed);
                response
            })),
            Err(body) => {
                *response.get_mut() = body;
                Single::Later(response)
            }
        }
    }

    /// One request, one response.
    ///
    /// The request's timeout counts from here: the deadline is fixed before the request is
    /// encoded, so a slow encoding comes out of it, and the server is told what is left when
    /// the request goes out. A timeout given below (a `grpc-timeout` entry, the channel's
    /// default) counts from here too ([`Request::start_call`]). An answer that arrived in time
    /// is returned even if decoding it ends past the deadline (the server committed it; see
    /// `docs/ARCHITECTURE.md`).
    pub async fn unary<Req, Resp, C>(
        &mut self,
        mut request: Request<Req>,
        method: impl Into<RpcMethod>,
        codec: C,
    ) -> Result<Response<Resp>, Status>
    where
        C: Codec<Req> + Codec<Resp>,
    {
        request.start_call(default_timeout::default_timeouts());
        // `exchange`'s steps, inline: one future fewer to build and move on every call. The
        // message is encoded before the service is ready, so that one that does not encode
        // returns before `poll_ready` reserves anything (a place under the channel's
        // concurrency limit, kept for its next call: tonic's client makes the call whose body
        // fails, and the place is given back). Only its bytes wait; the call is built after
        // the wait, so the `Call` (208 bytes) is never kept in this future.
        let message = encode_to_bytes(&codec, request.get_ref())?;
        std::future::poll_fn(|cx| self.inner.poll_ready(cx))
            .await
            .map_err(to_status)?;
        // `map` keeps the request's extensions (what an interceptor or the caller attached).
        let request = request.map(|_| Body::once(message));
        let call = self.prepare(method.into(), request, false);
        let mut answer = self.inner.call(call).await.map_err(to_status);
        self.learn(&mut answer);
        let response = answer?;
        match Self::single_now(response, &codec) {
            Single::Now(decoded) => decoded,
            Single::Later(response) => Self::single(response, &codec).await,
        }
    }

    /// One request, a stream of responses (the deadline is fixed on entry, as for
    /// [`unary`](Client::unary), and covers the whole stream).
    pub async fn server_streaming<Req, Resp, C>(
        &mut self,
        mut request: Request<Req>,
        method: impl Into<RpcMethod>,
        codec: C,
    ) -> Result<Response<Streaming<Resp>>, Status>
    where
        C: Codec<Req> + Codec<Resp>,
    {
        request.start_call(default_timeout::default_timeouts());
        let request = Self::once(request, &codec)?;
        let response = self.exchange(method.into(), request, true).await?;
        Ok(response.map(|body| Streaming::new(body, codec)))
    }

    /// A stream of requests, one response (the deadline is fixed on entry).
    pub async fn client_streaming<S, Req, Resp, C>(
        &mut self,
        mut request: Request<S>,
        method: impl Into<RpcMethod>,
        codec: C,
    ) -> Result<Response<Resp>, Status>
    where
        S: Stream<Item = Req> + Send + 'static,
        C: Codec<Req> + Codec<Resp>,
    {
        request.start_call(default_timeout::default_timeouts());
        let request = Self::stream(request, codec.clone());
        let response = self.exchange(method.into(), request, false).await?;
        Self::single(response, &codec).await
    }

    /// A stream of requests, a stream of responses (the deadline is fixed on entry).
    pub async fn streaming<S, Req, Resp, C>(
        &mut self,
        mut request: Request<S>,
        method: impl Into<RpcMethod>,
        codec: C,
    ) -> Result<Response<Streaming<Resp>>, Status>
    where
        S: Stream<Item = Req> + Send + 'static,
        C: Codec<Req> + Codec<Resp>,
    {
        request.start_call(default_timeout::default_timeouts());
        let request = Self::stream(request, codec.clone());
        let response = self.exchange(method.into(), request, true).await?;
        Ok(response.map(|body| Streaming::new(body, codec)))
    }
}

/// A one-message answer decoded at once, or the answer to read on ([`Client::single_now`]).
enum Single<Resp> {
    Now(Result<Response<Resp>, Status>),
    Later(Response<Body>),
}
