//! `Metrics` under gRFC A66's names, with a Prometheus recorder local to the test: A66's
//! instruments, labels and buckets on each side, byte totals per call, `other` past the cap,
//! and nothing of OpenTelemetry's names; and the default names unchanged by A66's settings.

use super::{call, drain, messages, page_after};
use crate::metrics::{MetricNames, MetricsLayer};
use bytes::Bytes;
use sockrpc_protocol::{MethodPath, Request, Response, Status};
use sockrpc_service::{Body, Call};
use tower::{Layer, ServiceExt};

/// The value of the sample of `metric` whose labels include every one of `labels`.
fn sample(text: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with(&format!("{metric}{{")))
        .find(|line| {
            labels
                .iter()
                .all(|(key, value)| line.contains(&format!("{key}=\"{value}\"")))
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// Through `layer`: a unary call answered 8 bytes, one that fails `NOT_FOUND`, a streamed call
/// (3 requests of 10 bytes, 2 answers of 4), then a unary call of a path past a cap of 3.
async fn a66_calls(layer: MetricsLayer) {
    let layer = layer.names(MetricNames::GrpcA66).max_methods(3);
    let unary = tower::service_fn(|call: Call| async move {
        match call.method_path().method() {
            "Fail" => Err(Status::not_found("no")),
            _ => Ok(Response::new(Body::once(Bytes::from_static(b"12345678")))),
        }
    });
    let mut service = layer.layer(unary);
    for path in ["/pkg.Svc/Get", "/pkg.Svc/Fail"] {
        let result = (&mut service).oneshot(call(path)).await;
        assert_eq!(result.is_ok(), path.ends_with("Get"), "{path}");
    }
    let streaming = tower::service_fn(|mut call: Call| async move {
        assert_eq!(drain(std::mem::take(call.request_mut().get_mut())).await, 3);
        Ok::<_, Status>(Response::new(messages(2, 4)))
    });
    let streamed = Call::new(
        MethodPath::from_static("/pkg.Chat/Talk"),
        Request::new(messages(3, 10)),
    );
    // A second service of the same layer: the two share its cap.
    let body = layer
        .layer(streaming)
        .oneshot(streamed)
        .await
        .expect("head");
    assert_eq!(drain(body.into_inner()).await, 2);
    assert!(service.oneshot(call("/pkg.Svc/Past")).await.is_ok());
}

#[test]
fn a66_names_on_a_server_are_grpcs_with_totals_per_call() {
    let text = page_after(a66_calls(MetricsLayer::server()));
    let get = ("grpc_method", "pkg.Svc/Get");
    let ok = ("grpc_status", "OK");
    let sent = "grpc_server_call_sent_total_compressed_message_size_bytes";
    let rcvd = "grpc_server_call_rcvd_total_compressed_message_size_bytes";
    let duration = "grpc_server_call_duration_seconds";
    for (metric, labels, want) in [
        ("grpc_server_call_started_total", vec![get], 1.0),
        (&format!("{duration}_count"), vec![get, ok], 1.0),
        (&format!("{rcvd}_sum"), vec![get, ok], 3.0),
        (&format!("{sent}_sum"), vec![get, ok], 8.0),
        // A66's buckets: 0.3 ms is one of theirs, not of the default names'.
        (
            &format!("{duration}_bucket"),
            vec![get, ok, ("le", "0.0003")],
            1.0,
        ),
        (
            &format!("{sent}_bucket"),
            vec![get, ok, ("le", "1024")],
            1.0,
        ),
        (
            &format!("{duration}_count"),
            vec![
                ("grpc_method", "pkg.Svc/Fail"),
                ("grpc_status", "NOT_FOUND"),
            ],
            1.0,
        ),
        (
            &format!("{sent}_sum"),
            vec![
                ("grpc_method", "pkg.Svc/Fail"),
                ("grpc_status", "NOT_FOUND"),
            ],
            0.0,
        ),
        // The fourth path, past the cap of three.
        (
            "grpc_server_call_started_total",
            vec![("grpc_method", "other")],
            1.0,
        ),
        // The streamed call: totals per call, not per message.
        (
            &format!("{rcvd}_sum"),
            vec![("grpc_method", "pkg.Chat/Talk")],
            30.0,
        ),
        (
            &format!("{rcvd}_count"),
            vec![("grpc_method", "pkg.Chat/Talk")],
            1.0,
        ),
        (
            &format!("{sent}_sum"),
            vec![("grpc_method", "pkg.Chat/Talk"), ok],
            8.0,
        ),
    ] {
        assert_eq!(
            sample(&text, metric, &labels),
            Some(want),
            "{metric} {labels:?}: {text}"
        );
    }
    assert!(!text.contains("pkg.Svc/Past"), "{text}");
    // A66's instruments only: no gauge, no finished counter, no OpenTelemetry names, no target
    // on a server.
    let otel = text
        .lines()
        .filter(|l| l.starts_with("rpc_") || l.contains(" rpc_"));
    assert_eq!(otel.count(), 0, "{text}");
    for absent in ["grpc_client_", "grpc_target", "_active", "finished"] {
        assert!(!text.contains(absent), "{absent}: {text}");
    }
}

#[test]
fn a66_names_on_a_client_record_attempts_and_calls_with_the_target() {
    let target = "dns:///svc.test:50051";
    let text = page_after(a66_calls(MetricsLayer::client().target(target)));
    let get = ("grpc_method", "pkg.Svc/Get");
    let talk = ("grpc_method", "pkg.Chat/Talk");
    let ok = ("grpc_status", "OK");
    let with_target = ("grpc_target", target);
    let sent = "grpc_client_attempt_sent_total_compressed_message_size_bytes";
    let rcvd = "grpc_client_attempt_rcvd_total_compressed_message_size_bytes";
    for (metric, labels, want) in [
        (
            "grpc_client_attempt_started_total",
            vec![get, with_target],
            1.0,
        ),
        (
            "grpc_client_attempt_duration_seconds_count",
            vec![get, ok, with_target],
            1.0,
        ),
        (
            "grpc_client_call_duration_seconds_count",
            vec![get, ok, with_target],
            1.0,
        ),
        (
            "grpc_client_call_duration_seconds_bucket",
            vec![get, ok, ("le", "100")],
            1.0,
        ),
        (&format!("{sent}_sum"), vec![get, ok, with_target], 3.0),
        (&format!("{rcvd}_sum"), vec![get, ok, with_target], 8.0),
        (
            "grpc_client_call_duration_seconds_count",
            vec![
                ("grpc_method", "pkg.Svc/Fail"),
                ("grpc_status", "NOT_FOUND"),
            ],
            1.0,
        ),
        (
            "grpc_client_attempt_started_total",
            vec![("grpc_method", "other")],
            1.0,
        ),
        // The client sends the streamed requests and receives the answers.
        (&format!("{sent}_sum"), vec![talk, ok], 30.0),
        (&format!("{rcvd}_sum"), vec![talk, ok], 8.0),
        (&format!("{rcvd}_count"), vec![talk, ok], 1.0),
    ] {
        assert_eq!(
            sample(&text, metric, &labels),
            Some(want),
            "{metric} {labels:?}: {text}"
        );
    }
    let otel = text
        .lines()
        .filter(|l| l.starts_with("rpc_") || l.contains(" rpc_"));
    assert_eq!(otel.count(), 0, "{text}");
    for absent in ["grpc_server_", "_active", "finished"] {
        assert!(!text.contains(absent), "{absent}: {text}");
    }
    let series = text.lines().filter(|l| l.starts_with("grpc_")).count();
    let targeted = text.lines().filter(|l| l.contains(target)).count();
    assert_eq!(series, targeted, "every series has the target: {text}");
}

#[test]
fn the_default_names_stay_opentelemetrys() {
    let text = page_after(async {
        let unary = tower::service_fn(|_call: Call| async {
            Ok::<_, Status>(Response::new(Body::once(Bytes::from_static(b"1234"))))
        });
        let layer = MetricsLayer::client().target("dns:///ignored:1");
        assert!(layer
            .layer(unary)
            .oneshot(call("/pkg.Svc/Get"))
            .await
            .is_ok());
    });
    assert!(!text.contains("grpc_"), "{text}");
    assert!(!text.contains("ignored"), "{text}");
    assert_eq!(
        sample(
            &text,
            "rpc_client_responses_per_rpc_sum",
            &[("rpc_method", "Get")]
        ),
        Some(1.0),
        "messages per call, not bytes: {text}"
    );
}
