//! `Request` and `Response`: a message with the metadata that travels beside it.

use crate::request_wire::Wire;
use crate::{ConnInfo, EncodingFields, Extensions, MetadataMap, Timing, TransportKind};
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tokio::time::Instant;

/// The longest timeout a request carries: what gRPC's `grpc-timeout` can say at most
/// (99,999,999 hours, about 11,400 years). A longer one is taken as this, so that "now plus the
/// timeout" is always a time the clock can hold (`Instant` + `Duration::MAX` panics).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(99_999_999 * 3600);

/// A call's request: the message, its metadata, and how long the caller will wait; on a server
/// also the connection it came in on; and typed [`Extensions`] that middleware hands inward
/// (never sent).
#[derive(Debug, Clone, Default)]
pub struct Request<T> {
    metadata: MetadataMap,
    message: T,
    /// The timeout and, on a client, the instant the call gives up, once fixed
    /// ([`Request::fix_deadline`]): every layer below counts from it, and the time left when
    /// the request is sent is what goes on the wire. Packed (`request_timing.rs`): 20 bytes
    /// where `Option<Duration>` and `Option<Instant>` take 32.
    timing: Timing,
    /// Shared, not inline: a server's connection hands every call the same one (a reference
    /// count, no allocation), and a request that moves through the client's layers is 72 bytes
    /// smaller for it (each move a shorter copy).
    conn: Option<Arc<ConnInfo>>,
    extensions: Extensions,
    wire: Wire,
}

impl<T> Request<T> {
    /// A request with no metadata and no timeout.
    pub fn new(message: T) -> Request<T> {
        Request {
            metadata: MetadataMap::new(),
            message,
            timing: Timing::default(),
            conn: None,
            extensions: Extensions::new(),
            wire: Wire::default(),
        }
    }

    /// The message.
    pub fn get_ref(&self) -> &T {
        &self.message
    }

