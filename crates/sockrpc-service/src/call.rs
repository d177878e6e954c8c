//! `Call`: what a tower service sees on either side, a method path and an encoded request.

use crate::{Body, BoxError, Idempotency};
use sockrpc_protocol::{MethodPath, Request, Response, Status};
use sockrpc_transport::tls::{pki_types::CertificateDer, TlsPeer};
use sockrpc_transport::{Replay, TransportKind};
use std::{future::Future, pin::Pin, sync::Arc};
use tower_service::Service;

/// A boxed, sendable future; the future type of generated servers and routes.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// One call in the service layer: the method path and the request with its messages still
/// encoded. The client `Channel` takes these, and a server's router dispatches them, so the same
/// tower middleware wraps either side.
#[derive(Debug)]
pub struct Call {
    path: MethodPath,
    request: Request<Body>,
    streaming_response: bool,
    idempotency: Idempotency,
    outcome_counter: Option<std::num::NonZeroU32>,
    replay: Option<Replay>,
    call_id: Option<u32>,
}

/// The `DEADLINE_EXCEEDED` of a call at `path` whose deadline passed while it waited (`waited`:
/// what for), before anything ran it: one message for every queue that holds calls.
pub fn deadline_passed(path: &str, waited: &str) -> Status {
    Status::deadline_exceeded(format!(
        "{path}: the deadline passed while the call waited {waited}"
    ))
}

impl Call {
    /// A call of `path` with `request`, answered with one message.
    pub fn new(path: MethodPath, request: Request<Body>) -> Call {
        Call {
            path,
            request,
            streaming_response: false,
            idempotency: Idempotency::Unknown,
            outcome_counter: None,
            replay: None,
            call_id: None,
        }
    }

    /// A call a server transport received (the router answers a re-issue from the reply
    /// cache once the call has passed every layer in front of it). The transport already put
    /// the connection's [`ConnInfo`](sockrpc_protocol::ConnInfo) in the request's own field:
    /// nothing is allocated for it here.
    pub fn from_incoming(incoming: sockrpc_transport::IncomingCall) -> Call {
        let sockrpc_transport::IncomingCall {
            path,
            request,
            transport: _,
            replay,
            call_id,
        } = incoming;
        // A unary request's one message keeps its MESSAGE's COMPRESSED flag; it, or a streamed
        // request's message, is refused `INTERNAL` when read if flagged compressed and its OPEN
        // named no encoding.
        let request = Body::received(request);
        Call {
            path,
            request,
            streaming_response: false,
            idempotency: Idempotency::Unknown,
            outcome_counter: None,
            replay,
            call_id: Some(call_id),
        }
    }

    /// On a server, for a call that came over TLS: the client as the handshake established it
    /// (its verified certificate chain, the SNI name it asked for), from the request's
    /// `ConnInfo`. One `Arc` per connection; cloning it costs a reference count.
    pub fn tls_peer(&self) -> Option<&Arc<TlsPeer>> {
        self.request.conn_info()?.tls.as_ref()
    }

    /// On a server: the client's verified certificate chain, leaf first; empty when the call
    /// did not come over TLS or the client presented no certificate.
    pub fn peer_certificates(&self) -> &[CertificateDer<'static>] {
        self.tls_peer().map_or(&[], |peer| peer.certificates())
    }

    /// On a server: the call's id on its connection (or, over UDP, its datagram call id), the
    /// same the client's transport records in its span as
    /// [`CALL_ID_FIELD`](sockrpc_transport::CALL_ID_FIELD).
    pub fn call_id(&self) -> Option<u32> {
        self.call_id
    }

    /// On a server: the kind of socket the call came in on.
    pub fn transport(&self) -> Option<TransportKind> {
        self.request.conn_info().map(|conn| conn.transport)
    }

    /// On a client: how safe it is to run this call's method more than once, as the `.proto`
    /// says (generated clients set it). Retry and hedging layers read it.
    pub fn idempotency(&self) -> Idempotency {
        self.idempotency
    }

