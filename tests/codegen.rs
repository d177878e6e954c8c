//! Issue 2, must show 7: code generated from real-world `.proto` files nobody here wrote
//! (`../shared/protos`: gRPC's interop `TestService`, OpenTelemetry's collector) builds, and its
//! client and server answer calls over TCP on loopback.

use futures_util::stream::{self, BoxStream, StreamExt};
use sockrpc::Streaming;
use sockrpc::{Code, Request, Response, Status};
use sockrpc_tests::shared::grpc::testing::test_service_client::TestServiceClient;
use sockrpc_tests::shared::grpc::testing::test_service_server::{TestService, TestServiceServer};
use sockrpc_tests::shared::grpc::testing::{
    EchoStatus, Empty, Payload, PayloadType, SimpleRequest, SimpleResponse,
    StreamingInputCallRequest, StreamingInputCallResponse, StreamingOutputCallRequest,
    StreamingOutputCallResponse,
};
use sockrpc_tests::shared::opentelemetry::proto::collector::trace::v1::trace_service_client::TraceServiceClient;
use sockrpc_tests::shared::opentelemetry::proto::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use sockrpc_tests::shared::opentelemetry::proto::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use sockrpc_tests::shared::opentelemetry::proto::trace::v1::{ResourceSpans, ScopeSpans, Span};
use std::future::Future;
use std::time::Duration;

/// Bound on every single step of these tests.
const STEP: Duration = Duration::from_secs(10);

/// The interop `TestService`, as gRPC's interop server behaves for the unary rpcs.
struct Interop;

/// What `UnimplementedCall` answers here; the test checks this exact status comes back.
const UNIMPLEMENTED_MESSAGE: &str = "interop server: UnimplementedCall is not implemented";

impl TestService for Interop {
    async fn empty_call(&self, _request: Request<Empty>) -> Result<Response<Empty>, Status> {
        Ok(Response::new(Empty {}))
    }

    async fn unary_call(
        &self,
        request: Request<SimpleRequest>,
    ) -> Result<Response<SimpleResponse>, Status> {
        let request = request.into_inner();
        if let Some(status) = request.response_status {
            if status.code != 0 {
                let code = u32::try_from(status.code)
                    .map_err(|_| Status::invalid_argument("negative status code"))?;
                return Err(Status::new(Code::from_u32(code), status.message));
            }
        }
        let size = usize::try_from(request.response_size)
            .map_err(|_| Status::invalid_argument("negative response_size"))?;
        if size > 1024 * 1024 {
            return Err(Status::invalid_argument(
                "response_size too large for this test",
            ));
        }
        Ok(Response::new(SimpleResponse {
            payload: Some(Payload {
                r#type: request.response_type,
                body: vec![0; size],
            }),
            ..Default::default()
        }))
    }

    async fn cacheable_unary_call(
        &self,
        request: Request<SimpleRequest>,
    ) -> Result<Response<SimpleResponse>, Status> {
        self.unary_call(request).await
    }

    async fn unimplemented_call(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<Empty>, Status> {
        Err(Status::unimplemented(UNIMPLEMENTED_MESSAGE))
    }

    type StreamingOutputCallStream =
        BoxStream<'static, Result<StreamingOutputCallResponse, Status>>;

    async fn streaming_output_call(
        &self,
        request: Request<StreamingOutputCallRequest>,
    ) -> Result<Response<Self::StreamingOutputCallStream>, Status> {
        let request = request.into_inner();
        let responses: Vec<_> = request
            .response_parameters
            .iter()
            .map(|p| Ok(output(p.size)))
            .collect();
        Ok(Response::new(stream::iter(responses).boxed()))
    }

    async fn streaming_input_call(
        &self,
        request: Request<Streaming<StreamingInputCallRequest>>,
    ) -> Result<Response<StreamingInputCallResponse>, Status> {
        let mut requests = request.into_inner();
        let mut total = 0usize;
        while let Some(request) = requests.message().await? {
            total += request.payload.map_or(0, |p| p.body.len());
        }
        Ok(Response::new(StreamingInputCallResponse {
            aggregated_payload_size: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }

    type FullDuplexCallStream = BoxStream<'static, Result<StreamingOutputCallResponse, Status>>;

    async fn full_duplex_call(
        &self,
        request: Request<Streaming<StreamingOutputCallRequest>>,
    ) -> Result<Response<Self::FullDuplexCallStream>, Status> {
        let responses = request.into_inner().map(|request| {
            let request = request?;
            let size = request.response_parameters.first().map_or(0, |p| p.size);
            Ok(output(size))
        });
        Ok(Response::new(responses.boxed()))
    }

    type HalfDuplexCallStream = BoxStream<'static, Result<StreamingOutputCallResponse, Status>>;

    async fn half_duplex_call(
        &self,
        _request: Request<Streaming<StreamingOutputCallRequest>>,
    ) -> Result<Response<Self::HalfDuplexCallStream>, Status> {
        Err(Status::unimplemented(
            "half duplex is not part of these tests",
        ))
    }
}

fn output(size: i32) -> StreamingOutputCallResponse {
    StreamingOutputCallResponse {
        payload: Some(Payload {
            r#type: PayloadType::Compressable as i32,
            body: vec![0; usize::try_from(size).unwrap_or(0)],
        }),
        ..Default::default()
    }
}

/// An OpenTelemetry trace collector that counts the spans it receives and rejects those with
/// an empty name.
struct Collector;

impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let spans = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans);
        let mut rejected = 0;
        let mut names = Vec::new();
        for span in spans {
            if span.name.is_empty() {
                rejected += 1;
            } else {
                names.push(span.name);
            }
        }
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: rejected,
                error_message: format!("accepted: {}", names.join(",")),
            }),
        }))
    }
}