    /// The message, to change.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.message
    }

    /// The message, dropping the rest.
    pub fn into_inner(self) -> T {
        self.message
    }

    /// The request metadata.
    pub fn metadata(&self) -> &MetadataMap {
        &self.metadata
    }

    /// The request metadata, to change.
    pub fn metadata_mut(&mut self) -> &mut MetadataMap {
        &mut self.metadata
    }

    /// Sets how long the caller waits for the answer. The client sends it as a relative duration
    /// (no clock skew between hosts) and fails the call with `DeadlineExceeded` when it passes;
    /// the server cancels the handler at the same moment. A timeout past [`MAX_TIMEOUT`]
    /// (`Duration::MAX`, say, for "no hurry") is taken as `MAX_TIMEOUT`.
    ///
    /// The timeout counts from when the call starts, not from when it is sent: a generated
    /// client (`Client`'s methods) fixes the deadline ([`fix_deadline`](Request::fix_deadline))
    /// on entry, before it encodes the request, so encoding, waiting for a connection or for
    /// room, and retries all come out of it, and the server is told the time left when the
    /// request goes out. A caller that encodes on its own (a `Call` built by hand, the
    /// transport's `ClientConnection`) calls `fix_deadline` before encoding for the same;
    /// without it the timeout counts from when the channel or transport takes the call.
    ///
    /// Once the deadline is fixed, a timeout set (by an interceptor, a tower layer, a service
    /// config) can only bring it closer: the deadline becomes the sooner of the fixed one and
    /// now plus `timeout` (one clock read), so nothing below the caller runs a call past the
    /// deadline its caller began it with.
    pub fn set_timeout(&mut self, timeout: Duration) {
        let timeout = timeout.min(MAX_TIMEOUT);
        self.timing.set_timeout(Some(timeout));
        if let Some(fixed) = self.timing.deadline() {
            self.timing
                .set_deadline(fixed.min(Instant::now() + timeout));
        }
    }

    /// On a client: the instant the call gives up, once fixed (by
    /// [`fix_deadline`](Request::fix_deadline) or [`set_deadline`](Request::set_deadline));
    /// `None` before, and always on a server (read [`timeout`](Request::timeout) there).
    pub fn deadline(&self) -> Option<Instant> {
        self.timing.deadline()
    }

    /// Fixes the call's deadline at `deadline`, sooner or later than one fixed before: for a
    /// layer that waited, or a retry, to hand on the deadline the call began with (the
    /// library's layers never hand on a later one). What [`timeout`](Request::timeout) says
    /// is left as it was; the deadline is what counts.
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.timing.set_deadline(deadline);
    }

    /// Fixes the deadline, if a timeout was set and no deadline was fixed yet, at now plus the
    /// timeout (one clock read, which the transport would otherwise make when it sends), and
    /// returns it. A request without a timeout costs one check.
    ///
    /// Counted from the call's start when one was noted ([`start_call`](Request::start_call)),
    /// with no clock read.
    pub fn fix_deadline(&mut self) -> Option<Instant> {
        if let Some(fixed) = self.timing.deadline() {
            return Some(fixed);
        }
        let timeout = self.timing.timeout()?;
        let from = self.timing.started().unwrap_or_else(Instant::now);
        let deadline = from + timeout;
        self.timing.set_deadline(deadline);
        Some(deadline)
    }

    /// What a generated client's method does on entry, before it encodes the request: fixes
    /// the deadline from the timeout ([`fix_deadline`](Request::fix_deadline)); or, with no
    /// timeout set, notes when the call started (one clock read) if a timeout may still come
    /// below it — a `grpc-timeout` metadata entry, or `default_timeout` (a channel with a
    /// default timeout, `Endpoint::timeout`, may take the call) — so that it too counts from
    /// here, encoding and the layers between included. A request with none of them costs a
    /// few checks and no clock read.
    pub fn start_call(&mut self, default_timeout: bool) -> Option<Instant> {
        let deadline = self.fix_deadline();
        if deadline.is_none()
            && (default_timeout
                || (!self.metadata.is_empty()
                    && self.metadata.contains_key(crate::GRPC_TIMEOUT_KEY)))
        {
            self.timing.set_started(Instant::now());
        }
        deadline
    }

    /// On a client, before the deadline is fixed: when the call started, if its method noted it
    /// ([`start_call`](Request::start_call)). A timeout the call gets later (a `grpc-timeout`
    /// entry, the channel's default, a layer's [`set_timeout`](Request::set_timeout)) counts
    /// from it.
    pub fn started(&self) -> Option<Instant> {
        self.timing.started()
    }

    /// Fixes the deadline at `deadline` and sets the timeout to what is left of it at `now`:
    /// what a layer that sends a call again (a retry, a hedge, a balanced channel's next
    /// endpoint) hands the layers below, with the one clock read it makes anyway. Unlike
    /// [`set_timeout`](Request::set_timeout) on a request whose deadline is fixed, it reads no
    /// clock itself: the deadline is already the answer.
    pub fn hand_on_deadline(&mut self, deadline: Instant, now: Instant) {
        let left = deadline.saturating_duration_since(now);
        self.timing.set_timeout(Some(left.min(MAX_TIMEOUT)));
        self.timing.set_deadline(deadline);
    }

    /// [`resolve_timeout`](Request::resolve_timeout), then [`fix_deadline`](Request::fix_deadline):
    /// the deadline as a client layer that times the whole call must read it.
    pub fn resolve_deadline(&mut self) -> Option<Instant> {
        if self.timing.deadline().is_none() {
            self.resolve_timeout();
        }
        self.fix_deadline()
    }

    /// The timeout and deadline (or noted start) together, as [`into_parts`](Request::into_parts)
    /// gives them: for a copy of the request that times out with it.
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// The timeout: on the client, what was set; on the server, what remained when the call arrived.
    pub fn timeout(&self) -> Option<Duration> {
        self.timing.timeout()
    }

    /// The call's timeout as a client layer that times the whole call must read it: the one
    /// set, else the deadline a valid `grpc-timeout` metadata entry names, which is moved into
    /// the timeout (and out of the metadata) as [`set_timeout`](Request::set_timeout) would
    /// have put it. An entry that is not a gRPC timeout is left in place and names no deadline,
    /// as the client channel treats it. A request with a timeout, or no metadata, costs one
    /// check.
    pub fn resolve_timeout(&mut self) -> Option<Duration> {
        if self.timing.timeout().is_none() && !self.metadata.is_empty() {
            self.timing
                .set_timeout(crate::take_grpc_timeout(&mut self.metadata));
        }
        self.timing.timeout()
    }

    /// The peer's address, on the server, where the transport has one.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.conn.as_ref().and_then(|conn| conn.peer)
    }

    /// Our own address on the call's connection, on the server, where the transport has one
    /// (tonic's `local_addr`; also in [`conn_info`](Request::conn_info)).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.conn.as_ref().and_then(|conn| conn.local)
    }

    /// On a server over TLS: the client's verified certificate chain, leaf first (tonic's
    /// `peer_certs`, borrowed here rather than an `Arc<Vec<_>>`); `None` without TLS or when
    /// the client sent no certificate.
    pub fn peer_certs(&self) -> Option<&[rustls_pki_types::CertificateDer<'static>]> {
        let tls = self.conn.as_ref()?.tls.as_ref()?;
        let certs = tls.certificates();
        (!certs.is_empty()).then_some(certs)
    }

    /// Sets the peer's address, keeping the rest of the connection info (a request without any
    /// gets [`TransportKind::Other`]).
    pub fn set_remote_addr(&mut self, addr: Option<SocketAddr>) {
        match &mut self.conn {
            Some(conn) => Arc::make_mut(conn).peer = addr,
            None => self.conn = Some(Arc::new(ConnInfo::new(TransportKind::Other, addr, None))),
        }
    }

    /// On a server: the connection the call came in on (socket kind, peer and local address).
    pub fn conn_info(&self) -> Option<&ConnInfo> {
        self.conn.as_deref()
    }

    /// The connection info as shared (see [`set_shared_conn_info`](Request::set_shared_conn_info)),
    /// to hand to a copy of this request without an allocation.
    pub fn shared_conn_info(&self) -> Option<&Arc<ConnInfo>> {
        self.conn.as_ref()
    }

    /// Sets the connection info.
    pub fn set_conn_info(&mut self, conn: Option<ConnInfo>) {
        self.conn = conn.map(Arc::new);
    }

    /// Sets connection info shared with other requests: what a server's transport does, one
    /// `Arc` per connection, so a call costs a reference count rather than an allocation.
    pub fn set_shared_conn_info(&mut self, conn: Option<Arc<ConnInfo>>) {
        self.conn = conn;
    }

    /// Typed values middleware attached to this request (never sent on the wire).
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// Typed values attached to this request, to change.
    pub fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }

    /// The encoding fields of the call's OPEN: on a server, what the client accepts and sends
    /// with (`None`: the client sent none, so it is never sent compressed messages); on a
    /// client, what its OPEN will carry.
    pub fn encoding(&self) -> Option<EncodingFields> {
        self.wire.encoding()
    }

    /// Sets the encoding fields the OPEN carries (a transport or the compression layer does).
    pub fn set_encoding(&mut self, encoding: Option<EncodingFields>) {
        self.wire.set_encoding(encoding);
    }

    /// For a request of one message still in its wire form: whether it is compressed (its
    /// MESSAGE carries `FLAG_COMPRESSED`).
    pub fn message_compressed(&self) -> bool {
        self.wire.compressed()
    }

    /// Marks the one message as compressed (or not).
    pub fn set_message_compressed(&mut self, compressed: bool) {
        self.wire.set_compressed(compressed);
    }

    /// On a client: whether the call waits for a connection to come up (gRPC's wait-for-ready)
    /// rather than failing fast. `None` (the default) takes the channel's choice,
    /// `Endpoint::wait_for_ready`, which is off unless set.
    ///
    /// A fail-fast call that finds no connection waits only for the outcome of the attempt under
    /// way (or of the next, when it is due within the first backoff's wait), within its deadline
    /// and the connect timeout, and fails `UNAVAILABLE` with the last attempt's error; in a
    /// longer backoff it fails at once. A wait-for-ready call waits across failed attempts, up
    /// to its deadline (then `DEADLINE_EXCEEDED`, naming the last attempt's error), or without
    /// a deadline until a connection comes up.
    pub fn wait_for_ready(&self) -> Option<bool> {
        self.wire.wait_for_ready()
    }

    /// Sets whether the call waits for a connection (see [`wait_for_ready`](Request::wait_for_ready)).
    pub fn set_wait_for_ready(&mut self, wait: bool) {
        self.wire.set_wait_for_ready(wait);
    }

    /// Replaces the message, keeping metadata, timeout, connection info and extensions.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Request<U> {
        Request {
            metadata: self.metadata,
            message: f(self.message),
            timing: self.timing,
            conn: self.conn,
            extensions: self.extensions,
            wire: self.wire,
        }
    }

    /// Splits off the message, leaving a request of `()` with everything else (what an
    /// interceptor sees); [`map`](Request::map) puts a message back.
    pub fn split_message(self) -> (Request<()>, T) {
        let Request {
            metadata,
            message,
            timing,
            conn,
            extensions,
            wire,
        } = self;
        let head = Request {
            metadata,
            message: (),
            timing,
            conn,
            extensions,
            wire,
        };
        (head, message)
    }

    /// Builds a request from its parts (no connection info, no extensions, no wait-for-ready
    /// choice: the channel's applies). `timing` is the timeout, as `Option<Duration>` or
    /// `Duration`, or the [`Timing`] [`into_parts`](Request::into_parts) gave, which keeps a
    /// deadline fixed before: a request rebuilt from its parts (a tower-style layer's) times
    /// out when the caller's would have.
    pub fn from_parts(metadata: MetadataMap, message: T, timing: impl Into<Timing>) -> Request<T> {
        Request {
            metadata,
            message,
            timing: timing.into(),
            conn: None,
            extensions: Extensions::new(),
            wire: Wire::default(),
        }
    }

    /// Splits into metadata, message and timing (the timeout, [`Timing::timeout`], and the
    /// deadline fixed when the call started, [`Timing::deadline`], which
    /// [`from_parts`](Request::from_parts) keeps), dropping connection info, extensions and the
    /// wait-for-ready choice (keep them with [`map`](Request::map) or
    /// [`split_message`](Request::split_message)).
    pub fn into_parts(self) -> (MetadataMap, T, Timing) {
        (self.metadata, self.message, self.timing)
    }
}

