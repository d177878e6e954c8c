//! Message sizes and messages per call, as OpenTelemetry's RPC metrics name them
//! (`rpc.{server,client}.request.size`, `.response.size`: a histogram of each message's bytes;
//! `.requests_per_rpc`, `.responses_per_rpc`: a histogram of messages per call, by code).

use super::services::{client_stack, Chunks};
use super::telemetry;
use bytes::Bytes;
use sockrpc::{Channel, ProstCodec, Request, Server};
use sockrpc_middleware::metrics::MetricsLayer;
use sockrpc_middleware::trace::TraceLayer;
use sockrpc_middleware::trace_context::OtelPropagation;
use sockrpc_tests::stream::streamer_server::StreamerServer;
use sockrpc_tests::stream::{Chunk, ProduceRequest, Summary};
use std::{net::SocketAddr, time::Duration};

/// Serves [`Chunks`] under `service` with the server stack, sending at most `max_send` bytes
/// per message.
async fn serve(service: &'static str, max_send: usize) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let router = sockrpc::Router::new().add_named(service, StreamerServer::new(Chunks));
    tokio::spawn(
        Server::builder()
            .max_encoding_message_size(max_send)
            .layer(TraceLayer::server().propagate(OtelPropagation::w3c()))
            .layer(MetricsLayer::server())
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

/// Waits until `metric`'s sample with `labels` is `want` (a server records a call as its
/// answer leaves, perhaps after the client read it); what it was last.
async fn sample_of(metric: &str, labels: &[(&str, &str)], want: f64) -> Option<f64> {
    let mut seen = None;
    for _ in 0..500 {
        seen = super::sample(&telemetry().prometheus.render(), metric, labels);
        if seen == Some(want) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_are_per_message_and_counts_per_call_on_both_sides() {
    const SERVICE: &str = "sockrpc.test.Sizes";
    let _telemetry = telemetry();
    let channel = Channel::connect(serve(SERVICE, 4 * 1024 * 1024).await)
        .await
        .expect("connect");
    let mut client = sockrpc::Client::new(client_stack(&channel));
    // Server streaming: one request, two answers of 10 and 12 bytes (seq 0 is not encoded).
    let produce = ProduceRequest {
        count: 2,
        size: 8,
        ..ProduceRequest::default()
    };
    let mut answers = client
        .server_streaming::<ProduceRequest, Chunk, _>(
            Request::new(produce),
            "/sockrpc.test.Sizes/Produce",
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
    // Client streaming: three requests, one answer.
    let chunks = futures_util::stream::iter(vec![chunk(100), chunk(200), chunk(300)]);
    client
        .client_streaming::<_, Chunk, Summary, _>(
            Request::new(chunks),
            "/sockrpc.test.Sizes/Collect",
            ProstCodec,
        )
        .await
        .expect("collect");

    let service = ("rpc_service", SERVICE);
    let ok = ("rpc_sockrpc_status_code", "OK");
    for side in ["server", "client"] {
        let produce = [service, ("rpc_method", "Produce")];
        let collect = [service, ("rpc_method", "Collect")];
        let with_ok = |labels: [(&'static str, &'static str); 2]| [labels[0], labels[1], ok];
        // Messages per call, once per call with its code.
        for (metric, labels, want) in [
            ("requests_per_rpc_sum", with_ok(produce), 1.0),
            ("responses_per_rpc_sum", with_ok(produce), 2.0),
            ("responses_per_rpc_count", with_ok(produce), 1.0),
            ("requests_per_rpc_sum", with_ok(collect), 3.0),
            ("requests_per_rpc_count", with_ok(collect), 1.0),
            ("responses_per_rpc_sum", with_ok(collect), 1.0),
        ] {
            let metric = format!("rpc_{side}_{metric}");
            assert_eq!(
                sample_of(&metric, &labels, want).await,
                Some(want),
                "{metric} {labels:?}"
            );
        }
        // Sizes, once per message.
        for (metric, labels, want) in [
            ("response_size_bytes_count", produce, 2.0),
            ("response_size_bytes_sum", produce, 22.0),
            ("request_size_bytes_count", collect, 3.0),
            ("request_size_bytes_sum", collect, 614.0),
        ] {
            let metric = format!("rpc_{side}_{metric}");
            assert_eq!(
                sample_of(&metric, &labels, want).await,
                Some(want),
                "{metric} {labels:?}"
            );
        }
    }
}
