//! A one-message answer the UDP server refused, recorded by the server's layers with the code
//! the client got, as over TCP (`sizes.rs`).
//!
//! Before, the UDP server dropped the handler's future (or let it go) outside
//! `sockrpc_transport::ending::drop_as`: its trace span and metrics said `OK` for an answer
//! whose metadata was over the server's limit, while the client got `INTERNAL`; and an answer
//! over the server's send limit was sent anyway, where TCP refuses it `RESOURCE_EXHAUSTED`.

use super::services::client_stack;
use super::sizes::{sample_of, traced};
use super::telemetry;
use bytes::Bytes;
use sockrpc::service::udp::UdpServerConfig;
use sockrpc::transport::endpoint::UdpPolicy;
use sockrpc::{Channel, Code, Limits, ProstCodec, Request, Response, Server, Status};
use sockrpc_middleware::metrics::MetricsLayer;
use sockrpc_middleware::trace::TraceLayer;
use sockrpc_middleware::trace_context::OtelPropagation;
use sockrpc_tests::echo::echo_server::{Echo, EchoServer};
use sockrpc_tests::echo::{EchoReply, EchoRequest, FailRequest, GrowRequest, SleepRequest};
use std::time::Duration;

/// The UDP server's metadata limit here: the answers' metadata is twice it.
const METADATA_LIMIT: usize = 1024;
/// The UDP server's send limit here: `Grow` answers a message of twice it (still within a
/// datagram).
const SEND_LIMIT: usize = 300;

/// `Echo` answers at once (on the receive loop), `Sleep` after a wait (on a task of its own),
/// both with response metadata over [`METADATA_LIMIT`]; `Grow` answers at once with a message
/// of `size` bytes, `Fail` after a wait with one of twice [`SEND_LIMIT`].
struct Oversized;

/// An answer whose metadata is twice `limit` (also `udp_truncated.rs`'s).
pub(super) fn big_metadata(limit: usize) -> Result<Response<EchoReply>, Status> {
    let mut response = Response::new(EchoReply::default());
    let value = "m".repeat(2 * limit);
    response
        .metadata_mut()
        .insert_str("x-big", value.as_str())
        .map_err(|err| Status::internal(err.to_string()))?;
    Ok(response)
}

fn of_size(size: usize) -> Result<Response<EchoReply>, Status> {
    Ok(Response::new(EchoReply {
        payload: Bytes::from(vec![0x33; size]),
        id: 0,
    }))
}

impl Echo for Oversized {
    async fn echo(&self, _: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        big_metadata(METADATA_LIMIT)
    }

    async fn sleep(&self, request: Request<SleepRequest>) -> Result<Response<EchoReply>, Status> {
        tokio::time::sleep(Duration::from_millis(request.into_inner().millis)).await;
        big_metadata(METADATA_LIMIT)
    }

    async fn fail(&self, _: Request<FailRequest>) -> Result<Response<EchoReply>, Status> {
        tokio::time::sleep(Duration::from_millis(20)).await;
        of_size(2 * SEND_LIMIT)
    }

    async fn grow(&self, request: Request<GrowRequest>) -> Result<Response<EchoReply>, Status> {
        of_size(request.into_inner().size as usize)
    }
}

