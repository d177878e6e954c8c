//! The interop client: one `async fn` per test case of the interop spec, following its
//! procedure and asserts. Each returns `Ok(())`, or an error saying what was expected and what
//! came back.
//!
//! Where the spec speaks of HTTP/2, the cases assert sockrpc's equivalent and say so: a call's
//! OPEN frame plays the HTTP/2 HEADERS frame, CANCEL plays `RST_STREAM(CANCEL)`, END_STREAM on
//! the last MESSAGE is the half-close, END carries status and trailers, and a MESSAGE's
//! `FLAG_COMPRESSED` is the compressed-flag byte (the compression cases, gzip, are in
//! `compressed.rs`).

use crate::pb::test_service_client::TestServiceClient;
use crate::pb::unimplemented_service_client::UnimplementedServiceClient;
use crate::pb::{
    EchoStatus, Empty, Payload, PayloadType, ResponseParameters, SimpleRequest,
    StreamingInputCallRequest, StreamingOutputCallRequest, StreamingOutputCallResponse,
};
use crate::server::{ECHO_INITIAL_KEY, ECHO_TRAILING_KEY};
use futures_util::stream::{self, BoxStream, StreamExt};
use sockrpc::{Channel, Code, Request, Status, Streaming};
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;

pub use crate::cancel::{cancel_after_begin, cancel_after_first_response};
pub use crate::compressed::{
    client_compressed_streaming, client_compressed_unary, server_compressed_streaming,
    server_compressed_unary,
};
pub use crate::soak::{channel_soak, rpc_soak, SoakConfig};

/// A connected interop client.
pub type Client = TestServiceClient<Channel>;

/// Every case [`run_case`] runs, by its name in the interop spec.
pub const CASES: &[&str] = &[
    "empty_unary",
    "large_unary",
    "client_compressed_unary",
    "server_compressed_unary",
    "client_streaming",
    "client_compressed_streaming",
    "server_streaming",
    "server_compressed_streaming",
    "ping_pong",
    "empty_stream",
    "cancel_after_begin",
    "cancel_after_first_response",
    "timeout_on_sleeping_server",
    "status_code_and_message",
    "special_status_message",
    "unimplemented_method",
    "unimplemented_service",
    "custom_metadata",
    "rpc_soak",
    "channel_soak",
];

/// How long any single step of a case may take before the case fails as hung.
pub const STEP: Duration = Duration::from_secs(20);

/// The value `custom_metadata` sends under [`ECHO_INITIAL_KEY`].
pub const ECHO_INITIAL_VALUE: &str = "test_initial_metadata_value";
/// The value `custom_metadata` sends under [`ECHO_TRAILING_KEY`].
pub const ECHO_TRAILING_VALUE: [u8; 3] = [0xab, 0xab, 0xab];
/// The message `special_status_message` asks the server to fail with, exactly as in the spec.
pub const SPECIAL_STATUS_MESSAGE: &str =
    "\t\ntest with whitespace\r\nand Unicode BMP \u{263a} and non-BMP \u{1f608}\t\n";

/// Connects a client to `addr` (`"host:port"` or `"tcp://host:port"`).
pub async fn connect(addr: &str) -> Result<Client, String> {
    within("connect", TestServiceClient::connect(addr.to_owned()))
        .await?
        .map_err(|s| failed(&format!("connecting to {addr}"), &s))
}

/// Runs the case `name` (one of [`CASES`]) against the server at `addr`, on a new channel; the
/// soak cases run with [`SoakConfig::default`] (the spec's defaults) and log every iteration.
pub async fn run_case(name: &str, addr: &str) -> Result<(), String> {
    if !CASES.contains(&name) {
        return Err(format!(
            "unknown test case {name:?}; known cases: {}",
            CASES.join(", ")
        ));
    }
    let soak = SoakConfig {
        log: true,
        ..SoakConfig::default()
    };
    if name == "channel_soak" {
        return channel_soak(addr, &soak).await;
    }
    let mut client = connect(addr).await?;
    match name {
        "empty_unary" => empty_unary(&mut client).await,
        "large_unary" => large_unary(&mut client).await,
        "client_compressed_unary" => client_compressed_unary(&mut client).await,
        "server_compressed_unary" => server_compressed_unary(&mut client).await,
        "client_compressed_streaming" => client_compressed_streaming(&mut client).await,
        "server_compressed_streaming" => server_compressed_streaming(&mut client).await,
        "client_streaming" => client_streaming(&mut client).await,
        "server_streaming" => server_streaming(&mut client).await,
        "ping_pong" => ping_pong(&mut client).await,
        "empty_stream" => empty_stream(&mut client).await,
        "cancel_after_begin" => cancel_after_begin(&mut client).await,
        "cancel_after_first_response" => cancel_after_first_response(&mut client).await,
        "timeout_on_sleeping_server" => timeout_on_sleeping_server(&mut client).await,
        "status_code_and_message" => status_code_and_message(&mut client).await,
        "special_status_message" => special_status_message(&mut client).await,
        "unimplemented_method" => unimplemented_method(&mut client).await,
        "unimplemented_service" => unimplemented_service(&mut client).await,
        "custom_metadata" => custom_metadata(&mut client).await,
        "rpc_soak" => rpc_soak(&mut client, &soak).await,
        other => Err(format!("test case {other:?} has no client")),
    }
}