use sockrpc_tests::serve::Running;

fn start(builder: sockrpc::service::ServerBuilder<tower::layer::util::Identity>) -> Running {
    Running::start(builder)
}

async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {STEP:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_test_service_unary_rpcs_over_tcp() {
    let server = start(sockrpc::Server::builder().add_service(TestServiceServer::new(Interop)));
    let mut client = bounded(
        "connect",
        TestServiceClient::connect(format!("tcp://{}", server.addr)),
    )
    .await
    .expect("connect");

    let reply = bounded("EmptyCall", client.empty_call(Empty {}))
        .await
        .expect("EmptyCall succeeds");
    assert_eq!(reply.into_inner(), Empty {});

    for size in [0, 1, 271_828, 1024 * 1024] {
        let reply = bounded(
            "UnaryCall",
            client.unary_call(SimpleRequest {
                response_type: PayloadType::Compressable as i32,
                response_size: size,
                payload: Some(Payload {
                    r#type: PayloadType::Compressable as i32,
                    body: vec![7; 314_159],
                }),
                ..Default::default()
            }),
        )
        .await
        .expect("UnaryCall succeeds");
        let payload = reply.into_inner().payload.expect("payload present");
        assert_eq!(payload.r#type, PayloadType::Compressable as i32);
        assert_eq!(payload.body.len(), size as usize, "response_size {size}");
        assert!(payload.body.iter().all(|b| *b == 0));
    }

    // `response_status` is honoured: the code and message come back as sent, every code tried.
    for code in 1..=16 {
        let message = format!("requested status {code}\twith a tab and 🦀");
        let err = bounded(
            "UnaryCall with status",
            client.unary_call(SimpleRequest {
                response_status: Some(EchoStatus {
                    code,
                    message: message.clone(),
                }),
                ..Default::default()
            }),
        )
        .await
        .expect_err("UnaryCall must fail with the requested status");
        assert_eq!(err.code().as_u32(), code as u32, "{err:?}");
        assert_eq!(err.message(), message);
    }

    // `CacheableUnaryCall` is unary too and generated; `UnimplementedCall` exists as a unary rpc
    // and returns what the implementation returns.
    let reply = bounded(
        "CacheableUnaryCall",
        client.cacheable_unary_call(SimpleRequest {
            response_size: 3,
            ..Default::default()
        }),
    )
    .await
    .expect("CacheableUnaryCall succeeds");
    assert_eq!(
        reply.into_inner().payload.expect("payload").body,
        vec![0; 3]
    );
    let err = bounded("UnimplementedCall", client.unimplemented_call(Empty {}))
        .await
        .expect_err("UnimplementedCall fails");
    assert_eq!(err.code(), Code::Unimplemented);
    assert_eq!(err.message(), UNIMPLEMENTED_MESSAGE);

    // A second client made from an existing channel (the other constructor) works too.
    let channel = bounded(
        "channel",
        sockrpc::Channel::connect(format!("127.0.0.1:{}", server.addr.port())),
    )
    .await
    .expect("channel connects");
    let mut second = TestServiceClient::new(channel);
    bounded("EmptyCall on second client", second.empty_call(Empty {}))
        .await
        .expect("EmptyCall on a client built from a channel");

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_methods_and_services_are_unimplemented_with_the_path() {
    let server = start(sockrpc::Server::builder().add_service(TestServiceServer::new(Interop)));
    let channel = bounded(
        "connect",
        sockrpc::Channel::connect(server.addr.to_string()),
    )
    .await
    .expect("connect");
    let mut client = sockrpc::Client::new(channel);

    for path in ["/grpc.testing.TestService/Nope", "/nope.Svc/M"] {
        let err = bounded(
            path,
            client.unary::<Empty, Empty, _>(Request::new(Empty {}), path, sockrpc::ProstCodec),
        )
        .await
        .expect_err("unknown path must fail");
        assert_eq!(err.code(), Code::Unimplemented, "{path}: {err:?}");
        assert!(
            err.message().contains(path),
            "{path}: message {:?} lacks the path",
            err.message()
        );
    }
    // The connection survives unknown paths.
    let ok = bounded(
        "EmptyCall by path",
        client.unary::<Empty, Empty, _>(
            Request::new(Empty {}),
            "/grpc.testing.TestService/EmptyCall",
            sockrpc::ProstCodec,
        ),
    )
    .await
    .expect("EmptyCall by path succeeds");
    assert_eq!(ok.into_inner(), Empty {});
    server.stop().await;
}

/// The generated source itself: every rpc of every shape produces a client method, a trait
/// method and a route; streaming ones have their associated stream types.
#[test]
fn every_call_shape_is_generated() {
    let source = include_str!(concat!(env!("OUT_DIR"), "/shared/grpc.testing.rs"));
    for present in [
        "pub async fn empty_call(",
        "pub async fn unary_call(",
        "pub async fn cacheable_unary_call(",
        "pub async fn unimplemented_call(",
        "pub async fn streaming_output_call(",
        "pub async fn streaming_input_call(",
        "pub async fn full_duplex_call(",
        "pub async fn half_duplex_call(",
        "type StreamingOutputCallStream",
        "type FullDuplexCallStream",
        "\"UnimplementedCall\" =>",
        "\"StreamingOutputCall\" =>",
        "\"FullDuplexCall\" =>",
        "pub struct TestServiceServer<",
        "pub struct TestServiceClient<",
    ] {
        assert!(source.contains(present), "generated code lacks {present:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opentelemetry_trace_collector_export() {
    let server = start(sockrpc::Server::builder().add_service(TraceServiceServer::new(Collector)));
    let channel = bounded(
        "connect",
        sockrpc::Channel::connect(server.addr.to_string()),
    )
    .await
    .expect("connect");
    // The type spelled out, so its generation is type-checked with an explicit channel type.
    let mut client: TraceServiceClient<sockrpc::Channel> = TraceServiceClient::new(channel);
    let span = |name: &str| Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: name.to_owned(),
        ..Default::default()
    };
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span("GET /a"), span(""), span("db.query")],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let reply = bounded("Export", client.export(request))
        .await
        .expect("Export succeeds")
        .into_inner();
    let partial = reply.partial_success.expect("partial_success set");
    assert_eq!(partial.rejected_spans, 1);
    assert_eq!(partial.error_message, "accepted: GET /a,db.query");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_rpcs_of_all_shapes_round_trip() {
    use sockrpc_tests::shared::grpc::testing::ResponseParameters;
    let server = start(sockrpc::Server::builder().add_service(TestServiceServer::new(Interop)));
    let mut client = TestServiceClient::connect(server.addr)
        .await
        .expect("connect");
    let sizes = [31415, 9, 2653, 58979];

    // Server streaming: one request, one response per requested size, in order.
    let request = StreamingOutputCallRequest {
        response_parameters: sizes
            .iter()
            .map(|&size| ResponseParameters {
                size,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let mut responses = tokio::time::timeout(STEP, client.streaming_output_call(request))
        .await
        .expect("bounded")
        .expect("call")
        .into_inner();
    for size in sizes {
        let response = responses.message().await.expect("message").expect("some");
        assert_eq!(response.payload.expect("payload").body.len(), size as usize);
    }
    assert!(responses.message().await.expect("end").is_none());

    // Client streaming: the server sums what it read.
    let requests = stream::iter(
        [27182usize, 8, 1828, 45904].map(|n| StreamingInputCallRequest {
            payload: Some(Payload {
                r#type: 0,
                body: vec![0; n],
            }),
            ..Default::default()
        }),
    );
    let sum = tokio::time::timeout(STEP, client.streaming_input_call(requests))
        .await
        .expect("bounded")
        .expect("call")
        .into_inner();
    assert_eq!(sum.aggregated_payload_size, 74922);

    // Bidi: each request answered in turn, sizes matched.
    let requests = stream::iter(sizes.map(|size| StreamingOutputCallRequest {
        response_parameters: vec![ResponseParameters {
            size,
            ..Default::default()
        }],
        ..Default::default()
    }));
    let mut responses = tokio::time::timeout(STEP, client.full_duplex_call(requests))
        .await
        .expect("bounded")
        .expect("call")
        .into_inner();
    for size in sizes {
        let response = tokio::time::timeout(STEP, responses.message())
            .await
            .expect("bounded")
            .expect("message")
            .expect("some");
        assert_eq!(response.payload.expect("payload").body.len(), size as usize);
    }
    assert!(responses.message().await.expect("end").is_none());

    // An empty client stream is a valid call.
    let sum = client
        .streaming_input_call(stream::iter(Vec::<StreamingInputCallRequest>::new()))
        .await
        .expect("empty stream")
        .into_inner();
    assert_eq!(sum.aggregated_payload_size, 0);
    server.stop().await;
}
