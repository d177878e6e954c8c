//! `Request` and `Response`: a message with the metadata that travels beside it.

use crate::MetadataMap;
use std::{net::SocketAddr, time::Duration};

/// A call's request: the message, its metadata, and how long the caller will wait.
#[derive(Debug, Clone, Default)]
pub struct Request<T> {
    metadata: MetadataMap,
    message: T,
    timeout: Option<Duration>,
    remote_addr: Option<SocketAddr>,
}

impl<T> Request<T> {
    /// A request with no metadata and no timeout.
    pub fn new(message: T) -> Request<T> {
        Request {
            metadata: MetadataMap::new(),
            message,
            timeout: None,
            remote_addr: None,
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
    /// the server cancels the handler at the same moment.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = Some(timeout);
    }

    /// The timeout: on the client, what was set; on the server, what remained when the call arrived.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The peer's address, on the server, where the transport has one.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote_addr
    }

    /// Sets the peer's address (the server does this).
    pub fn set_remote_addr(&mut self, addr: Option<SocketAddr>) {
        self.remote_addr = addr;
    }

    /// Replaces the message, keeping metadata, timeout and peer.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Request<U> {
        Request {
            metadata: self.metadata,
            message: f(self.message),
            timeout: self.timeout,
            remote_addr: self.remote_addr,
        }
    }

    /// Builds a request from its parts.
    pub fn from_parts(metadata: MetadataMap, message: T, timeout: Option<Duration>) -> Request<T> {
        Request {
            metadata,
            message,
            timeout,
            remote_addr: None,
        }
    }

    /// Splits into metadata, message and timeout.
    pub fn into_parts(self) -> (MetadataMap, T, Option<Duration>) {
        (self.metadata, self.message, self.timeout)
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
#[derive(Debug, Clone, Default)]
pub struct Response<T> {
    metadata: MetadataMap,
    message: T,
    trailers: MetadataMap,
}

impl<T> Response<T> {
    /// A response with no metadata.
    pub fn new(message: T) -> Response<T> {
        Response {
            metadata: MetadataMap::new(),
            message,
            trailers: MetadataMap::new(),
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

    /// Replaces the message, keeping the metadata.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Response<U> {
        Response {
            metadata: self.metadata,
            message: f(self.message),
            trailers: self.trailers,
        }
    }

    /// Builds a response from its parts.
    pub fn from_parts(metadata: MetadataMap, message: T, trailers: MetadataMap) -> Response<T> {
        Response {
            metadata,
            message,
            trailers,
        }
    }

    /// Splits into leading metadata, message and trailing metadata.
    pub fn into_parts(self) -> (MetadataMap, T, MetadataMap) {
        (self.metadata, self.message, self.trailers)
    }
}
