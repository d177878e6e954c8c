//! A UDP answer too large for a datagram goes out TRUNCATED and the client fetches it over TCP,
//! where the answer may fail after all: its metadata over the client's limit (the TCP server
//! refuses it `INTERNAL`), or the answer too large to keep for the re-issue (`ABORTED`). The
//! UDP server's layers record that call with the code the client got, as the TCP re-issue's
//! layers do.
//!
//! Before, the UDP server dropped the handler's future as the TRUNCATED left: its trace span
//! and metrics said `OK` for a call whose caller got `INTERNAL` or `ABORTED`. Now the future is
//! held with the cached answer and dropped with the re-issue's future
//! (`sockrpc_transport::udp::HeldCall`). And the re-issue's own span and metrics said `OK` for
//! an answer the TCP server refused: its future was dropped as it completed (tokio's task-local
//! scope), not by the transport once it knew (`sockrpc_service::server::dispatcher`).

use super::services::client_stack;
use super::{finished_trace, int, telemetry, trace_id_of};
use bytes::Bytes;
use opentelemetry::trace::SpanKind;
use sockrpc::service::udp::UdpServerConfig;
use sockrpc::transport::endpoint::UdpPolicy;
use sockrpc::{Channel, Code, Limits, ProstCodec, Request, Response, Server, Status};
use sockrpc_middleware::metrics::MetricsLayer;
use sockrpc_middleware::trace::TraceLayer;
use sockrpc_middleware::trace_context::OtelPropagation;
use sockrpc_tests::echo::echo_server::{Echo, EchoServer};
use sockrpc_tests::echo::{EchoReply, EchoRequest, FailRequest, GrowRequest, SleepRequest};
use std::time::Duration;

/// The client's metadata limit, which it announces to the TCP server: the answers' metadata is
/// twice it, and the server's own limit (16 KiB) takes it.
const CLIENT_METADATA_LIMIT: usize = 1024;
/// The size of `Fail`'s answer: larger than a datagram (1232) and than the reply cache of the
/// server that keeps too little ([`TOO_LITTLE`]).
const ANSWER: usize = 3000;
/// The bytes of answers the second server's reply cache keeps.
const TOO_LITTLE: usize = 1000;

/// `Grow` answers at once (on the receive loop), `Sleep` after a wait (on a task of its own),
/// both with response metadata over [`CLIENT_METADATA_LIMIT`]; `Fail` answers [`ANSWER`]
/// bytes.
struct Large;

impl Echo for Large {
    async fn echo(&self, _: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn sleep(&self, request: Request<SleepRequest>) -> Result<Response<EchoReply>, Status> {
        tokio::time::sleep(Duration::from_millis(request.into_inner().millis)).await;
        super::udp_refused::big_metadata(CLIENT_METADATA_LIMIT)
    }

    async fn fail(&self, _: Request<FailRequest>) -> Result<Response<EchoReply>, Status> {
        Ok(Response::new(EchoReply {
            payload: Bytes::from(vec![0x44; ANSWER]),
            id: 0,
        }))
    }

    async fn grow(&self, _: Request<GrowRequest>) -> Result<Response<EchoReply>, Status> {
        super::udp_refused::big_metadata(CLIENT_METADATA_LIMIT)
    }
}

/// A server on TCP and UDP with the server stack, serving [`Large`] as `service`, its reply
/// cache keeping `cache_bytes` of answers, and a channel under [`CLIENT_METADATA_LIMIT`] that
/// sends what fits over UDP.
async fn serve(service: &'static str, cache_bytes: usize) -> Channel {
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let listener = tokio::net::TcpListener::bind(any).await.expect("bind tcp");
    let tcp = listener.local_addr().expect("tcp addr");
    let udp_socket = tokio::net::UdpSocket::bind(any).await.expect("bind udp");
    let udp = udp_socket.local_addr().expect("udp addr");
    let mut config = UdpServerConfig::default();
    config.reply_cache.max_bytes = cache_bytes;
    let router = sockrpc::Router::new().add_named(service, EchoServer::new(Large));
    tokio::spawn(
        Server::builder()
            .udp(udp_socket, config)
            .layer(TraceLayer::server().propagate(OtelPropagation::w3c()))
            .layer(MetricsLayer::server())
            .router(router)
            .serve_with_listener(listener),
    );
    let endpoint = sockrpc::Endpoint::from_uri(&format!("tcp://{tcp}"))
        .expect("endpoint")
        .limits(Limits::default().with_max_metadata_size(CLIENT_METADATA_LIMIT))
        .udp_policy(Some(UdpPolicy::new(udp)))
        .timeout(Duration::from_secs(20));
    let channel = Channel::connect(endpoint).await.expect("connect");
    settle(&channel, service).await;
    channel
}

/// Makes a call too large for a datagram (so over TCP) and waits for its answer: the client has
/// then read the server's SETTINGS and answered with its metadata limit, which the server reads
/// before any later OPEN. A re-issue sent before that exchange ends would find the server not
/// yet told the limit: it sends the answer, and the client refuses it itself
/// (`RESOURCE_EXHAUSTED`) instead of the server (`INTERNAL`). (The limit is announced only in
/// answer to the peer's first SETTINGS: `server/announced.rs`.)
async fn settle(channel: &Channel, service: &str) {
    let mut client = sockrpc::Client::new(channel.clone());
    let large = EchoRequest {
        payload: Bytes::from(vec![0x11; 4096]),
        id: 0,
    };
    let answer = client
        .unary::<EchoRequest, EchoReply, _>(
            Request::new(large),
            // A method path is `'static`: one small string per server, for the test's life.
            &*Box::leak(format!("/{service}/Echo").into_boxed_str()),
            ProstCodec,
        )
        .await;
    let Err(status) = answer else {
        panic!("Echo is not served here")
    };
    assert_eq!(status.code(), Code::Unimplemented, "{status}");
}

/// Runs `call` under a root span; the code it failed with, and the status codes of its client
/// span and of its server spans (the UDP call's and the TCP re-issue's).
async fn traced<T>(
    name: &'static str,
    call: impl std::future::Future<Output = Result<T, Status>>,
) -> (Code, i64, Vec<i64>) {
    let root = tracing::info_span!("test.udp_truncated", case = name);
    let result = tracing::Instrument::instrument(call, root.clone()).await;
    let Err(status) = result else {
        panic!("{name}: the call succeeded")
    };
    let trace = trace_id_of(&root);
    drop(root);
    let spans = finished_trace(&telemetry().spans, &trace, 4).await;
    let code = "rpc.sockrpc.status_code";
    let client = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Client)
        .map(|span| int(span, code))
        .unwrap_or_else(|| panic!("{name}: a client span in {spans:#?}"));
    let servers = spans
        .iter()
        .filter(|s| s.span_kind == SpanKind::Server)
        .map(|span| int(span, code))
        .collect();
    (status.code(), client, servers)
}