/// A server on TCP and UDP with the server stack, serving [`Oversized`] as `service`, and a
/// channel that sends what fits over UDP.
async fn serve(service: &'static str) -> Channel {
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let listener = tokio::net::TcpListener::bind(any).await.expect("bind tcp");
    let tcp = listener.local_addr().expect("tcp addr");
    let udp_socket = tokio::net::UdpSocket::bind(any).await.expect("bind udp");
    let udp = udp_socket.local_addr().expect("udp addr");
    let mut config = UdpServerConfig::default();
    config.limits = Limits::default()
        .with_max_metadata_size(METADATA_LIMIT)
        .with_max_send_message_size(SEND_LIMIT);
    let router = sockrpc::Router::new().add_named(service, EchoServer::new(Oversized));
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
        .udp_policy(Some(UdpPolicy::new(udp)))
        .timeout(Duration::from_secs(20));
    Channel::connect(endpoint).await.expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_udp_answer_refused_for_its_metadata_is_recorded_as_the_client_got_it() {
    const SERVICE: &str = "sockrpc.test.UdpMetadata";
    let _telemetry = telemetry();
    let channel = serve(SERVICE).await;
    let mut client = sockrpc::Client::new(client_stack(&channel));
    let internal = Code::Internal as i64;
    let echo = client.unary::<EchoRequest, EchoReply, _>(
        Request::new(EchoRequest::default()),
        "/sockrpc.test.UdpMetadata/Echo",
        ProstCodec,
    );
    let inline = traced("inline", echo).await;
    let sleep = SleepRequest {
        millis: 20,
        token: String::new(),
    };
    let sleep = client.unary::<SleepRequest, EchoReply, _>(
        Request::new(sleep),
        "/sockrpc.test.UdpMetadata/Sleep",
        ProstCodec,
    );
    let task = traced("task", sleep).await;
    for (name, (code, client_span, server_span)) in [("inline", inline), ("task", task)] {
        assert_eq!(code, Code::Internal, "{name}");
        assert_eq!(client_span, internal, "{name}");
        assert_eq!(
            server_span, internal,
            "{name}: the server span says what the client got"
        );
    }
    let stats = channel.udp_stats().expect("udp set up");
    assert!(stats.replies >= 2, "answered over UDP: {stats:?}");
    let service = ("rpc_service", SERVICE);
    let internal = ("rpc_sockrpc_status_code", "INTERNAL");
    let finished = "rpc_server_call_finished_total";
    for method in ["Echo", "Sleep"] {
        let labels = [service, ("rpc_method", method), internal];
        assert_eq!(
            sample_of(finished, &labels, 1.0).await,
            Some(1.0),
            "{method}"
        );
    }
    let rendered = telemetry().prometheus.render();
    let ok = ("rpc_sockrpc_status_code", "OK");
    assert_eq!(super::sample(&rendered, finished, &[service, ok]), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_udp_answer_over_the_send_limit_is_refused_and_recorded_as_the_client_got_it() {
    const SERVICE: &str = "sockrpc.test.UdpSendLimit";
    let _telemetry = telemetry();
    let channel = serve(SERVICE).await;
    let mut client = sockrpc::Client::new(client_stack(&channel));
    // Within the limit: sent.
    let path = "/sockrpc.test.UdpSendLimit/Grow";
    let small = GrowRequest {
        size: SEND_LIMIT as u64 / 2,
    };
    let reply = client
        .unary::<GrowRequest, EchoReply, _>(Request::new(small), path, ProstCodec)
        .await
        .expect("an answer within the send limit");
    assert_eq!(reply.into_inner().payload.len(), SEND_LIMIT / 2);
    let exhausted = Code::ResourceExhausted as i64;
    let grow = GrowRequest {
        size: 2 * SEND_LIMIT as u64,
    };
    let grow = client.unary::<GrowRequest, EchoReply, _>(Request::new(grow), path, ProstCodec);
    let inline = traced("inline", grow).await;
    let fail = client.unary::<FailRequest, EchoReply, _>(
        Request::new(FailRequest::default()),
        "/sockrpc.test.UdpSendLimit/Fail",
        ProstCodec,
    );
    let task = traced("task", fail).await;
    for (name, (code, client_span, server_span)) in [("inline", inline), ("task", task)] {
        assert_eq!(code, Code::ResourceExhausted, "{name}");
        assert_eq!(client_span, exhausted, "{name}");
        assert_eq!(
            server_span, exhausted,
            "{name}: the server span says what the client got"
        );
    }
    let stats = channel.udp_stats().expect("udp set up");
    assert!(stats.replies >= 3, "answered over UDP: {stats:?}");
    let service = ("rpc_service", SERVICE);
    let exhausted = ("rpc_sockrpc_status_code", "RESOURCE_EXHAUSTED");
    let finished = "rpc_server_call_finished_total";
    for method in ["Grow", "Fail"] {
        let labels = [service, ("rpc_method", method), exhausted];
        assert_eq!(
            sample_of(finished, &labels, 1.0).await,
            Some(1.0),
            "{method}"
        );
    }
}
