//! W3C trace context in a call's metadata, so that a call through several services is one
//! trace (feature `opentelemetry`).
//!
//! ```text
//!  client span ──inject──▶ metadata: traceparent, tracestate ──▶ server: extract ──▶ parent of
//!                                                                                   its span
//! ```
//!
//! Why through `tracing`: sockrpc's spans are `tracing` spans ([`crate::trace`]), and
//! `tracing-opentelemetry` turns them into OpenTelemetry spans; it also holds each span's
//! OpenTelemetry context, which is what gets injected, and lets a span's parent be set from an
//! extracted one. So [`OtelPropagation`] plugs into [`TraceLayer::propagate`] and needs a
//! `tracing_opentelemetry::OpenTelemetryLayer` in the subscriber; without one, nothing is
//! injected and nothing is parented.
//!
//! What a server reads is checked by the W3C rules first (`w3c.rs`): a `traceparent` or
//! `tracestate` they refuse (version `ff`, an all-zero or short id, upper-case hex, a
//! `tracestate` of more than 32 members or with a key twice) is not shown to the propagator,
//! so the call starts a trace of its own (or, for `tracestate` alone, continues the trace
//! without it). Several `tracestate` entries are read as one list, as HTTP joins them.
//! Baggage (with a propagator that reads it) is kept when no valid trace context came with it:
//! the span keeps its local parent and carries the caller's baggage.
//!
//! [`TraceLayer::propagate`]: crate::trace::TraceLayer::propagate

use crate::trace::Propagate;
use opentelemetry::baggage::{Baggage, BaggageExt};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use sockrpc_protocol::MetadataMap;
use std::sync::Arc;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use w3c::W3cView;

mod w3c;

/// Writes propagation fields into a call's metadata. A field the metadata rules refuse (a key
/// with characters outside `a-z 0-9 - _ .`, a value outside printable ASCII) is left out, as a
/// header that cannot be sent would be.
#[derive(Debug)]
pub struct MetadataInjector<'a>(pub &'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let _ = self.0.insert_str(key, &value);
    }
}

/// Reads propagation fields from a call's metadata.
#[derive(Debug)]
pub struct MetadataExtractor<'a>(pub &'a MetadataMap);

impl Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get_str(key)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(key, _)| key).collect()
    }
}

/// Propagates with an OpenTelemetry propagator: [`w3c`](OtelPropagation::w3c) for W3C trace
/// context (`traceparent`, `tracestate`), or any other with [`new`](OtelPropagation::new).
///
/// The propagator is shared, not cloned, between the clones a tower stack makes: OpenTelemetry's
/// `TextMapCompositePropagator` and `BaggagePropagator` are not `Clone`, and trace context with
/// W3C baggage is a composite of the two.
#[derive(Debug)]
pub struct OtelPropagation<P = TraceContextPropagator> {
    propagator: Arc<P>,
}

impl<P> Clone for OtelPropagation<P> {
    fn clone(&self) -> OtelPropagation<P> {
        OtelPropagation {
            propagator: Arc::clone(&self.propagator),
        }
    }
}

impl OtelPropagation {
    /// W3C trace context: `traceparent` and `tracestate`.
    pub fn w3c() -> OtelPropagation {
        OtelPropagation::new(TraceContextPropagator::new())
    }
}

impl Default for OtelPropagation {
    fn default() -> OtelPropagation {
        OtelPropagation::w3c()
    }
}

impl<P> OtelPropagation<P> {
    /// Propagates with `propagator` (B3, Jaeger, a composite...). W3C trace context and W3C
    /// baggage together, as OpenTelemetry SDKs propagate by default; a server's handler then
    /// finds the caller's baggage in its span's context (`Span::current().context()`):
    ///
    /// ```
    /// use opentelemetry::propagation::TextMapCompositePropagator;
    /// use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
    /// use sockrpc_middleware::{trace::TraceLayer, trace_context::OtelPropagation};
    ///
    /// let w3c_and_baggage = OtelPropagation::new(TextMapCompositePropagator::new(vec![
    ///     Box::new(TraceContextPropagator::new()),
    ///     Box::new(BaggagePropagator::new()),
    /// ]));
    /// let server = TraceLayer::server().propagate(w3c_and_baggage.clone());
    /// let client = TraceLayer::client().propagate(w3c_and_baggage);
    /// ```
    pub fn new(propagator: P) -> OtelPropagation<P> {
        OtelPropagation {
            propagator: Arc::new(propagator),
        }
    }

    /// The propagator.
    pub fn get_ref(&self) -> &P {
        &self.propagator
    }
}

impl<P> Propagate for OtelPropagation<P>
where
    P: TextMapPropagator + Send + Sync + 'static,
{
    fn extract(&self, span: &Span, metadata: &MetadataMap) {
        // From an empty context, not the current one: a call that brings no trace context
        // keeps the parent `tracing` gave its span. The W3C fields only when valid.
        let parent = self
            .propagator
            .extract_with_context(&Context::new(), &W3cView::new(metadata));
        let parent = if parent.has_active_span() {
            parent
        } else if !parent.baggage().is_empty() {
            // Baggage with no trace context (no `traceparent`, or one the W3C rules refuse):
            // kept on its own, as grpc-go's and the OpenTelemetry SDKs' propagators keep it,
            // over the context the span would have had as its parent (the current one, which
            // is what `tracing-opentelemetry` parents a new span on), so the span keeps its
            // local parent and its handler finds the caller's baggage.
            let baggage: Baggage = parent
                .baggage()
                .iter()
                .map(|(key, (value, metadata))| (key.clone(), (value.clone(), metadata.clone())))
                .collect();
            Context::current_with_baggage(baggage)
        } else {
            return;
        };
        // Fails only without an OpenTelemetry layer, or for a span already started: either way
        // there is nothing to parent.
        let _ = span.set_parent(parent);
    }

    fn inject(&self, span: &Span, metadata: &mut MetadataMap) {
        self.propagator
            .inject_context(&span.context(), &mut MetadataInjector(metadata));
    }
}

#[cfg(test)]
mod tests;
