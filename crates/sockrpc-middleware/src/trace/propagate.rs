//! `Propagate`: how a trace crosses from one process to the next, if at all.
//!
//! The tracing layer makes the span; whether that span continues a trace started in another
//! process is a separate choice with its own dependencies (OpenTelemetry's propagators), so it
//! is a type parameter: [`NoPropagation`] costs nothing, and
//! [`OtelPropagation`](crate::trace_context::OtelPropagation) (feature `opentelemetry`) carries
//! W3C `traceparent`/`tracestate` in the call's metadata.

use sockrpc_protocol::MetadataMap;
use tracing::Span;

/// Carries a span's trace context in a call's metadata.
///
/// Both methods are called only for spans that are enabled, and before the span is first
/// entered: a parent can only be set on a span that has not started yet.
pub trait Propagate: Clone + Send + Sync + 'static {
    /// Server side: makes `span` a child of the context the caller sent in `metadata`.
    fn extract(&self, span: &Span, metadata: &MetadataMap);

    /// Client side: writes `span`'s context into the request's `metadata`.
    fn inject(&self, span: &Span, metadata: &mut MetadataMap);
}

/// No trace context crosses processes: each side's span is parented locally only.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPropagation;

impl Propagate for NoPropagation {
    fn extract(&self, _span: &Span, _metadata: &MetadataMap) {}

    fn inject(&self, _span: &Span, _metadata: &mut MetadataMap) {}
}
