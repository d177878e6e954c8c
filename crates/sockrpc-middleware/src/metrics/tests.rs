//! `Metrics` with a Prometheus recorder local to the test: a streamed answer dropped before
//! its end is finished as `CANCELLED` and leaves nothing in flight, paths past the cap, or
//! with names past the length bound, are counted under `_OTHER`, sizes are per message and
//! counts per call, and a server's answer the transport refused is recorded with its code.
//! Under gRFC A66's names ([`a66`]): A66's instruments, labels and buckets on each side.

mod a66;

use super::handles::MAX_LABEL_LEN;
use super::{prometheus, MetricsLayer};
use bytes::Bytes;
use sockrpc_protocol::Code;
use sockrpc_protocol::{MethodPath, Request, Response, Status};
use sockrpc_service::{Body, Call};
use sockrpc_transport::ending::drop_as;
use std::task::Poll;
use tower::{Layer, Service, ServiceExt};

fn call(path: &'static str) -> Call {
    Call::new(
        MethodPath::from_static(path),
        Request::new(Body::once(Bytes::from_static(b"abc"))),
    )
}

/// A body that yields one message, then never ends.
fn endless() -> Body {
    let mut sent = false;
    Body::from_stream(futures_stream(move || {
        if sent {
            Poll::Pending
        } else {
            sent = true;
            Poll::Ready(Some(Ok(Bytes::from_static(b"12345"))))
        }
    }))
}

fn futures_stream<F>(f: F) -> impl futures_core::Stream<Item = Result<Bytes, Status>> + Send
where
    F: FnMut() -> Poll<Option<Result<Bytes, Status>>> + Send + Unpin,
{
    struct FromFn<F>(F);
    impl<F> futures_core::Stream for FromFn<F>
    where
        F: FnMut() -> Poll<Option<Result<Bytes, Status>>> + Unpin,
    {
        type Item = Result<Bytes, Status>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> Poll<Option<Self::Item>> {
            (self.0)()
        }
    }
    FromFn(f)
}

fn line<'a>(text: &'a str, prefix: &str, needles: &[&str]) -> Option<&'a str> {
    text.lines()
        .find(|line| line.starts_with(prefix) && needles.iter().all(|n| line.contains(n)))
}

/// The Prometheus page after `calls` ran with a recorder of their own.
fn page_after(calls: impl std::future::Future<Output = ()>) -> String {
    let recorder = prometheus::builder().build_recorder();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    ::metrics::with_local_recorder(&recorder, || runtime.block_on(calls));
    recorder.handle().render()
}

#[test]
fn dropped_stream_is_cancelled_and_paths_past_the_cap_are_other() {
    let text = page_after(async {
        let layer = MetricsLayer::server().max_methods(1);
        let inner =
            tower::service_fn(|_call: Call| async { Ok::<_, Status>(Response::new(endless())) });
        let mut body = layer
            .layer(inner)
            .oneshot(call("/pkg.Svc/Watch"))
            .await
            .expect("head")
            .into_inner();
        let first = std::future::poll_fn(|cx| body.poll_message(cx)).await;
        assert_eq!(first.map(|m| m.map(|b| b.len())), Some(Ok(5)));
        drop(body);

        let unary = tower::service_fn(|_call: Call| async {
            Err::<Response<Body>, _>(Status::not_found("no"))
        });
        let failed = layer.layer(unary).oneshot(call("/pkg.Svc/Other")).await;
        assert!(failed.is_err());
    });
    let watch = "rpc_method=\"Watch\"";
    assert!(
        line(
            &text,
            "rpc_server_call_finished_total{",
            &[watch, "rpc_sockrpc_status_code=\"CANCELLED\"", "} 1"]
        )
        .is_some(),
        "{text}"
    );
    assert!(
        line(&text, "rpc_server_call_active{", &[watch, "} 0"]).is_some(),
        "{text}"
    );
    assert!(
        line(
            &text,
            "rpc_server_response_size_bytes_sum{",
            &[watch, "} 5"]
        )
        .is_some(),
        "{text}"
    );
    assert!(
        line(
            &text,
            "rpc_server_responses_per_rpc_sum{",
            &[watch, "CANCELLED", "} 1"]
        )
        .is_some(),
        "{text}"
    );
    assert!(
        line(
            &text,
            "rpc_server_call_finished_total{",
            &["rpc_method=\"_OTHER\"", "NOT_FOUND", "} 1"]
        )
        .is_some(),
        "{text}"
    );
    assert!(!text.contains("rpc_method=\"Other\""), "{text}");
}