/// Turns a message, or a request already built, into a [`Request`]; generated client methods take
/// `impl IntoRequest<Req>` so callers may pass either.
pub trait IntoRequest<T> {
    /// Wraps the message, or passes the request through.
    fn into_request(self) -> Request<T>;
}

impl<T> IntoRequest<T> for T {
    fn into_request(self) -> Request<T> {
        Request::new(self)
    }
}

impl<T> IntoRequest<T> for Request<T> {
    fn into_request(self) -> Request<T> {
        self
    }
}

/// Turns a stream of messages, or a request already built around one, into the request of a
/// client-streaming or bidirectional call; generated client methods take
/// `impl IntoStreamingRequest<Message = Req>`.
pub trait IntoStreamingRequest {
    /// The message type.
    type Message;
    /// The stream of messages.
    type Stream: futures_core::Stream<Item = Self::Message> + Send + 'static;

    /// Wraps the stream, or passes the request through.
    fn into_streaming_request(self) -> Request<Self::Stream>;
}

impl<T> IntoStreamingRequest for T
where
    T: futures_core::Stream + Send + 'static,
{
    type Message = T::Item;
    type Stream = T;

    fn into_streaming_request(self) -> Request<T> {
        Request::new(self)
    }
}

impl<T> IntoStreamingRequest for Request<T>
where
    T: futures_core::Stream + Send + 'static,
{
    type Message = T::Item;
    type Stream = T;

    fn into_streaming_request(self) -> Request<T> {
        self
    }
}

