//! grpc-java's `AbstractInteropTest` cases that `sockrpc-interop` (gRPC's interop spec) does
//! not run, against its interop server over loopback: the half-duplex call (nothing before the
//! half-close), the full-duplex call with several answers a request, a 10 MiB request and an
//! 8 MiB answer, deadlines that pass before and during a server stream, and the exact message limits
//! each way.

use crate::support::*;
use futures_util::stream;
use prost::Message;
use sockrpc::{Channel, Code, Endpoint, Request, Server};
use sockrpc_interop::pb::test_service_client::TestServiceClient;
use sockrpc_interop::pb::{
    Payload, PayloadType, ResponseParameters, SimpleRequest, StreamingOutputCallRequest,
    StreamingOutputCallResponse,
};
use sockrpc_interop::InteropServer;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// 10 MiB, grpc-java's `veryLargeRequest` / `veryLargeResponse` size.
const VERY_LARGE: usize = 10 * 1024 * 1024;

/// The largest answer the interop server builds.
const LARGEST_ANSWER: usize = 8 * 1024 * 1024;

/// The message limit both ends get when a case needs room for [`VERY_LARGE`] messages.
const ROOM: usize = VERY_LARGE + 1024;

/// The interop server on `127.0.0.1:0`, taking messages up to `limit`; stops when dropped.
struct Interop {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

fn start(limit: usize) -> Interop {
    let listener =
        sockrpc::transport::bind_tcp("127.0.0.1:0".parse().expect("address"), &Default::default())
            .expect("bind");
    let addr = listener.local_addr().expect("address");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(
        Server::builder()
            .max_decoding_message_size(limit)
            .add_service(
                InteropServer::new()
                    .into_service()
                    .max_decoding_message_size(limit),
            )
            .serve_with_listener_and_shutdown(listener, async move {
                let _ = stopped.await;
            }),
    );
    Interop { addr, _stop: stop }
}

async fn connect(addr: SocketAddr, limit: usize) -> TestServiceClient<Channel> {
    let endpoint = Endpoint::new("127.0.0.1", addr.port())
        .pool_size(1)
        .max_decoding_message_size(limit);
    let channel = bounded("connect", Channel::connect(endpoint))
        .await
        .expect("connect");
    TestServiceClient::new(channel).max_decoding_message_size(limit)
}

fn zeros(size: usize) -> Option<Payload> {
    Some(Payload {
        r#type: PayloadType::Compressable as i32,
        body: vec![0; size],
    })
}

fn sizes(sizes: &[i32], interval_us: i32) -> Vec<ResponseParameters> {
    sizes
        .iter()
        .map(|&size| ResponseParameters {
            size,
            interval_us,
            ..Default::default()
        })
        .collect()
}

fn body_len(response: &StreamingOutputCallResponse) -> usize {
    response.payload.as_ref().map_or(0, |p| p.body.len())
}

/// `halfDuplexCallShouldSucceed`: the half-duplex server answers nothing until the client
/// half-closes, then answers every request, in order.
#[tokio::test]
async fn half_duplex_call_answers_after_the_half_close() {
    const SIZES: [i32; 4] = [31_415, 9, 2_653, 58_979];
    let server = start(4 << 20);
    let mut client = connect(server.addr, 4 << 20).await;
    let (tx, rx) = mpsc::unbounded_channel();
    let requests = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
    let mut responses = bounded("HalfDuplexCall", client.half_duplex_call(requests))
        .await
        .expect("the call starts")
        .into_inner();
    for size in SIZES {
        tx.send(StreamingOutputCallRequest {
            response_parameters: sizes(&[size], 0),
            ..Default::default()
        })
        .expect("queued");
    }
    let early = tokio::time::timeout(QUIET, responses.message()).await;
    assert!(early.is_err(), "an answer before the half-close: {early:?}");
    drop(tx);
    for size in SIZES {
        let response = bounded("an answer", responses.message())
            .await
            .expect("ok")
            .expect("an answer");
        assert_eq!(body_len(&response), size as usize);
    }
    assert!(bounded("the end", responses.message())
        .await
        .expect("OK")
        .is_none());
}

/// `fullDuplexCallShouldSucceed`: four requests, each asking for four answers of different
/// sizes a millisecond apart, get the sixteen answers in order.
#[tokio::test]
async fn full_duplex_call_with_several_answers_per_request() {
    const SIZES: [i32; 4] = [50, 100, 150, 200];
    let server = start(4 << 20);
    let mut client = connect(server.addr, 4 << 20).await;
    let requests: Vec<_> = (0..4)
        .map(|_| StreamingOutputCallRequest {
            response_parameters: sizes(&SIZES, 1_000),
            ..Default::default()
        })
        .collect();
    let mut responses = bounded(
        "FullDuplexCall",
        client.full_duplex_call(stream::iter(requests)),
    )
    .await
    .expect("the call starts")
    .into_inner();
    for i in 0..16 {
        let response = bounded("an answer", responses.message())
            .await
            .expect("ok")
            .expect("an answer");
        assert_eq!(body_len(&response), SIZES[i % 4] as usize, "answer {i}");
    }
    assert!(bounded("the end", responses.message())
        .await
        .expect("OK")
        .is_none());
}

/// `veryLargeRequest`: a 10 MiB request to a server configured for it.
#[tokio::test]
async fn a_very_large_request() {
    let server = start(ROOM);
    let mut client = connect(server.addr, ROOM).await;
    let response = bounded(
        "UnaryCall",
        client.unary_call(SimpleRequest {
            response_type: PayloadType::Compressable as i32,
            response_size: 10,
            payload: zeros(VERY_LARGE),
            ..Default::default()
        }),
    )
    .await
    .expect("the call succeeds")
    .into_inner();
    assert_eq!(response.payload.map(|p| p.body.len()), Some(10));
}

/// `veryLargeResponse`: an 8 MiB answer (grpc-java asks for 10 MiB; the interop server builds
/// at most 8 MiB, a cap against requests for huge answers) to a client configured for it: still
/// twice the default limit.
#[tokio::test]
async fn a_very_large_response() {
    let server = start(ROOM);
    let mut client = connect(server.addr, ROOM).await;
    let response = bounded(
        "UnaryCall",
        client.unary_call(SimpleRequest {
            response_type: PayloadType::Compressable as i32,
            response_size: LARGEST_ANSWER as i32,
            payload: zeros(10),
            ..Default::default()
        }),
    )
    .await
    .expect("the call succeeds")
    .into_inner();
    assert_eq!(response.payload.map(|p| p.body.len()), Some(LARGEST_ANSWER));
}

/// `deadlineExceeded` and `deadlineNotExceeded`: a stream whose first answer comes after 20 s
/// fails `DEADLINE_EXCEEDED` at its 100 ms deadline; the same call with a 10 s deadline and an
/// answer at once succeeds.
#[tokio::test]
async fn deadline_exceeded_and_not_exceeded() {
    let server = start(4 << 20);
    let mut client = connect(server.addr, 4 << 20).await;
    let mut slow = Request::new(StreamingOutputCallRequest {
        response_parameters: sizes(&[1], 20_000_000),
        ..Default::default()
    });
    slow.set_timeout(Duration::from_millis(100));
    let outcome = bounded("a call past its deadline", async {
        let mut responses = client.streaming_output_call(slow).await?.into_inner();
        responses.message().await
    })
    .await;
    assert_eq!(
        outcome.expect_err("deadline").code(),
        Code::DeadlineExceeded
    );

    let mut quick = Request::new(StreamingOutputCallRequest {
        response_parameters: sizes(&[1], 0),
        ..Default::default()
    });
    quick.set_timeout(Duration::from_secs(10));
    let mut responses = bounded(
        "a call within its deadline",
        client.streaming_output_call(quick),
    )
    .await
    .expect("starts")
    .into_inner();
    let first = bounded("the answer", responses.message()).await;
    assert_eq!(first.expect("ok").map(|r| body_len(&r)), Some(1));
}

/// `deadlineExceededServerStreaming`: a server stream whose second answer would come after its
/// deadline delivers the first, then `DEADLINE_EXCEEDED`.
#[tokio::test]
async fn deadline_exceeded_mid_server_stream() {
    let server = start(4 << 20);
    let mut client = connect(server.addr, 4 << 20).await;
    let mut parameters = sizes(&[1], 0);
    parameters.extend(sizes(&[1], 20_000_000));
    let mut request = Request::new(StreamingOutputCallRequest {
        response_parameters: parameters,
        ..Default::default()
    });
    request.set_timeout(Duration::from_secs(1));
    let mut responses = bounded("StreamingOutputCall", client.streaming_output_call(request))
        .await
        .expect("starts")
        .into_inner();
    let first = bounded("the first answer", responses.message())
        .await
        .expect("ok")
        .expect("an answer");
    assert_eq!(body_len(&first), 1);
    let err = bounded("the deadline", responses.message())
        .await
        .expect_err("deadline exceeded");
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
}

/// `maxInboundSize_exact` / `maxInboundSize_tooBig`: a client whose receive limit is the
/// answer's exact size takes it; one byte less refuses it with `RESOURCE_EXHAUSTED`.
#[tokio::test]
async fn max_inbound_size_exact_and_too_big() {
    let server = start(4 << 20);
    let request = StreamingOutputCallRequest {
        response_parameters: sizes(&[1], 0),
        ..Default::default()
    };
    let answer = StreamingOutputCallResponse {
        payload: zeros(1),
        ..Default::default()
    };
    let exact = answer.encoded_len();
    let mut client = connect(server.addr, 4 << 20)
        .await
        .max_decoding_message_size(exact);
    let mut responses = bounded(
        "the exact call",
        client.streaming_output_call(request.clone()),
    )
    .await
    .expect("starts")
    .into_inner();
    let got = bounded("the answer", responses.message()).await;
    assert_eq!(
        got.expect("within the limit").map(|r| body_len(&r)),
        Some(1)
    );

    let mut client = client.max_decoding_message_size(exact - 1);
    let outcome = bounded("the call over the limit", async {
        let mut responses = client.streaming_output_call(request).await?.into_inner();
        responses.message().await
    })
    .await;
    let err = outcome.expect_err("over the receive limit");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
}

/// `maxOutboundSize_exact` / `maxOutboundSize_tooBig`: a client whose send limit is the
/// request's exact size sends it; one byte less refuses it with `RESOURCE_EXHAUSTED`.
#[tokio::test]
async fn max_outbound_size_exact_and_too_big() {
    let server = start(4 << 20);
    let request = SimpleRequest {
        response_type: PayloadType::Compressable as i32,
        response_size: 1,
        payload: zeros(1),
        ..Default::default()
    };
    let exact = request.encoded_len();
    let client = connect(server.addr, 4 << 20).await;
    let mut fits = client.clone().max_encoding_message_size(exact);
    bounded("the exact call", fits.unary_call(request.clone()))
        .await
        .expect("within the limit");
    let mut over = client.max_encoding_message_size(exact - 1);
    let err = bounded("the call over the limit", over.unary_call(request))
        .await
        .expect_err("over the send limit");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
}