#[test]
fn names_past_the_length_bound_are_other_and_not_kept() {
    let at_bound = format!("/pkg.Svc/{}", "m".repeat(MAX_LABEL_LEN));
    let long_method = format!("/pkg.Svc/{}", "a".repeat(MAX_LABEL_LEN + 1));
    let long_service = format!("/{}/M", "s".repeat(MAX_LABEL_LEN + 1));
    let text = page_after(async {
        let layer = MetricsLayer::server();
        for path in [&at_bound, &long_method, &long_service] {
            let path = MethodPath::try_from_bytes(Bytes::from(path.clone())).expect("path");
            let call = Call::new(path, Request::new(Body::once(Bytes::from_static(b"abc"))));
            let inner = tower::service_fn(|_call: Call| async {
                Err::<Response<Body>, _>(Status::unimplemented("no such method"))
            });
            assert!(layer.layer(inner).oneshot(call).await.is_err());
        }
    });
    let kept = format!("rpc_method=\"{}\"", "m".repeat(MAX_LABEL_LEN));
    assert!(
        line(&text, "rpc_server_call_finished_total{", &[&kept, "} 1"]).is_some(),
        "a name at the bound keeps series of its own"
    );
    assert!(
        line(
            &text,
            "rpc_server_call_finished_total{",
            &["rpc_method=\"_OTHER\"", "UNIMPLEMENTED", "} 2"]
        )
        .is_some(),
        "{text}"
    );
    let longest = text.lines().map(str::len).max().unwrap_or(0);
    assert!(
        !text.contains(&"a".repeat(MAX_LABEL_LEN + 1))
            && !text.contains(&"s".repeat(MAX_LABEL_LEN + 1)),
        "a name past the bound reached the page (its longest line: {longest} bytes)"
    );
}

#[test]
fn made_up_paths_cannot_take_the_places_of_methods_served() {
    use super::handles::DEFAULT_MAX_UNCONFIRMED;
    let junk = DEFAULT_MAX_UNCONFIRMED + 50;
    let text = page_after(async {
        // A router: `UNIMPLEMENTED` for a path it does not serve, an answer for the one it does.
        // Half the made-up paths meet a layer inside this one first (an authentication check).
        let router = tower::service_fn(|call: Call| async move {
            let path = call.method_path();
            if path.service() == "real.Svc" {
                Ok(Response::new(Body::once(Bytes::from_static(b"ok"))))
            } else if path.service().len() % 2 == 0 {
                Err(Status::unauthenticated("no token"))
            } else {
                Err(Status::unimplemented("no such method"))
            }
        });
        let layer = MetricsLayer::server();
        let mut service = layer.layer(router);
        // A client calls made-up paths first, right after the server started.
        for i in 0..junk {
            let path = MethodPath::try_from_bytes(Bytes::from(format!("/x.Y{i}/m"))).expect("path");
            let call = Call::new(path, Request::new(Body::once(Bytes::new())));
            let made_up = (&mut service).oneshot(call).await;
            assert!(made_up.is_err());
        }
        // The method served: its first call confirms it, the next two have series of its own.
        for _ in 0..3 {
            let served = (&mut service).oneshot(call("/real.Svc/M")).await;
            assert!(served.is_ok());
        }
    });
    let real = ["rpc_service=\"real.Svc\"", "rpc_method=\"M\""];
    assert!(
        line(
            &text,
            "rpc_server_call_finished_total{",
            &[real[0], real[1], "} 2"]
        )
        .is_some(),
        "{text}"
    );
    // What found no place: the made-up paths past the cap and the real one's first call.
    let other_started = format!("}} {}", junk - DEFAULT_MAX_UNCONFIRMED + 1);
    assert!(
        line(
            &text,
            "rpc_server_call_started_total{",
            &["rpc_method=\"_OTHER\"", &other_started]
        )
        .is_some(),
        "{text}"
    );
    assert!(
        line(
            &text,
            "rpc_server_call_finished_total{",
            &["rpc_method=\"_OTHER\"", "\"OK\"", "} 1"]
        )
        .is_some(),
        "{text}"
    );
    let series = text
        .lines()
        .filter(|l| l.starts_with("rpc_server_call_started_total{"))
        .count();
    // The unconfirmed paths, the real one and `_OTHER`.
    assert_eq!(series, DEFAULT_MAX_UNCONFIRMED + 2, "{text}");
}

/// `count` messages of `len` bytes, then the end.
fn messages(count: usize, len: usize) -> Body {
    let mut left = count;
    Body::from_stream(futures_stream(move || {
        if left == 0 {
            return Poll::Ready(None);
        }
        left -= 1;
        Poll::Ready(Some(Ok(Bytes::from(vec![7u8; len]))))
    }))
}