/// A call's successful answer: the message, the server's leading metadata, and its trailing
/// metadata (sent after the message, with the status).
///
/// Like tonic's, a response also carries [`Extensions`]: typed values that stay in the process
/// (a handler's note for a server-side tower layer, a client layer's for the caller), never
/// sent.
#[derive(Debug, Clone, Default)]
pub struct Response<T> {
    metadata: MetadataMap,
    message: T,
    trailers: MetadataMap,
    extensions: Extensions,
    wire: Wire,
}

impl<T> Response<T> {
    /// A response with no metadata.
    pub fn new(message: T) -> Response<T> {
        Response {
            metadata: MetadataMap::new(),
            message,
            trailers: MetadataMap::new(),
            extensions: Extensions::new(),
            wire: Wire::default(),
        }
    }

    /// The message.
    pub fn get_ref(&self) -> &T {
        &self.message
    }

    /// The message, to change.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.message
    }

    /// The message, dropping the rest.
    pub fn into_inner(self) -> T {
        self.message
    }

    /// Leading metadata.
    pub fn metadata(&self) -> &MetadataMap {
        &self.metadata
    }

    /// Leading metadata, to change.
    pub fn metadata_mut(&mut self) -> &mut MetadataMap {
        &mut self.metadata
    }

    /// Trailing metadata.
    pub fn trailers(&self) -> &MetadataMap {
        &self.trailers
    }

    /// Trailing metadata, to change.
    pub fn trailers_mut(&mut self) -> &mut MetadataMap {
        &mut self.trailers
    }

    /// Values that travel with the response inside this process, never on the wire (tonic's
    /// `Response::extensions`).
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// The extensions, to change.
    pub fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }

    /// Sends this answer's message plain even where the server compresses answers (tonic's
    /// `Response::disable_compression`): for a unary or client-streaming rpc's answer; a
    /// streaming answer's messages are compressed as usual (turn them off with the call's
    /// `CompressionSwitch`). Leaves [`CompressionDisabled`](crate::CompressionDisabled) in the
    /// extensions.
    pub fn disable_compression(&mut self) {
        self.extensions.insert(crate::CompressionDisabled);
    }

    /// The encoding fields of the answer's HEADERS: on a client, what the server accepts and
    /// sends with (`None`: it said nothing); on a server, what its HEADERS will carry.
    pub fn encoding(&self) -> Option<EncodingFields> {
        self.wire.encoding()
    }

    /// Sets the encoding fields the HEADERS carry.
    pub fn set_encoding(&mut self, encoding: Option<EncodingFields>) {
        self.wire.set_encoding(encoding);
    }

    /// For an answer of one message still in its wire form: whether it is compressed.
    pub fn message_compressed(&self) -> bool {
        self.wire.compressed()
    }

    /// Marks the one message as compressed (or not).
    pub fn set_message_compressed(&mut self, compressed: bool) {
        self.wire.set_compressed(compressed);
    }

    /// Replaces the message, keeping the metadata and the extensions.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Response<U> {
        Response {
            metadata: self.metadata,
            message: f(self.message),
            trailers: self.trailers,
            extensions: self.extensions,
            wire: self.wire,
        }
    }

    /// Builds a response from its parts (no extensions).
    pub fn from_parts(metadata: MetadataMap, message: T, trailers: MetadataMap) -> Response<T> {
        Response {
            metadata,
            message,
            trailers,
            extensions: Extensions::new(),
            wire: Wire::default(),
        }
    }

    /// Splits into leading metadata, message and trailing metadata, dropping the extensions.
    pub fn into_parts(self) -> (MetadataMap, T, MetadataMap) {
        (self.metadata, self.message, self.trailers)
    }
}

#[cfg(test)]
#[path = "request_deadline_tests.rs"]
mod deadline_tests;

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