    /// Sets the method's idempotency level.
    pub fn with_idempotency(mut self, idempotency: Idempotency) -> Call {
        self.idempotency = idempotency;
        self
    }

    /// On a client: the retry throttle (by its id) that a layer above counts how this call ends
    /// on (gRFC A6 counts every call's success once, whatever its method). A retry or hedging
    /// layer below with the same throttle leaves the call's success to that layer.
    pub fn outcome_counter(&self) -> Option<std::num::NonZeroU32> {
        self.outcome_counter
    }

    /// Notes that a layer counts how this call ends on the retry throttle `id`
    /// ([`outcome_counter`](Call::outcome_counter)).
    pub fn set_outcome_counter(&mut self, id: std::num::NonZeroU32) {
        self.outcome_counter = Some(id);
    }

    /// A copy of this call to send again, when its request is one message (unary and
    /// server-streaming calls): the message is shared, not copied; metadata and extensions are
    /// cloned. `None` for a streamed request, which cannot be replayed.
    pub fn try_clone(&self) -> Option<Call> {
        let body = self.request.get_ref().try_clone()?;
        // The copy keeps the deadline the call began with (or the start it noted): a retry
        // never extends it.
        let mut request =
            Request::from_parts(self.request.metadata().clone(), body, self.request.timing());
        request.set_shared_conn_info(self.request.shared_conn_info().cloned());
        *request.extensions_mut() = self.request.extensions().clone();
        // What the OPEN says about compression travels with every copy.
        request.set_encoding(self.request.encoding());
        request.set_message_compressed(self.request.message_compressed());
        if let Some(wait) = self.request.wait_for_ready() {
            request.set_wait_for_ready(wait);
        }
        Some(Call {
            path: self.path.clone(),
            request,
            streaming_response: self.streaming_response,
            idempotency: self.idempotency,
            outcome_counter: self.outcome_counter,
            replay: self.replay.clone(),
            call_id: self.call_id,
        })
    }

    /// On a server: set when the call re-issues, over TCP, a UDP call whose answer did not fit
    /// a datagram (a protocol field of the OPEN frame, never metadata).
    pub fn replay(&self) -> Option<&Replay> {
        self.replay.as_ref()
    }

    /// Takes the re-issue mark off (the router does, to answer from the cache).
    pub fn take_replay(&mut self) -> Option<Replay> {
        self.replay.take()
    }

    /// A call whose answer is a stream (server streaming or bidirectional): the response is
    /// returned as soon as its head arrives, with the messages to follow in its body.
    pub fn with_streaming_response(mut self) -> Call {
        self.streaming_response = true;
        self
    }

    /// Whether the answer is a stream.
    pub fn streaming_response(&self) -> bool {
        self.streaming_response
    }

    /// `/package.Service/Method`.
    pub fn path(&self) -> &str {
        self.path.as_str()
    }

    /// The path, as its type.
    pub fn method_path(&self) -> &MethodPath {
        &self.path
    }

    /// `package.Service`.
    pub fn service(&self) -> &str {
        self.path.service()
    }

    /// `Method`.
    pub fn method(&self) -> &str {
        self.path.method()
    }

    /// `Method` as bytes (generated servers match on these: no UTF-8 check per call).
    pub fn method_bytes(&self) -> &[u8] {
        self.path.method_bytes()
    }

    /// The request.
    pub fn request(&self) -> &Request<Body> {
        &self.request
    }

    /// The request, to change (metadata, timeout).
    pub fn request_mut(&mut self) -> &mut Request<Body> {
        &mut self.request
    }

