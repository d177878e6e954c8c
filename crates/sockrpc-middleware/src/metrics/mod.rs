//! `Metrics`: per method and status code, calls started and finished, their duration, the calls
//! in flight, each message's size and the messages per call, on the
//! [`metrics`](https://docs.rs/metrics) crate's facade.
//!
//! Why the facade: the layer only counts; the application picks where the numbers go
//! (Prometheus through `prometheus` with feature `prometheus`, OpenTelemetry, statsd...) by
//! installing a recorder, and without one every handle is a no-op.
//!
//! | metric (server; client: `rpc.client.…`) | kind | labels |
//! |--------|------|--------|
//! | `rpc.server.call.started` | counter | `rpc.system`, `rpc.service`, `rpc.method` |
//! | `rpc.server.call.finished` | counter | the same and `rpc.sockrpc.status_code` |
//! | `rpc.server.call.duration` | histogram, seconds | the same and `rpc.sockrpc.status_code` |
//! | `rpc.server.call.active` | gauge | `rpc.system`, `rpc.service`, `rpc.method` |
//! | `rpc.server.request.size` | histogram, bytes | `rpc.system`, `rpc.service`, `rpc.method` |
//! | `rpc.server.response.size` | histogram, bytes | `rpc.system`, `rpc.service`, `rpc.method` |
//! | `rpc.server.requests_per_rpc` | histogram, count | the same and `rpc.sockrpc.status_code` |
//! | `rpc.server.responses_per_rpc` | histogram, count | the same and `rpc.sockrpc.status_code` |
//!
//! The sizes and the messages per call are OpenTelemetry's RPC metrics of the conventions up to
//! v1.37 (later versions dropped them, with no replacement yet), under their names: a size is
//! recorded per message, as it passes; the counts once per call, when it ends. Why the sizes
//! carry no status code: a streamed message passes before the call's status exists, and a
//! histogram of sizes cannot wait for it without keeping every size (OpenTelemetry's Go gRPC
//! instrumentation, `otelgrpc`, records them the same way). Sizes are of encoded messages,
//! without framing, uncompressed, except a streamed message that arrived compressed: the layer
//! sees it before the body decodes it, and records its compressed size. (Earlier versions kept
//! byte totals per call instead, under `rpc.server.call.request.size` and the like.)
//!
//! A call is finished when its answer is complete: a unary answer when it arrives, a streamed
//! one at its last message (or its error, or when it is dropped: `CANCELLED`). On a server, a
//! one-message answer is finished when the transport drops the call's future, after writing
//! the answer: a message it refused to send (over the send limit) finishes the call with the
//! code the client got, `RESOURCE_EXHAUSTED`, and is not recorded as a response
//! ([`sockrpc_transport::ending`]).
//!
//! Cost per call: a read lock and a hash of the path to find the method's cached handles
//! ([`handles`]), a clock read at each end, and a handful of atomic increments and histogram
//! records; streamed bodies get one box each to count their messages, and a streamed request
//! one more, its count shared with the call's end.

mod future;
pub mod handles;
mod layer;
pub mod names;
#[cfg(feature = "prometheus")]
pub mod prometheus;

pub use future::ResponseFuture;
pub use layer::MetricsLayer;

use crate::watch::{once_len, watch};
use crate::Side;
use future::{CallGuard, RequestMessages};
use handles::{Found, MethodMetrics, Registry};
use sockrpc_protocol::{Response, Status};
use sockrpc_service::{status_from_error, Body, BoxError, Call};
use std::{
    sync::{atomic::AtomicU64, Arc},
    task::{Context, Poll},
};
use tower_service::Service;

/// A service that records metrics for each call; see the [module docs](self).
#[derive(Clone)]
pub struct Metrics<S> {
    inner: S,
    registry: Arc<Registry>,
    /// The handles of the method this service called last: a connection (or a client) calling
    /// one method over and over finds them without the shared registry's lock and hash.
    last: Option<Arc<MethodMetrics>>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Metrics<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("inner", &self.inner)
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl<S> Metrics<S> {
    /// Wraps `inner`, recording `side`'s metrics.
    pub fn new(inner: S, side: Side) -> Metrics<S> {
        Metrics {
            inner,
            registry: Arc::new(Registry::new(side, handles::DEFAULT_MAX_METHODS)),
            last: None,
        }
    }

    /// The handles for `path`: the last method's when it is the same, else from the registry.
    fn handles(&mut self, path: &sockrpc_protocol::MethodPath) -> Found {
        if let Some(last) = &self.last {
            if last.is_for(path) {
                return Found {
                    handles: Arc::clone(last),
                    candidate: false,
                };
            }
        }
        let found = self.registry.get(path);
        if found.handles.is_for(path) {
            self.last = Some(Arc::clone(&found.handles));
        }
        found
    }

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

impl<S> Service<Call> for Metrics<S>
where
    S: Service<Call, Response = Response<Body>>,
    S::Error: Into<BoxError> + 'static,
{
    type Response = Response<Body>;
    type Error = Status;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx).map_err(status_from_error)
    }

    fn call(&mut self, mut call: Call) -> Self::Future {
        let Found {
            handles: method,
            candidate,
        } = self.handles(call.method_path());
        method.started.increment(1);
        method.active.increment(1.0);
        let request = call.request_mut().get_mut();
        let requests = match once_len(request) {
            Some(len) => {
                method.request_size.record(len as f64);
                None
            }
            None => {
                // Counted as they pass, for the call's end: the one allocation of a streamed
                // request's own (its watcher's box is another).
                let count = Arc::new(AtomicU64::new(0));
                let messages = RequestMessages {
                    method: Arc::clone(&method),
                    count: Arc::clone(&count),
                };
                *request = watch(std::mem::take(request), messages);
                Some(count)
            }
        };
        let mut guard = CallGuard::new(method, self.registry.side(), requests);
        if candidate {
            guard = guard.candidate(&self.registry, call.method_path());
        }
        ResponseFuture::new(self.inner.call(call), guard)
    }
}

#[cfg(all(test, feature = "prometheus"))]
mod tests;
