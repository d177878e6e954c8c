//! `Trace`: one `tracing` span per call, on either side, shaped after OpenTelemetry's RPC
//! semantic conventions.
//!
//! Why spans here rather than in the transport: the transport only ever had a debug span on
//! TCP server connections, UDP calls and clients had none, and none of it could join a trace
//! started in another process. A layer sees every call the same way on both sides — TCP, Unix
//! socket or UDP — and can carry the trace context in the call's metadata
//! ([`Propagate`]).
//!
//! The transport's own DEBUG span per server call (`rpc`, target `sockrpc_transport`) stays,
//! for its logs, but it opens before any layer sees the call, so it cannot be a child of this
//! span: this span is its child when no trace context came with the call, and belongs to the
//! caller's trace when one did, leaving `rpc` alone in a trace of its own. An OpenTelemetry
//! layer should therefore not export it: give that layer a filter of its own that leaves out
//! target `sockrpc_transport` (as `examples/middleware/stack.rs` does); the spans it exports then
//! parent on their closest ancestor it exports, and every call is one trace.
//!
//! Each span (level INFO, named `rpc.server` or `rpc.client` for `tracing` and
//! `package.Service/Method` for OpenTelemetry through `otel.name`) carries:
//!
//! | field | server | client |
//! |-------|--------|--------|
//! | `otel.kind` | `server` | `client` |
//! | `rpc.system` | `sockrpc` | `sockrpc` |
//! | `rpc.service`, `rpc.method` | from the path | from the path |
//! | `rpc.sockrpc.call_id` | the call's id on its connection (or UDP) | set by the transport on send |
//! | `network.transport` | `tcp`, `unix`, `udp` | from the endpoint |
//! | `network.peer.address`, `network.peer.port`, `network.type` | the caller | — |
//! | `server.address`, `server.port` | the address reached | the endpoint's ([`TraceLayer::for_endpoint`]) |
//! | `rpc.sockrpc.status_code` | the gRPC code's number | the same |
//! | `otel.status_code`, `error.type` | `ERROR`, the code's name on a server error | on any code but `OK` |
//! | `otel.status_description` | the status message of such an error (when not empty) | the same |
//!
//! The status code follows the pattern of gRPC's `rpc.grpc.status_code` under this system's
//! name, since sockrpc uses gRPC's codes. A streamed answer keeps its span open until its last
//! message, so the span covers the whole call; each streamed message is a DEBUG event
//! `rpc.message` with `rpc.message.type` (`SENT`/`RECEIVED`), `rpc.message.id` and
//! `rpc.message.uncompressed_size` (or `rpc.message.compressed_size` for a message received
//! compressed, which the layer sees before the body decodes it).
//!
//! A client's one-message answer that the caller then refuses (over its decoding limit, not
//! decodable, a second message) is recorded with the caller's code when it arrived streamed
//! (a client-streaming call's answer, or any compressed one), since the span follows the body;
//! a unary answer that arrived whole is recorded `OK`, as the `Metrics` layer records it: the
//! span ended when the layer's future completed, before `Client` decoded the answer. Carrying
//! the span along to the decoding costs about five allocations per call with trace and metrics
//! (measured in `tests/allocs.rs`), so it is not done.
//!
//! A server's one-message answer is recorded when the transport drops the call's future, after
//! writing the answer, not when the future completes: an answer the transport refused to send
//! (over its send limit: `RESOURCE_EXHAUSTED`; its metadata over the client's limit:
//! `INTERNAL`) is recorded with the code the client got, which the transport drops the future
//! with (`sockrpc_transport::ending`), not as the `OK` the handler answered.
//!
//! Cost: with the span disabled (no subscriber, or a level filter above INFO) a call pays a
//! callsite check and nothing else — no allocation, no clock read, no body wrapping.

mod body;
mod future;
mod layer;
mod propagate;

pub use future::ResponseFuture;
pub use layer::TraceLayer;
pub use propagate::{NoPropagation, Propagate};

use crate::watch::{is_streamed, watch};
use crate::Side;
use sockrpc_protocol::{Code, Response, Status};
use sockrpc_service::{status_from_error, Body, BoxError, Call, Endpoint};
use sockrpc_transport::TransportKind;
use std::{
    sync::Arc,
    task::{Context, Poll},
};
use tower_service::Service;
use tracing::{field::Empty, Span};

/// `rpc.system`: this framework's name, as OpenTelemetry's conventions allow for systems not in
/// their list.
pub const RPC_SYSTEM: &str = "sockrpc";

/// The server a client talks to, as its spans name it.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    address: String,
    port: Option<u16>,
    transport: Option<&'static str>,
}

impl Peer {
    fn from_endpoint(endpoint: &Endpoint) -> Peer {
        match &endpoint.unix_path {
            Some(path) => Peer {
                // A Linux abstract name as `ss` shows it: `@NAME`.
                address: match endpoint.unix_abstract_name() {
                    Some(name) => format!("@{}", String::from_utf8_lossy(name)),
                    None => path.display().to_string(),
                },
                port: None,
                transport: Some("unix"),
            },
            // With UDP enabled a call goes over UDP or TCP, decided per call below this layer.
            None => Peer {
                address: endpoint.host.clone(),
                port: Some(endpoint.port),
                transport: endpoint.udp.is_none().then_some("tcp"),
            },
        }
    }
}