    /// Before a call that waited (for room under a limit, for a layer to be ready) goes on:
    /// gives it what remains of `deadline` as its timeout, so what runs it reads the deadline
    /// the transport keeps; or, if nothing remains, the `DEADLINE_EXCEEDED` it ends with
    /// instead, unsent (`waited`: what for, for the message). A call without a deadline is
    /// left alone, with no clock read.
    pub fn after_wait(
        &mut self,
        deadline: Option<tokio::time::Instant>,
        waited: &str,
    ) -> Result<(), Status> {
        let Some(deadline) = deadline else {
            return Ok(());
        };
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if remaining.is_zero() {
            return Err(deadline_passed(self.path(), waited));
        }
        self.request.set_timeout(remaining);
        // On a client, the transport counts from the deadline itself, not from the send.
        self.request.set_deadline(deadline);
        Ok(())
    }

    /// Splits into path and request.
    pub fn into_parts(self) -> (MethodPath, Request<Body>) {
        (self.path, self.request)
    }
}

/// A tower service over [`Call`]s: a `Channel`, a `Router`, or either wrapped in middleware.
pub trait RpcService: Service<Call, Response = Response<Body>, Error = Status> {}

impl<T> RpcService for T where T: Service<Call, Response = Response<Body>, Error = Status> {}

/// What a [`Client`](crate::Client) (and so a generated client) can call: a service over
/// [`Call`]s answering `Response<Body>`, whose error is a [`Status`] or anything else that
/// converts into a [`BoxError`] — so tower's `TimeoutLayer` (which fails with `Elapsed`) or
/// `LoadShedLayer` can wrap a `Channel` under a generated client. The error becomes a status
/// through [`status_from_error`](crate::status_from_error).
pub trait ClientService:
    Service<Call, Response = Response<Body>, Error: Into<BoxError> + 'static>
{
}

impl<T> ClientService for T
where
    T: Service<Call, Response = Response<Body>>,
    T::Error: Into<BoxError> + 'static,
{
}

/// The future of a mounted service's call: boxed, so a router can hold services of any type.
pub type CallFuture = BoxFuture<Result<Response<Body>, Status>>;

/// A service a router mounts and a connection runs: an [`RpcService`] whose future is a
/// [`CallFuture`]. Generated servers are; any other service can be, by boxing its future.
pub trait RouteService:
    Service<Call, Response = Response<Body>, Error = Status, Future = CallFuture>
{
}

impl<T> RouteService for T where
    T: Service<Call, Response = Response<Body>, Error = Status, Future = CallFuture>
{
}

/// A service that can be mounted in a router under its fully qualified name.
pub trait NamedService {
    /// `package.Service`, as in the `.proto` file.
    const NAME: &'static str;

    /// Full paths of the methods marked `option idempotency_level = NO_SIDE_EFFECTS` or
    /// `IDEMPOTENT`: they may run more than once, so the UDP path skips its at-most-once cache
    /// for them.
    const IDEMPOTENT_METHODS: &'static [&'static str] = &[];
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sockrpc_protocol::{CompressionEncoding, EncodingFields, EncodingSet};

    #[test]
    fn a_copy_keeps_what_the_open_says_about_compression() {
        let fields = EncodingFields::new(
            EncodingSet::EMPTY.with(CompressionEncoding::Zstd),
            Some(CompressionEncoding::Gzip),
        );
        let mut request = Request::new(Body::once_wire(Bytes::from_static(b"z"), true));
        request.set_encoding(Some(fields));
        request.set_message_compressed(true);
        let call = Call::new(MethodPath::from_static("/p.S/M"), request);
        let copy = call.try_clone().expect("one message");
        assert_eq!(copy.request().encoding(), Some(fields));
        assert!(copy.request().message_compressed());
        assert!(copy.request().get_ref().is_once());
        // Not set: the copy leaves it to the channel too.
        assert_eq!(copy.request().wait_for_ready(), None);
    }

    #[test]
    fn a_copy_keeps_the_wait_for_ready_choice() {
        for wait in [true, false] {
            let mut request = Request::new(Body::once(Bytes::from_static(b"r")));
            request.set_wait_for_ready(wait);
            let call = Call::new(MethodPath::from_static("/p.S/M"), request);
            let copy = call.try_clone().expect("one message");
            assert_eq!(copy.request().wait_for_ready(), Some(wait));
        }
    }
}