/// `empty_unary`: EmptyCall with the default `Empty` succeeds and answers an `Empty`.
pub async fn empty_unary(client: &mut Client) -> Result<(), String> {
    let response = within("EmptyCall", client.empty_call(Empty {}))
        .await?
        .map_err(|s| failed("EmptyCall", &s))?;
    // "response is non-null": a decoded message is always present; it must be the empty one.
    if *response.get_ref() != (Empty {}) {
        return Err(format!("EmptyCall answered {:?}", response.get_ref()));
    }
    Ok(())
}

/// `large_unary`: a 271828-byte request asking for a 314159-byte response gets it, all zeros.
pub async fn large_unary(client: &mut Client) -> Result<(), String> {
    let response = within("UnaryCall", client.unary_call(large_request()))
        .await?
        .map_err(|s| failed("UnaryCall", &s))?;
    check_payload(
        "UnaryCall response",
        response.get_ref().payload.as_ref(),
        314_159,
    )
}

/// `client_streaming`: four requests of 27182, 8, 1828 and 45904 bytes, then half-close; the
/// aggregated size is 74922.
pub async fn client_streaming(client: &mut Client) -> Result<(), String> {
    let requests: Vec<_> = [27_182, 8, 1_828, 45_904]
        .into_iter()
        .map(|size| StreamingInputCallRequest {
            payload: Some(zeros(size)),
            ..Default::default()
        })
        .collect();
    // The stream ending is the half-close (END_STREAM on the last MESSAGE).
    let response = within(
        "StreamingInputCall",
        client.streaming_input_call(stream::iter(requests)),
    )
    .await?
    .map_err(|s| failed("StreamingInputCall", &s))?;
    let size = response.get_ref().aggregated_payload_size;
    if size != 74_922 {
        return Err(format!(
            "StreamingInputCall: aggregated_payload_size {size}, expected 74922"
        ));
    }
    Ok(())
}

/// `server_streaming`: one request for four responses; exactly four come back, sized 31415, 9,
/// 2653 and 58979 in that order, and the call ends OK.
pub async fn server_streaming(client: &mut Client) -> Result<(), String> {
    let sizes = [31_415, 9, 2_653, 58_979];
    let request = StreamingOutputCallRequest {
        response_parameters: sizes.iter().map(|&s| parameters(s)).collect(),
        ..Default::default()
    };
    let response = within("StreamingOutputCall", client.streaming_output_call(request))
        .await?
        .map_err(|s| failed("StreamingOutputCall", &s))?;
    let mut responses = response.into_inner();
    for (i, &size) in sizes.iter().enumerate() {
        let what = format!("StreamingOutputCall response {}", i + 1);
        let response = next_response(&what, &mut responses).await?;
        check_payload(&what, response.payload.as_ref(), size)?;
    }
    expect_clean_end("StreamingOutputCall", &mut responses, sizes.len()).await
}

