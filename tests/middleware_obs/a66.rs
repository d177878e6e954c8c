//! gRFC A66's names over loopback (`MetricsLayer::names(MetricNames::GrpcA66)`): the server's
//! `grpc.server.call.*` and the client's `grpc.client.attempt.*` and `grpc.client.call.*`, by
//! `grpc.method`, `grpc.status` (and the client's `grpc.target`), with byte totals per call
//! that the two sides agree on, after unary and streamed calls that end `OK` or fail.

use super::services::Chunks;
use super::sizes::sample_of;
use super::{sample, telemetry};
use bytes::Bytes;
use sockrpc::{Channel, Code, ProstCodec, Request, Server};
use sockrpc_middleware::metrics::{MetricNames, Metrics, MetricsLayer};
use sockrpc_tests::stream::streamer_server::StreamerServer;
use sockrpc_tests::stream::{Chunk, ProduceRequest, Summary};
use std::net::SocketAddr;
use tower::ServiceBuilder;

const SERVICE: &str = "sockrpc.test.A66";

/// Serves [`Chunks`] as [`SERVICE`] behind an A66 server layer of 3 methods, sending at most
/// 1 KiB per message.
async fn serve() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let router = sockrpc::Router::new().add_named(SERVICE, StreamerServer::new(Chunks));
    let metrics = MetricsLayer::server()
        .names(MetricNames::GrpcA66)
        .max_methods(3);
    tokio::spawn(
        Server::builder()
            .max_encoding_message_size(1024)
            .layer(metrics)
            .router(router)
            .serve_with_listener(listener),
    );
    addr
}

fn chunk(size: usize) -> Chunk {
    Chunk {
        seq: 1,
        payload: Bytes::from(vec![0x5A; size]),
    }
}

/// `labels` and `more`, if any.
fn with<'a>(
    mut labels: Vec<(&'static str, &'a str)>,
    more: Option<(&'static str, &'a str)>,
) -> Vec<(&'static str, &'a str)> {
    labels.extend(more);
    labels
}

