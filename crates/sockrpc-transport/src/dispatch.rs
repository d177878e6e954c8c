//! `Dispatch`: how every server transport hands a call to the layer above and takes its answer
//! back.
//!
//! ```text
//!  TCP / Unix connection ──┐                               ┌──▶ service layer (router,
//!                          ├──▶ IncomingCall ──dispatch──▶ │     middleware, handlers)
//!  UDP server ─────────────┘                               └──◀ Result<Response<Body>, Status>
//! ```
//!
//! Why one shape: the TCP connection and the UDP server used to build the service layer's
//! `Call` each in its own way, and they drifted (one caught handler panics, the other did not;
//! one carried a re-issue mark in user metadata). Both now produce an [`IncomingCall`] and call
//! [`Dispatch::dispatch`]; the transport knows nothing of routing, and the service layer knows
//! nothing of frames or datagrams.

use crate::server::CallReceiver;
use crate::udp::ReplyCache;
use bytes::Bytes;
use sockrpc_protocol::{MethodPath, Request, Response, Status};
use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

/// The request's messages as a transport delivers them.
pub enum RequestBody {
    /// A unary request: exactly one message, already read whole.
    Once(Bytes),
    /// A streamed request: messages arrive as the client sends them, paced by flow control.
    Stream(CallReceiver),
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestBody::Once(message) => f.debug_tuple("Once").field(&message.len()).finish(),
            RequestBody::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// Which kind of socket a call came in on (defined beside [`ConnInfo`](sockrpc_protocol::ConnInfo)
/// in the protocol crate, since a request carries it).
pub use sockrpc_protocol::TransportKind;

/// A TCP re-issue of a UDP call whose answer did not fit a datagram: the protocol's OPEN
/// carries the UDP call's identity in a field of its own (never in user metadata), and the
/// service layer answers it from the reply cache after the call has passed its middleware.
#[derive(Clone)]
pub struct Replay {
    /// The UDP side's reply cache.
    pub cache: Arc<ReplyCache>,
    /// The UDP client's instance id.
    pub instance: u64,
    /// The UDP call's id.
    pub call_id: u32,
    /// The IP address of the connection's peer (`None` over a Unix socket): the cache answers
    /// only the address the UDP call came from, since the instance is plain text on the wire
    /// (over a Unix socket, a process on this host: calls made from a loopback address).
    pub peer: Option<std::net::IpAddr>,
}

impl fmt::Debug for Replay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replay")
            .field("instance", &self.instance)
            .field("call_id", &self.call_id)
            .field("peer", &self.peer)
            .finish()
    }
}

/// One call as a transport received it.
#[derive(Debug)]
pub struct IncomingCall {
    /// `/package.Service/Method`.
    pub path: MethodPath,
    /// Metadata, timeout, connection info (socket kind, peer and local address) and the
    /// request's messages.
    pub request: Request<RequestBody>,
    /// The socket kind it came in on.
    pub transport: TransportKind,
    /// Set when the call re-issues a truncated UDP call over TCP.
    pub replay: Option<Replay>,
    /// The call's id: on a connection, the id of its frames (unique among the connection's
    /// open calls); over UDP, the datagram's call id (unique per client instance). For logs and
    /// spans, so one call can be found on both sides.
    pub call_id: u32,
}

/// The name of the span field in which the transport records a client call's id, once the
/// call has one (when its OPEN is written): a tracing layer that declares this field on its
/// client span gets the id the server sees as its own call id.
pub const CALL_ID_FIELD: &str = "rpc.sockrpc.call_id";

/// Records `id` in the current span's [`CALL_ID_FIELD`], if the current span has that field
/// (a span without it, or no span, ignores it). Costs a thread-local lookup when a subscriber is
/// installed, nothing otherwise: it asks the subscriber for the current span and records on it
/// directly, where `Span::current()` would also take and release a reference to the span and
/// to the subscriber on every call.
pub(crate) fn note_call_id(id: u32) {
    tracing::dispatcher::get_default(|dispatch| {
        let Some((span, metadata)) = dispatch.current_span().into_inner() else {
            return;
        };
        let fields = metadata.fields();
        let Some(field) = fields.field(CALL_ID_FIELD) else {
            return;
        };
        // As i64: OpenTelemetry has no unsigned integers, and some bridges turn a u64 into text.
        let id = i64::from(id);
        let values = [(&field, Some(&id as &dyn tracing::Value))];
        dispatch.record(
            &span,
            &tracing::span::Record::new(&fields.value_set(&values)),
        );
    });
}

/// An answer's messages, as the transport sends them: a single message leaves in one write; a
/// stream is pulled message by message as the client's credit allows.
pub trait OutboundBody: Send + Sized + 'static {
    /// The single message, when the body is exactly one; otherwise the body back.
    fn into_once(self) -> Result<Bytes, Self>;

    /// The next message of a streamed body; `None` after the last.
    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Status>>>;

    /// Like [`into_once`](OutboundBody::into_once), with whether the message is compressed
    /// (sent with `FLAG_COMPRESSED`). By default nothing is.
    fn into_once_flagged(self) -> Result<(Bytes, bool), Self> {
        self.into_once().map(|message| (message, false))
    }

    /// Like [`poll_message`](OutboundBody::poll_message), with whether the message is
    /// compressed. By default nothing is.
    fn poll_message_flagged(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<(Bytes, bool), Status>>> {
        self.poll_message(cx)
            .map(|next| next.map(|message| message.map(|m| (m, false))))
    }
}

/// The future of a dispatched call: boxed, since the layer above holds services of any type.
pub type DispatchFuture<B> = Pin<Box<dyn Future<Output = Result<Response<B>, Status>> + Send>>;

/// The layer above a transport: takes calls, answers them.
///
/// A transport calls [`dispatch`](Dispatch::dispatch) on its own task and polls the future once
/// there; a unary call's future that is not ready moves to a task of its own, while a streaming
/// call (streamed request or answer) stays on the connection's task, polled at most once per pass
/// of it. A panic while dispatching or polling fails that call with `INTERNAL` and nothing else.
pub trait Dispatch: Clone + Send + Unpin + 'static {
    /// The answer's body.
    type Body: OutboundBody;

    /// Starts `call`.
    fn dispatch(&mut self, call: IncomingCall) -> DispatchFuture<Self::Body>;
}