/// Reads `body` to its end.
async fn drain(mut body: Body) -> usize {
    let mut read = 0;
    while let Some(message) = std::future::poll_fn(|cx| body.poll_message(cx)).await {
        assert!(message.is_ok(), "{message:?}");
        read += 1;
    }
    read
}

#[test]
fn sizes_are_recorded_per_message_and_counts_per_call() {
    let text = page_after(async {
        // Reads the request to its end, answers two messages of 4 bytes.
        let inner = tower::service_fn(|mut call: Call| async move {
            let read = drain(std::mem::take(call.request_mut().get_mut())).await;
            assert_eq!(read, 3);
            Ok::<_, Status>(Response::new(messages(2, 4)))
        });
        let streamed = Call::new(
            MethodPath::from_static("/pkg.Svc/Chat"),
            Request::new(messages(3, 10)),
        );
        let layer = MetricsLayer::server();
        let body = layer.layer(inner).oneshot(streamed).await.expect("head");
        assert_eq!(drain(body.into_inner()).await, 2);
    });
    let chat = "rpc_method=\"Chat\"";
    for (prefix, value) in [
        ("rpc_server_request_size_bytes_count{", "} 3"),
        ("rpc_server_request_size_bytes_sum{", "} 30"),
        ("rpc_server_response_size_bytes_count{", "} 2"),
        ("rpc_server_response_size_bytes_sum{", "} 8"),
        ("rpc_server_requests_per_rpc_count{", "} 1"),
        ("rpc_server_requests_per_rpc_sum{", "} 3"),
        ("rpc_server_responses_per_rpc_sum{", "} 2"),
    ] {
        assert!(
            line(&text, prefix, &[chat, value]).is_some(),
            "{prefix}..{value}: {text}"
        );
    }
    // Sizes by message, in byte buckets; counts by call and code, in count buckets.
    assert!(
        line(
            &text,
            "rpc_server_request_size_bytes_bucket{",
            &[chat, "le=\"1024\"", "} 3"]
        )
        .is_some(),
        "{text}"
    );
    assert!(
        line(
            &text,
            "rpc_server_responses_per_rpc_bucket{",
            &[chat, "\"OK\"", "le=\"2\"", "} 1"]
        )
        .is_some(),
        "{text}"
    );
}

#[test]
fn a_one_message_answer_the_transport_refused_is_recorded_with_its_code() {
    let text = page_after(async {
        let layer = MetricsLayer::server();
        let mut service = layer.layer(tower::service_fn(|_call: Call| async {
            Ok::<_, Status>(Response::new(Body::once(Bytes::from_static(b"12345678"))))
        }));
        // Sent: the transport drops the future as any value.
        let sent = service
            .ready()
            .await
            .expect("ready")
            .call(call("/pkg.Svc/Sent"));
        let mut sent = Box::pin(sent);
        assert!((&mut sent).await.is_ok());
        drop(sent);
        // Refused (over the send limit): dropped as ended `RESOURCE_EXHAUSTED`.
        let refused = service
            .ready()
            .await
            .expect("ready")
            .call(call("/pkg.Svc/Refused"));
        let mut refused = Box::pin(refused);
        assert!((&mut refused).await.is_ok());
        drop_as(Code::ResourceExhausted, refused);
    });
    let sent = "rpc_method=\"Sent\"";
    let refused = "rpc_method=\"Refused\"";
    for (prefix, needles) in [
        ("rpc_server_call_finished_total{", [sent, "\"OK\"", "} 1"]),
        ("rpc_server_response_size_bytes_sum{", [sent, "", "} 8"]),
        ("rpc_server_responses_per_rpc_sum{", [sent, "\"OK\"", "} 1"]),
        (
            "rpc_server_call_finished_total{",
            [refused, "\"RESOURCE_EXHAUSTED\"", "} 1"],
        ),
        (
            "rpc_server_responses_per_rpc_sum{",
            [refused, "\"RESOURCE_EXHAUSTED\"", "} 0"],
        ),
        (
            "rpc_server_requests_per_rpc_sum{",
            [refused, "\"RESOURCE_EXHAUSTED\"", "} 1"],
        ),
        ("rpc_server_call_active{", [refused, "", "} 0"]),
    ] {
        assert!(
            line(&text, prefix, &needles).is_some(),
            "{prefix}{needles:?}: {text}"
        );
    }
    // Not sent, so not a response; and never `OK`.
    assert!(
        line(
            &text,
            "rpc_server_response_size_bytes_count{",
            &[refused, "} 1"]
        )
        .is_none(),
        "{text}"
    );
    assert!(
        line(
            &text,
            "rpc_server_call_finished_total{",
            &[refused, "\"OK\""]
        )
        .is_none(),
        "{text}"
    );
}