/// A service that makes one span per call; see the [module docs](self) for its fields.
#[derive(Debug, Clone)]
pub struct Trace<S, P = NoPropagation> {
    inner: S,
    side: Side,
    peer: Option<Arc<Peer>>,
    propagate: P,
}

impl<S> Trace<S> {
    /// Wraps `inner`, on `side`, without trace propagation or a named server.
    pub fn new(inner: S, side: Side) -> Trace<S> {
        Trace {
            inner,
            side,
            peer: None,
            propagate: NoPropagation,
        }
    }
}

impl<S, P> Trace<S, P> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, to change.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, dropping this layer.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// The call's names, from one pass over its path: `package.Service/Method` (the span name
/// OpenTelemetry's conventions ask for), `package.Service` and `Method`.
fn names(call: &Call) -> (&str, &str, &str) {
    let path = call.path();
    let full = path.strip_prefix('/').unwrap_or(path);
    let (service, method) = full.rsplit_once('/').unwrap_or((full, ""));
    (full, service, method)
}

fn transport_name(kind: TransportKind) -> &'static str {
    match kind {
        TransportKind::Tcp => "tcp",
        TransportKind::Unix => "unix",
        TransportKind::Udp => "udp",
        TransportKind::Other => "pipe",
    }
}

fn server_span(call: &Call) -> Span {
    let (full, service, method) = names(call);
    let peer = call.request().remote_addr();
    let local = call.request().conn_info().and_then(|conn| conn.local);
    tracing::info_span!(
        "rpc.server",
        otel.name = full,
        otel.kind = "server",
        otel.status_code = Empty,
        otel.status_description = Empty,
        rpc.system = RPC_SYSTEM,
        rpc.service = service,
        rpc.method = method,
        rpc.sockrpc.call_id = call.call_id().map(i64::from),
        rpc.sockrpc.status_code = Empty,
        error.type = Empty,
        network.transport = call.transport().map(transport_name),
        network.type = peer.map(|addr| if addr.is_ipv4() { "ipv4" } else { "ipv6" }),
        network.peer.address = peer.map(|addr| tracing::field::display(addr.ip())),
        network.peer.port = peer.map(|addr| i64::from(addr.port())),
        server.address = local.map(|addr| tracing::field::display(addr.ip())),
        server.port = local.map(|addr| i64::from(addr.port())),
    )
}

fn client_span(call: &Call, peer: Option<&Peer>) -> Span {
    let (full, service, method) = names(call);
    tracing::info_span!(
        "rpc.client",
        otel.name = full,
        otel.kind = "client",
        otel.status_code = Empty,
        otel.status_description = Empty,
        rpc.system = RPC_SYSTEM,
        rpc.service = service,
        rpc.method = method,
        // Recorded by the transport (`sockrpc_transport::CALL_ID_FIELD`) once the call is sent.
        rpc.sockrpc.call_id = Empty,
        rpc.sockrpc.status_code = Empty,
        error.type = Empty,
        server.address = peer.map(|peer| peer.address.as_str()),
        server.port = peer.and_then(|peer| peer.port).map(i64::from),
        network.transport = peer.and_then(|peer| peer.transport),
    )
}

/// Records how the call ended on its span.
pub(crate) fn record_end(span: &Span, side: Side, code: Code) {
    record_status(span, side, code, "");
}

/// Records how the call ended on its span, with the status message of a call that failed: an
/// error span's `otel.status_description`, which `tracing-opentelemetry` makes the OpenTelemetry
/// status's description (an empty message records none).
pub(crate) fn record_status(span: &Span, side: Side, code: Code, message: &str) {
    if span.is_disabled() {
        return;
    }
    span.record("rpc.sockrpc.status_code", i64::from(code.as_u32()));
    if side.is_error(code) {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", code.as_str());
        if !message.is_empty() {
            span.record("otel.status_description", message);
        }
    }
}

impl<S, P> Service<Call> for Trace<S, P>
where
    S: Service<Call, Response = Response<Body>>,
    S::Error: Into<BoxError> + 'static,
    P: Propagate,
{
    type Response = Response<Body>;
    type Error = Status;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx).map_err(status_from_error)
    }

    fn call(&mut self, mut call: Call) -> Self::Future {
        let span = match self.side {
            Side::Server => server_span(&call),
            Side::Client => client_span(&call, self.peer.as_deref()),
        };
        if !span.is_disabled() {
            match self.side {
                Side::Server => self.propagate.extract(&span, call.request().metadata()),
                Side::Client => self
                    .propagate
                    .inject(&span, call.request_mut().metadata_mut()),
            }
            let request = call.request_mut().get_mut();
            if is_streamed(request) {
                // A client sends its request stream; a server receives it.
                let direction = match self.side {
                    Side::Client => body::Direction::Sent,
                    Side::Server => body::Direction::Received,
                };
                let events = body::Events::requests(span.clone(), direction);
                *request = watch(std::mem::take(request), events);
            }
        }
        let future = {
            let _entered = span.enter();
            self.inner.call(call)
        };
        ResponseFuture::new(future, span, self.side)
    }
}

#[cfg(all(test, feature = "opentelemetry"))]
mod tests;
