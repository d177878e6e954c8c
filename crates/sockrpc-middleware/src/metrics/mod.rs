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
//! **gRPC's names.** `MetricsLayer::server().names(MetricNames::GrpcA66)` (and `client()`, with
//! `.target("dns:///svc:50051")` for `grpc.target`) records gRFC A66's instruments instead,
//! those grpc-go, grpc-java and gRPC C++ record, so their dashboards show this service too:
//!
//! | metric | kind | labels |
//! |--------|------|--------|
//! | `grpc.server.call.started` | counter | `grpc.method` |
//! | `grpc.server.call.duration` | histogram, seconds | `grpc.method`, `grpc.status` |
//! | `grpc.server.call.{sent,rcvd}_total_compressed_message_size` | histogram, bytes | same |
//! | `grpc.client.attempt.started` | counter | `grpc.method`, `grpc.target` |
//! | `grpc.client.attempt.duration` | histogram, seconds | the same and `grpc.status` |
//! | `grpc.client.attempt.{sent,rcvd}_total_compressed_message_size` | histogram, bytes | same |
//! | `grpc.client.call.duration` | histogram, seconds | the same |
//!
//! `grpc.method` is `pkg.Service/Method`, or `other` for the calls the layer counts under
//! `_OTHER` above (A66's `other` is for methods the server did not register; the layer does
//! not know the router's methods, and uses its cap, [`MetricsLayer::max_methods`], instead).
//! `grpc.status` is the code's name (`OK`, `UNAVAILABLE`); `grpc.target` is left out when the
//! layer was given none. The byte totals are per call, of the messages as the layer sees them:
//! encoded and uncompressed (A66 asks for compressed sizes, which only the transport knows),
//! except a streamed message received compressed. A client layer sees what passes through
//! it: above a [`RetryLayer`](crate::retry::RetryLayer) or
//! [`HedgeLayer`](crate::hedge::HedgeLayer), one call, recorded both as the call and as its one
//! attempt (A66's numbers for a call with no retries); below one, each attempt, recorded as an
//! attempt and also as a call. Place it above for `grpc.client.call.duration` to be right,
//! below for the attempts; the channel's own transparent retry is never seen. The default path
//! pays for this one check at a call's end (is there a call duration to record?) and a select
//! where a count is added (a message, or its bytes).
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
mod scheme;

pub use future::ResponseFuture;
pub use layer::MetricsLayer;
pub use names::MetricNames;

use crate::watch::{once_len, watch};
use crate::Side;
use future::{CallGuard, RequestMessages};
use handles::{Found, MethodMetrics, Registry};
use scheme::Scheme;
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
            registry: Arc::new(Registry::new(
                side,
                handles::DEFAULT_MAX_METHODS,
                Scheme::new(side, MetricNames::default(), None),
            )),
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
        let (requests, one) = match once_len(request) {
            Some(len) => {
                method.request_size.record(len as f64);
                (None, method.weight(len))
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
                (Some(count), 0)
            }
        };
        let mut guard = CallGuard::new(method, self.registry.side(), requests, one);
        if candidate {
            guard = guard.candidate(&self.registry, call.method_path());
        }
        ResponseFuture::new(self.inner.call(call), guard)
    }
}

#[cfg(all(test, feature = "prometheus"))]
mod tests;
