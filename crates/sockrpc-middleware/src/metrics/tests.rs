//! `Metrics` with a Prometheus recorder local to the test: a streamed answer dropped before
//! its end is finished as `CANCELLED` and leaves nothing in flight, and paths past the cap are
//! counted under `_OTHER`.

use super::{prometheus, MetricsLayer};
use bytes::Bytes;
use sockrpc_protocol::{MethodPath, Request, Response, Status};
use sockrpc_service::{Body, Call};
use std::task::Poll;
use tower::{Layer, ServiceExt};

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

#[test]
fn dropped_stream_is_cancelled_and_paths_past_the_cap_are_other() {
    let recorder = prometheus::builder().build_recorder();
    let handle = recorder.handle();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    ::metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let layer = MetricsLayer::server().max_methods(1);
            let inner = tower::service_fn(|_call: Call| async {
                Ok::<_, Status>(Response::new(endless()))
            });
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
    });
    let text = handle.render();
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
            "rpc_server_call_response_size_bytes_total{",
            &[watch, "} 5"]
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