/// The server's count of `service/method` calls finished with `code`, once it is `want`.
async fn finished(service: &str, method: &str, code: &str, want: f64) -> Option<f64> {
    let labels = [
        ("rpc_service", service),
        ("rpc_method", method),
        ("rpc_sockrpc_status_code", code),
    ];
    super::sizes::sample_of("rpc_server_call_finished_total", &labels, want).await
}

/// No call of `service` recorded `OK` on the server.
fn none_ok(service: &str) {
    let rendered = telemetry().prometheus.render();
    let labels = [("rpc_service", service), ("rpc_sockrpc_status_code", "OK")];
    let finished = "rpc_server_call_finished_total";
    assert_eq!(
        super::sample(&rendered, finished, &labels),
        None,
        "{service}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_udp_answer_refused_over_tcp_is_recorded_as_the_client_got_it() {
    const SERVICE: &str = "sockrpc.test.UdpTruncated";
    let _telemetry = telemetry();
    let channel = serve(SERVICE, 64 * 1024 * 1024).await;
    let mut client = sockrpc::Client::new(client_stack(&channel));
    let grow = client.unary::<GrowRequest, EchoReply, _>(
        Request::new(GrowRequest::default()),
        "/sockrpc.test.UdpTruncated/Grow",
        ProstCodec,
    );
    let inline = traced("inline", grow).await;
    let sleep = SleepRequest {
        millis: 20,
        token: String::new(),
    };
    let sleep = client.unary::<SleepRequest, EchoReply, _>(
        Request::new(sleep),
        "/sockrpc.test.UdpTruncated/Sleep",
        ProstCodec,
    );
    let task = traced("task", sleep).await;
    let internal = Code::Internal as i64;
    for (name, (code, client_span, server_spans)) in [("inline", inline), ("task", task)] {
        assert_eq!(code, Code::Internal, "{name}");
        assert_eq!(client_span, internal, "{name}");
        assert_eq!(
            server_spans,
            [internal, internal],
            "{name}: the UDP call's span and the TCP re-issue's say what the client got"
        );
    }
    let stats = channel.udp_stats().expect("udp set up");
    assert!(stats.truncations >= 2, "truncated over UDP: {stats:?}");
    for method in ["Grow", "Sleep"] {
        assert_eq!(
            finished(SERVICE, method, "INTERNAL", 2.0).await,
            Some(2.0),
            "{method}: the UDP call and its TCP re-issue"
        );
    }
    none_ok(SERVICE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_udp_answer_too_large_to_keep_is_recorded_as_the_client_got_it() {
    const SERVICE: &str = "sockrpc.test.UdpTooLargeToKeep";
    let _telemetry = telemetry();
    let channel = serve(SERVICE, TOO_LITTLE).await;
    let mut client = sockrpc::Client::new(client_stack(&channel));
    let fail = client.unary::<FailRequest, EchoReply, _>(
        Request::new(FailRequest::default()),
        "/sockrpc.test.UdpTooLargeToKeep/Fail",
        ProstCodec,
    );
    let (code, client_span, server_spans) = traced("too large to keep", fail).await;
    let aborted = Code::Aborted as i64;
    assert_eq!(code, Code::Aborted);
    assert_eq!(client_span, aborted);
    assert_eq!(server_spans, [aborted, aborted], "UDP and TCP spans");
    let stats = channel.udp_stats().expect("udp set up");
    assert!(stats.truncations >= 1, "truncated over UDP: {stats:?}");
    assert_eq!(finished(SERVICE, "Fail", "ABORTED", 2.0).await, Some(2.0));
    none_ok(SERVICE);
}
