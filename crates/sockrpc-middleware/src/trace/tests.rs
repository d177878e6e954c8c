//! A streamed answer through `Trace`: the span stays open until the stream ends, records the
//! stream's status, and logs each message as an `rpc.message` event.

use super::{Trace, TraceLayer};
use bytes::Bytes;
use opentelemetry::trace::{SpanKind, Status as SpanStatus, TracerProvider as _};
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use sockrpc_protocol::{MethodPath, Request, Response, Status};
use sockrpc_service::{Body, Call};
use tower::{Layer, ServiceExt};
use tracing_subscriber::layer::SubscriberExt;

fn streamed_answer(messages: usize, end: Option<Status>) -> Body {
    let mut items: Vec<Result<Bytes, Status>> = (0..messages)
        .map(|n| Ok(Bytes::from(vec![0u8; n + 1])))
        .collect();
    items.extend(end.map(Err));
    Body::from_stream(futures_util_stream(items))
}

/// A stream of `items`, without a dependency on futures-util.
fn futures_util_stream(
    items: Vec<Result<Bytes, Status>>,
) -> impl futures_core::Stream<Item = Result<Bytes, Status>> + Send {
    struct Iter(std::vec::IntoIter<Result<Bytes, Status>>);
    impl futures_core::Stream for Iter {
        type Item = Result<Bytes, Status>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    Iter(items.into_iter())
}

#[test]
fn streamed_answer_keeps_the_span_open_to_its_end_and_logs_each_message() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("trace-tests")));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            let inner = tower::service_fn(|_call: Call| async {
                Ok::<_, Status>(Response::new(streamed_answer(
                    3,
                    Some(Status::data_loss("torn")),
                )))
            });
            let service: Trace<_> = TraceLayer::server().layer(inner);
            let call = Call::new(
                MethodPath::from_static("/pkg.Svc/Watch"),
                Request::new(Body::once(Bytes::from_static(b"q"))),
            );
            let mut body = service.oneshot(call).await.expect("head").into_inner();
            assert!(
                exporter.get_finished_spans().expect("spans").is_empty(),
                "the span must outlive the answer's head"
            );
            let mut sizes = Vec::new();
            let end = loop {
                match std::future::poll_fn(|cx| body.poll_message(cx)).await {
                    Some(Ok(message)) => sizes.push(message.len()),
                    Some(Err(status)) => break status,
                    None => panic!("the stream ends with an error"),
                }
            };
            assert_eq!(
                (sizes, end.code()),
                (vec![1, 2, 3], sockrpc_protocol::Code::DataLoss)
            );
            drop(body);
        });
    });
    let spans = exporter.get_finished_spans().expect("spans");
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    assert_eq!(span.name, "pkg.Svc/Watch");
    assert_eq!(span.span_kind, SpanKind::Server);
    let status_code = span
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "rpc.sockrpc.status_code")
        .map(|kv| kv.value.clone());
    assert_eq!(status_code, Some(Value::I64(15)));
    assert_eq!(span.status, SpanStatus::error("torn"), "{span:#?}");
    let last_event = span.events.iter().map(|e| e.timestamp).max();
    assert!(
        last_event.is_some_and(|last| span.end_time >= last),
        "the span ends after its last message: {span:#?}"
    );
    let events: Vec<(String, Option<Value>, Option<Value>)> = span
        .events
        .iter()
        .map(|event| {
            let get = |key: &str| {
                event
                    .attributes
                    .iter()
                    .find(|kv| kv.key.as_str() == key)
                    .map(|kv| kv.value.clone())
            };
            (
                event.name.to_string(),
                get("rpc.message.type"),
                get("rpc.message.id"),
            )
        })
        .collect();
    assert_eq!(events.len(), 3, "{events:?}");
    for (n, (name, kind, id)) in events.into_iter().enumerate() {
        assert_eq!(name, "rpc.message");
        assert_eq!(kind, Some(Value::from("SENT")));
        assert_eq!(id, Some(Value::I64(n as i64 + 1)));
    }
}

/// A Linux abstract socket is named as `ss` shows it (`@NAME`), not as the NUL-first path the
/// endpoint carries; a socket file by its path.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn a_unix_peer_is_named_by_its_path_or_abstract_name() {
    use sockrpc_service::Endpoint;
    let abstract_peer = super::Peer::from_endpoint(&Endpoint::unix_abstract("app").expect("name"));
    assert_eq!(abstract_peer.address, "@app");
    assert_eq!(abstract_peer.transport, Some("unix"));
    assert_eq!(abstract_peer.port, None);
    let file = super::Peer::from_endpoint(&Endpoint::unix("/run/app.sock"));
    assert_eq!(file.address, "/run/app.sock");
}