/// `ping_pong`: four request/response rounds on one FullDuplexCall (27182→31415, 8→9,
/// 1828→2653, 45904→58979), each request sent after the previous reply; then half-close, and
/// the call ends OK after exactly four responses.
pub async fn ping_pong(client: &mut Client) -> Result<(), String> {
    let rounds = [(27_182, 31_415), (8, 9), (1_828, 2_653), (45_904, 58_979)];
    let (sender, requests) = request_channel();
    let response = within("FullDuplexCall", client.full_duplex_call(requests))
        .await?
        .map_err(|s| failed("FullDuplexCall", &s))?;
    let mut responses = response.into_inner();
    for (i, &(request_size, response_size)) in rounds.iter().enumerate() {
        let request = StreamingOutputCallRequest {
            response_parameters: vec![parameters(response_size)],
            payload: Some(zeros(request_size)),
            ..Default::default()
        };
        sender.send(request).await.map_err(|_| {
            format!(
                "FullDuplexCall: request {} could not be sent: the call ended",
                i + 1
            )
        })?;
        let what = format!("FullDuplexCall response {}", i + 1);
        let response = next_response(&what, &mut responses).await?;
        check_payload(&what, response.payload.as_ref(), response_size)?;
    }
    drop(sender); // half-close
    expect_clean_end("FullDuplexCall", &mut responses, rounds.len()).await
}

/// `empty_stream`: a FullDuplexCall that half-closes at once ends OK with zero responses.
pub async fn empty_stream(client: &mut Client) -> Result<(), String> {
    let response = within(
        "FullDuplexCall",
        client.full_duplex_call(stream::empty::<StreamingOutputCallRequest>()),
    )
    .await?
    .map_err(|s| failed("FullDuplexCall", &s))?;
    expect_clean_end("FullDuplexCall", &mut response.into_inner(), 0).await
}

/// `timeout_on_sleeping_server`: a FullDuplexCall with a 1 ms deadline sends one 27182-byte
/// request (asking for no response) and waits without half-closing; the call ends with
/// `DEADLINE_EXCEEDED`.
pub async fn timeout_on_sleeping_server(client: &mut Client) -> Result<(), String> {
    let (sender, requests) = request_channel();
    sender
        .send(StreamingOutputCallRequest {
            payload: Some(zeros(27_182)),
            ..Default::default()
        })
        .await
        .map_err(|_| "FullDuplexCall: the request stream was dropped before the call started")?;
    let mut request = Request::new(requests);
    request.set_timeout(Duration::from_millis(1));
    let status = duplex_outcome(client, request).await?;
    // The client keeps its side open for the whole wait.
    drop(sender);
    match status {
        Err(status) if status.code() == Code::DeadlineExceeded => Ok(()),
        Err(status) => Err(format!(
            "FullDuplexCall with a 1 ms deadline: expected DEADLINE_EXCEEDED, got {:?}: {:?}",
            status.code(),
            status.message()
        )),
        Ok(responses) => Err(format!(
            "FullDuplexCall with a 1 ms deadline ended OK after {responses} responses; \
             expected DEADLINE_EXCEEDED"
        )),
    }
}

/// `status_code_and_message`: UnaryCall and FullDuplexCall asking for code 2 with
/// "test status message" end with exactly that code and message.
pub async fn status_code_and_message(client: &mut Client) -> Result<(), String> {
    let echo = EchoStatus {
        code: 2,
        message: "test status message".to_owned(),
    };
    unary_status(client, &echo).await?;
    let request = StreamingOutputCallRequest {
        response_status: Some(echo.clone()),
        ..Default::default()
    };
    // One request, then the half-close.
    let outcome = duplex_outcome(client, Request::new(stream::iter([request]))).await?;
    check_status("FullDuplexCall", outcome.map(|_| ()), &echo)
}

/// `special_status_message`: UnaryCall asking for code 2 with
/// [`SPECIAL_STATUS_MESSAGE`] (tabs, CR/LF, BMP and non-BMP characters) gets that message back
/// byte for byte.
pub async fn special_status_message(client: &mut Client) -> Result<(), String> {
    unary_status(
        client,
        &EchoStatus {
            code: 2,
            message: SPECIAL_STATUS_MESSAGE.to_owned(),
        },
    )
    .await
}

/// `unimplemented_method`: `grpc.testing.TestService/UnimplementedCall` fails with
/// `UNIMPLEMENTED` (12).
pub async fn unimplemented_method(client: &mut Client) -> Result<(), String> {
    let result = within("UnimplementedCall", client.unimplemented_call(Empty {})).await?;
    expect_unimplemented("TestService/UnimplementedCall", result)
}

/// `unimplemented_service`: `grpc.testing.UnimplementedService/UnimplementedCall`, a service
/// the server does not serve, fails with `UNIMPLEMENTED` (12).
pub async fn unimplemented_service(client: &mut Client) -> Result<(), String> {
    let mut other = UnimplementedServiceClient::new(client.clone().into_inner());
    let result = within("UnimplementedCall", other.unimplemented_call(Empty {})).await?;
    expect_unimplemented("UnimplementedService/UnimplementedCall", result)
}

