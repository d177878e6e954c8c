//! What a server's span makes of the trace context a caller sent: it joins the caller's trace
//! only when `traceparent` is valid by the W3C rules, and keeps `tracestate` only when that is.

use super::OtelPropagation;
use crate::trace::Propagate;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use sockrpc_protocol::MetadataMap;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT_ID: &str = "b7ad6b7169203331";

/// The trace id and `tracestate` of a server span that extracted `entries`.
fn extracted(entries: &[(&str, &str)]) -> (String, String) {
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("trace-context")));
    tracing::subscriber::with_default(subscriber, || {
        let mut metadata = MetadataMap::new();
        for (key, value) in entries {
            metadata.append_str(*key, value).expect("valid metadata");
        }
        let span = tracing::info_span!("rpc.server");
        OtelPropagation::w3c().extract(&span, &metadata);
        let context = span.context();
        let span_context = context.span().span_context().clone();
        (
            span_context.trace_id().to_string(),
            span_context.trace_state().header(),
        )
    })
}

fn parent(version: &str, trace_id: &str, parent_id: &str, flags: &str) -> String {
    format!("{version}-{trace_id}-{parent_id}-{flags}")
}

#[test]
fn a_valid_traceparent_joins_the_callers_trace() {
    for valid in [
        parent("00", TRACE_ID, PARENT_ID, "01"),
        parent("00", TRACE_ID, PARENT_ID, "00"),
        parent("cc", TRACE_ID, PARENT_ID, "01"),
        format!(
            "{}-what-the-future-will-be-like",
            parent("cc", TRACE_ID, PARENT_ID, "01")
        ),
    ] {
        let (trace_id, _) = extracted(&[("traceparent", &valid)]);
        assert_eq!(trace_id, TRACE_ID, "{valid}");
    }
}

#[test]
fn an_invalid_traceparent_starts_a_trace_of_its_own() {
    let short_trace = &TRACE_ID[1..];
    let short_parent = &PARENT_ID[1..];
    let plus_trace = format!("+{short_trace}");
    let valid = parent("00", TRACE_ID, PARENT_ID, "01");
    for invalid in [
        parent("ff", TRACE_ID, PARENT_ID, "01"),
        parent("0a", &TRACE_ID.to_uppercase(), PARENT_ID, "01"),
        parent("0A", TRACE_ID, PARENT_ID, "01"),
        parent("0", TRACE_ID, PARENT_ID, "01"),
        parent("00", short_trace, PARENT_ID, "01"),
        parent("00", TRACE_ID, short_parent, "01"),
        parent("00", &plus_trace, PARENT_ID, "01"),
        parent("00", TRACE_ID, PARENT_ID, "1"),
        format!("{valid}-"),
    ] {
        let (trace_id, _) = extracted(&[("traceparent", &invalid)]);
        assert_ne!(trace_id, TRACE_ID, "{invalid}");
    }
    // Two entries: which caller's trace is it?
    let other = parent("00", &"1".repeat(32), PARENT_ID, "01");
    let (trace_id, _) = extracted(&[("traceparent", &valid), ("traceparent", &other)]);
    assert_ne!(trace_id, TRACE_ID);
}

#[test]
fn tracestate_is_one_list_of_at_most_32_distinct_keys() {
    let valid = parent("00", TRACE_ID, PARENT_ID, "01");
    let state = |entries: &[&str]| {
        let mut all = vec![("traceparent", valid.as_str())];
        all.extend(entries.iter().map(|entry| ("tracestate", *entry)));
        let (trace_id, state) = extracted(&all);
        assert_eq!(
            trace_id, TRACE_ID,
            "the trace goes on whatever its tracestate"
        );
        state
    };
    assert_eq!(state(&["foo=1", "bar=2"]), "foo=1,bar=2");
    let members: Vec<String> = (1..=33).map(|n| format!("bar{n:02}={n:02}")).collect();
    assert_eq!(state(&[&members[..32].join(",")]), members[..32].join(","));
    assert_eq!(state(&[&members.join(",")]), "", "33 members");
    assert_eq!(
        state(&[&members[..16].join(","), &members[16..].join(",")]),
        "",
        "33 members over two entries"
    );
    assert_eq!(state(&["foo=1,foo=2"]), "", "a key twice");
}