fn method(name: &str) -> String {
    format!("{SERVICE}/{name}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a66_names_over_loopback_count_calls_attempts_and_bytes_on_both_sides() {
    let _telemetry = telemetry();
    let addr = serve().await;
    let channel = Channel::connect(addr).await.expect("connect");
    let target = format!("dns:///127.0.0.1:{}", addr.port());
    let stack: Metrics<Channel> = ServiceBuilder::new()
        .layer(
            MetricsLayer::client()
                .names(MetricNames::GrpcA66)
                .target(&target)
                .max_methods(3),
        )
        .service(channel.clone());
    let mut client = sockrpc::Client::new(stack);

    // Unary: answered twice; then an answer over the server's send limit.
    for _ in 0..2 {
        let echo = client
            .unary::<Chunk, Chunk, _>(
                Request::new(chunk(10)),
                "/sockrpc.test.A66/Unary",
                ProstCodec,
            )
            .await
            .expect("unary");
        assert_eq!(echo.into_inner().payload.len(), 10);
    }
    let refused = client
        .unary::<Chunk, Chunk, _>(
            Request::new(chunk(4096)),
            "/sockrpc.test.A66/Unary",
            ProstCodec,
        )
        .await;
    assert_eq!(refused.expect_err("over").code(), Code::ResourceExhausted);
    // Server streaming: two answers of 10 and 12 bytes (seq 0 is not encoded).
    let produce = ProduceRequest {
        count: 2,
        size: 8,
        ..ProduceRequest::default()
    };
    let mut answers = client
        .server_streaming::<ProduceRequest, Chunk, _>(
            Request::new(produce),
            "/sockrpc.test.A66/Produce",
            ProstCodec,
        )
        .await
        .expect("produce")
        .into_inner();
    let mut read = 0;
    while answers.message().await.expect("a chunk").is_some() {
        read += 1;
    }
    assert_eq!(read, 2);
    // Client streaming: three requests of 100, 200 and 300 bytes' payloads.
    let chunks = futures_util::stream::iter(vec![chunk(100), chunk(200), chunk(300)]);
    client
        .client_streaming::<_, Chunk, Summary, _>(
            Request::new(chunks),
            "/sockrpc.test.A66/Collect",
            ProstCodec,
        )
        .await
        .expect("collect");
    // A fourth method, past both layers' cap of three: `other`; it fails.
    let gathered = client
        .streaming::<_, Chunk, Chunk, _>(
            Request::new(futures_util::stream::iter(vec![chunk(1)])),
            "/sockrpc.test.A66/Gather",
            ProstCodec,
        )
        .await;
    let code = match gathered {
        Err(status) => status.code(),
        Ok(answers) => {
            let mut answers = answers.into_inner();
            answers.message().await.expect_err("fails").code()
        }
    };
    assert_eq!(code, Code::Unimplemented);

    let names = [method("Unary"), method("Produce"), method("Collect")];
    let [unary, produce, collect] = names.each_ref().map(|name| ("grpc_method", name.as_str()));
    let ok = ("grpc_status", "OK");
    let exhausted = ("grpc_status", "RESOURCE_EXHAUSTED");
    let other = ("grpc_method", "other");
    let unimplemented = ("grpc_status", "UNIMPLEMENTED");
    let with_target = ("grpc_target", target.as_str());
    // Per side: (started, duration, bytes sent, bytes received) metric names.
    let server = (
        "grpc_server_call_started_total",
        "grpc_server_call_duration_seconds",
        "grpc_server_call_sent_total_compressed_message_size_bytes",
        "grpc_server_call_rcvd_total_compressed_message_size_bytes",
    );
    let client_side = (
        "grpc_client_attempt_started_total",
        "grpc_client_attempt_duration_seconds",
        "grpc_client_attempt_sent_total_compressed_message_size_bytes",
        "grpc_client_attempt_rcvd_total_compressed_message_size_bytes",
    );
    // A chunk of 10 bytes is 14 encoded (2 of seq, 2 of tag and length); of 4096, 4101.
    for (side, (started, duration, sent, rcvd), targeted) in [
        ("server", server, None),
        ("client", client_side, Some(with_target)),
    ] {
        // What this side sent and received of the requests and responses.
        let (requests, responses) = if side == "server" {
            (rcvd, sent)
        } else {
            (sent, rcvd)
        };
        for (metric, labels, want) in [
            (started.to_owned(), with(vec![unary], targeted), 3.0),
            (
                format!("{duration}_count"),
                with(vec![unary, ok], targeted),
                2.0,
            ),
            (
                format!("{duration}_count"),
                with(vec![unary, exhausted], targeted),
                1.0,
            ),
            (
                format!("{requests}_sum"),
                with(vec![unary, ok], targeted),
                28.0,
            ),
            (
                format!("{responses}_sum"),
                with(vec![unary, ok], targeted),
                28.0,
            ),
            (
                format!("{requests}_sum"),
                with(vec![unary, exhausted], targeted),
                4101.0,
            ),
            // Never sent, so never received.
            (
                format!("{responses}_sum"),
                with(vec![unary, exhausted], targeted),
                0.0,
            ),
            (
                format!("{responses}_sum"),
                with(vec![produce, ok], targeted),
                22.0,
            ),
            (
                format!("{responses}_count"),
                with(vec![produce, ok], targeted),
                1.0,
            ),
            (
                format!("{requests}_sum"),
                with(vec![collect, ok], targeted),
                614.0,
            ),
            (
                format!("{requests}_count"),
                with(vec![collect, ok], targeted),
                1.0,
            ),
            (started.to_owned(), with(vec![other], targeted), 1.0),
            (
                format!("{duration}_count"),
                with(vec![other, unimplemented], targeted),
                1.0,
            ),
        ] {
            assert_eq!(
                sample_of(&metric, &labels, want).await,
                Some(want),
                "{side}: {metric} {labels:?}"
            );
        }
    }
    // The client's calls, besides its attempts: it sits above no retry layer, so one each.
    let calls = "grpc_client_call_duration_seconds_count";
    assert_eq!(
        sample_of(calls, &[unary, ok, with_target], 2.0).await,
        Some(2.0)
    );
    let rendered = telemetry().prometheus.render();
    assert_eq!(
        sample(&rendered, calls, &[other, unimplemented, with_target]),
        Some(1.0)
    );
    // A66's latency buckets, not the default names' (0.3 ms is one of A66's only).
    let buckets = "grpc_server_call_duration_seconds_bucket";
    assert_eq!(
        sample(&rendered, buckets, &[unary, ok, ("le", "+Inf")]),
        Some(2.0)
    );
    assert!(
        sample(&rendered, buckets, &[unary, ok, ("le", "0.0003")]).is_some(),
        "{rendered}"
    );
    // None of the default names' series for this service, on either side.
    assert!(!rendered.contains(&format!("rpc_service=\"{SERVICE}\"")));
}