/// `custom_metadata`: a UnaryCall (271828 → 314159 bytes) and a FullDuplexCall (one such
/// request, then half-close) carrying `x-grpc-test-echo-initial` and
/// `x-grpc-test-echo-trailing-bin` get the first back in leading metadata (sockrpc's HEADERS
/// frame) and the second in trailing metadata (the END frame), values unchanged.
pub async fn custom_metadata(client: &mut Client) -> Result<(), String> {
    let response = within(
        "UnaryCall",
        client.unary_call(with_echo_metadata(large_request())?),
    )
    .await?
    .map_err(|s| failed("UnaryCall with metadata", &s))?;
    check_payload(
        "UnaryCall response",
        response.get_ref().payload.as_ref(),
        314_159,
    )?;
    check_echo("UnaryCall", response.metadata(), Some(response.trailers()))?;

    let request = StreamingOutputCallRequest {
        response_parameters: vec![parameters(314_159)],
        payload: Some(zeros(271_828)),
        ..Default::default()
    };
    let request = with_echo_metadata(stream::iter([request]))?;
    let response = within("FullDuplexCall", client.full_duplex_call(request))
        .await?
        .map_err(|s| failed("FullDuplexCall with metadata", &s))?;
    let leading = response.metadata().clone();
    let mut responses = response.into_inner();
    let first = next_response("FullDuplexCall response 1", &mut responses).await?;
    check_payload("FullDuplexCall response 1", first.payload.as_ref(), 314_159)?;
    expect_clean_end("FullDuplexCall", &mut responses, 1).await?;
    check_echo("FullDuplexCall", &leading, responses.trailers_now())
}

// ---- helpers ----

/// Bounds `future` by [`STEP`].
pub(crate) async fn within<T>(what: &str, future: impl Future<Output = T>) -> Result<T, String> {
    tokio::time::timeout(STEP, future)
        .await
        .map_err(|_| format!("{what}: no answer within {STEP:?}"))
}

pub(crate) fn failed(what: &str, status: &Status) -> String {
    format!(
        "{what}: expected OK, got {:?}: {:?}",
        status.code(),
        status.message()
    )
}

pub(crate) fn zeros(size: usize) -> Payload {
    Payload {
        r#type: PayloadType::Compressable as i32,
        body: vec![0; size],
    }
}

pub(crate) fn parameters(size: i32) -> ResponseParameters {
    ResponseParameters {
        size,
        ..Default::default()
    }
}

/// large_unary's request: 271828 zero bytes, asking for 314159.
pub(crate) fn large_request() -> SimpleRequest {
    SimpleRequest {
        response_type: PayloadType::Compressable as i32,
        response_size: 314_159,
        payload: Some(zeros(271_828)),
        ..Default::default()
    }
}

/// A payload is present, of the compressable type, `size` bytes long and all zeros.
pub(crate) fn check_payload(
    what: &str,
    payload: Option<&Payload>,
    size: i32,
) -> Result<(), String> {
    let payload = payload.ok_or_else(|| format!("{what}: no payload"))?;
    let expected = usize::try_from(size).unwrap_or(0);
    if payload.body.len() != expected {
        return Err(format!(
            "{what}: payload body is {} bytes, expected {expected}",
            payload.body.len()
        ));
    }
    if let Some(at) = payload.body.iter().position(|&b| b != 0) {
        return Err(format!("{what}: payload byte {at} is not zero"));
    }
    if payload.r#type != PayloadType::Compressable as i32 {
        return Err(format!(
            "{what}: payload type {}, expected COMPRESSABLE",
            payload.r#type
        ));
    }
    Ok(())
}

/// A request stream the case feeds message by message; dropping the sender half-closes.
pub(crate) fn request_channel<T: Send + 'static>() -> (mpsc::Sender<T>, BoxStream<'static, T>) {
    let (sender, receiver) = mpsc::channel(4);
    let requests = stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|message| (message, receiver))
    });
    (sender, requests.boxed())
}

pub(crate) async fn next_response(
    what: &str,
    responses: &mut Streaming<StreamingOutputCallResponse>,
) -> Result<StreamingOutputCallResponse, String> {
    match within(what, responses.message()).await? {
        Ok(Some(response)) => Ok(response),
        Ok(None) => Err(format!("{what}: the stream ended OK without it")),
        Err(status) => Err(failed(what, &status)),
    }
}

/// After `received` responses the stream ends, with OK, and has no more.
async fn expect_clean_end(
    what: &str,
    responses: &mut Streaming<StreamingOutputCallResponse>,
    received: usize,
) -> Result<(), String> {
    match within(what, responses.message()).await? {
        Ok(None) => Ok(()),
        Ok(Some(_)) => Err(format!(
            "{what}: more than the expected {received} responses"
        )),
        Err(status) => Err(failed(
            &format!("{what} (after {received} responses)"),
            &status,
        )),
    }
}

/// Runs a FullDuplexCall to its end: `Ok(responses received)` when it ended OK, or the status
/// it ended with, whether the call itself or its response stream carried it.
async fn duplex_outcome(
    client: &mut Client,
    request: Request<impl futures_util::Stream<Item = StreamingOutputCallRequest> + Send + 'static>,
) -> Result<Result<usize, Status>, String> {
    let response = match within("FullDuplexCall", client.full_duplex_call(request)).await? {
        Ok(response) => response,
        Err(status) => return Ok(Err(status)),
    };
    let mut responses = response.into_inner();
    let mut received = 0;
    loop {
        match within("FullDuplexCall", responses.message()).await? {
            Ok(Some(_)) => received += 1,
            Ok(None) => return Ok(Ok(received)),
            Err(status) => return Ok(Err(status)),
        }
    }
}

async fn unary_status(client: &mut Client, echo: &EchoStatus) -> Result<(), String> {
    let request = SimpleRequest {
        response_status: Some(echo.clone()),
        ..Default::default()
    };
    let result = within("UnaryCall", client.unary_call(request)).await?;
    check_status("UnaryCall", result.map(|_| ()), echo)
}

fn check_status(what: &str, result: Result<(), Status>, echo: &EchoStatus) -> Result<(), String> {
    let status = match result {
        Ok(()) => {
            return Err(format!(
                "{what}: succeeded; expected code {} with message {:?}",
                echo.code, echo.message
            ))
        }
        Err(status) => status,
    };
    let code = i64::from(status.code().as_u32());
    if code != i64::from(echo.code) || status.message() != echo.message {
        return Err(format!(
            "{what}: expected code {} with message {:?}, got code {code} ({:?}) with message {:?}",
            echo.code,
            echo.message,
            status.code(),
            status.message()
        ));
    }
    Ok(())
}

fn expect_unimplemented<T>(what: &str, result: Result<T, Status>) -> Result<(), String> {
    match result {
        Err(status) if status.code() == Code::Unimplemented => Ok(()),
        Err(status) => Err(format!(
            "{what}: expected UNIMPLEMENTED (12), got {:?}: {:?}",
            status.code(),
            status.message()
        )),
        Ok(_) => Err(format!("{what}: succeeded; expected UNIMPLEMENTED (12)")),
    }
}

fn with_echo_metadata<T>(message: T) -> Result<Request<T>, String> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert_str(ECHO_INITIAL_KEY, ECHO_INITIAL_VALUE)
        .map_err(|e| e.to_string())?;
    request
        .metadata_mut()
        .insert_bin(ECHO_TRAILING_KEY, ECHO_TRAILING_VALUE.to_vec().into())
        .map_err(|e| e.to_string())?;
    Ok(request)
}

fn check_echo(
    what: &str,
    leading: &sockrpc::MetadataMap,
    trailing: Option<&sockrpc::MetadataMap>,
) -> Result<(), String> {
    let initial = leading.get_str(ECHO_INITIAL_KEY);
    if initial != Some(ECHO_INITIAL_VALUE) {
        return Err(format!(
            "{what}: leading metadata {ECHO_INITIAL_KEY} is {initial:?}, expected \
             {ECHO_INITIAL_VALUE:?} (leading metadata: {leading:?})"
        ));
    }
    let trailer = trailing.and_then(|t| t.get_bin_bytes(ECHO_TRAILING_KEY));
    if trailer != Some(&ECHO_TRAILING_VALUE[..]) {
        return Err(format!(
            "{what}: trailing metadata {ECHO_TRAILING_KEY} is {trailer:?}, expected \
             {ECHO_TRAILING_VALUE:?} (trailing metadata: {trailing:?})"
        ));
    }
    Ok(())
}
