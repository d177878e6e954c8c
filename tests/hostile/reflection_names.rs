//! Reflection fed names as long as the message limit lets a request carry (4 MiB): each lookup
//! that finds nothing answers `NOT_FOUND` on the stream, and the stream goes on.
//!
//! Every answer carries its request back (`original_request`, as grpc-go's does), and the
//! error quoted the name whole as well: a 3 MiB name made a 6 MiB answer, past the server's
//! send limit, and the whole stream ended `RESOURCE_EXHAUSTED` instead of answering the lookup
//! (and the server sent back twice what it was sent). An error now quotes at most 256 bytes of
//! a name. Carried back whole, a request at the limit still made an answer over it, and a long
//! `host` went back twice (`valid_host` too): an answer now carries each of the request's
//! strings back cut at 1 KiB, so it is never more than a few KiB beside what it found.
//! A type found under a name padded with leading dots (which the lookup skips) is named back
//! as the server knows it, not as asked: whole, such a name made an answer over the limit too.

use crate::support::{bounded, start_serving};
use prost::Message as _;
use sockrpc::{Code, Request};
use sockrpc_reflection::pb::server_reflection_client::ServerReflectionClient;
use sockrpc_reflection::pb::server_reflection_request::MessageRequest;
use sockrpc_reflection::pb::server_reflection_response::MessageResponse;
use sockrpc_reflection::pb::{ExtensionRequest, ServerReflectionRequest};
use sockrpc_reflection::ReflectionExt;

/// A name under the message limit, whose answer quoting it whole would be over it.
const NAME: usize = 3 << 20;

fn ask(message_request: MessageRequest) -> ServerReflectionRequest {
    ServerReflectionRequest {
        host: String::new(),
        message_request: Some(message_request),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_of_long_unknown_names_answer_not_found_and_the_stream_goes_on() {
    let server = start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .add_reflection(&[])
            .serve_with_listener_and_shutdown(listener, shutdown)
    });
    let mut client = bounded(
        "connect",
        ServerReflectionClient::connect(format!("tcp://{}", server.addr)),
    )
    .await
    .expect("connect");
    let name = "x".repeat(NAME);
    let lookups = [
        MessageRequest::FileContainingSymbol(name.clone()),
        MessageRequest::FileByFilename(name.clone()),
        MessageRequest::FileContainingExtension(ExtensionRequest {
            containing_type: name.clone(),
            extension_number: 1,
        }),
        MessageRequest::AllExtensionNumbersOfType(name),
    ];
    let mut requests: Vec<_> = lookups.into_iter().map(ask).collect();
    let sizes: Vec<usize> = requests.iter().map(|r| r.encoded_len()).collect();
    // Then a lookup that finds something: the stream is still there.
    requests.push(ask(MessageRequest::ListServices(String::new())));
    let mut answers = bounded(
        "open",
        client.server_reflection_info(Request::new(futures_util::stream::iter(requests))),
    )
    .await
    .expect("a stream")
    .into_inner();
    for (i, size) in sizes.into_iter().enumerate() {
        let answer = bounded("an answer", answers.message())
            .await
            .unwrap_or_else(|status| panic!("lookup {i}: the stream failed: {status}"))
            .expect("an answer per request");
        let grown = answer.encoded_len().saturating_sub(size);
        assert!(
            grown < 1024,
            "lookup {i}: the answer is {grown} bytes over its request"
        );
        match answer.message_response {
            Some(MessageResponse::ErrorResponse(error)) => {
                assert_eq!(error.error_code, Code::NotFound as i32, "lookup {i}");
                assert!(error.error_message.len() < 512, "lookup {i}");
            }
            other => panic!("lookup {i}: {other:?}"),
        }
    }
    let last = bounded("the list", answers.message())
        .await
        .expect("the stream goes on")
        .expect("an answer");
    assert!(
        matches!(
            last.message_response,
            Some(MessageResponse::ListServicesResponse(_))
        ),
        "{last:?}"
    );
    server.stop().await;
}

/// The largest request the server takes: a name that fills it to the message limit (4 MiB).
const LIMIT: usize = 4 << 20;

/// Opens a reflection stream to a fresh server, sends `requests`, and returns each answer (or
/// the status the stream failed with), and the server to stop.
async fn answers_to(
    requests: Vec<ServerReflectionRequest>,
) -> (
    Vec<Result<MessageResponse, sockrpc::Status>>,
    crate::support::Running,
) {
    let server = start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .add_reflection(&[])
            .serve_with_listener_and_shutdown(listener, shutdown)
    });
    let mut client = bounded(
        "connect",
        ServerReflectionClient::connect(format!("tcp://{}", server.addr)),
    )
    .await
    .expect("connect");
    let count = requests.len();
    let mut answers = bounded(
        "open",
        client.server_reflection_info(Request::new(futures_util::stream::iter(requests))),
    )
    .await
    .expect("a stream")
    .into_inner();
    let mut got = Vec::new();
    for _ in 0..count {
        match bounded("an answer", answers.message()).await {
            Ok(Some(answer)) => got.push(Ok(answer.message_response.expect("a response"))),
            Ok(None) => break,
            Err(status) => {
                got.push(Err(status));
                break;
            }
        }
    }
    (got, server)
}

/// A name that fills the request to the message limit: its answer, the request carried back
/// and an error quoting the name, was a few hundred bytes over the server's send limit (the
/// receive limit), and the whole stream failed `RESOURCE_EXHAUSTED`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_fills_the_request_to_the_limit_answers_not_found() {
    let name = "x".repeat(LIMIT - 5);
    let request = ask(MessageRequest::FileContainingSymbol(name));
    assert_eq!(request.encoded_len(), LIMIT, "the largest request taken");
    let requests = vec![request, ask(MessageRequest::ListServices(String::new()))];
    let (answers, server) = answers_to(requests).await;
    match answers.first() {
        Some(Ok(MessageResponse::ErrorResponse(error))) => {
            assert_eq!(error.error_code, Code::NotFound as i32);
        }
        other => panic!("the lookup: {other:?}"),
    }
    assert!(
        matches!(
            answers.get(1),
            Some(Ok(MessageResponse::ListServicesResponse(_)))
        ),
        "the stream goes on: {:?}",
        answers.get(1)
    );
    server.stop().await;
}

/// A long `host`: every answer carries it back twice (`valid_host`, and in `original_request`),
/// so a 3 MiB host made a 6 MiB answer, over the send limit, and the whole stream failed
/// `RESOURCE_EXHAUSTED`, whatever it asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_host_is_not_carried_back_twice() {
    let request = ServerReflectionRequest {
        host: "h".repeat(NAME),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let requests = vec![request, ask(MessageRequest::ListServices(String::new()))];
    let (answers, server) = answers_to(requests).await;
    for (i, answer) in answers.iter().enumerate() {
        assert!(
            matches!(answer, Ok(MessageResponse::ListServicesResponse(_))),
            "answer {i}: {answer:?}"
        );
    }
    assert_eq!(answers.len(), 2, "an answer per request");
    server.stop().await;
}

/// A type the server has, named with leading dots (its lookup skips them) that fill the request
/// to the message limit: found, its answer named the type back as asked (`base_type_name`),
/// whole, beside the request carried back, a KiB over the send limit, and the whole stream
/// failed `RESOURCE_EXHAUSTED`. The answer names the type as the server knows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_found_under_a_padded_name_is_named_as_the_server_knows_it() {
    let name = "grpc.reflection.v1.ServerReflectionRequest";
    let padded = format!("{}{name}", ".".repeat(LIMIT - 5 - name.len()));
    let request = ask(MessageRequest::AllExtensionNumbersOfType(padded));
    assert_eq!(request.encoded_len(), LIMIT, "the largest request taken");
    let requests = vec![request, ask(MessageRequest::ListServices(String::new()))];
    let (answers, server) = answers_to(requests).await;
    match answers.first() {
        Some(Ok(MessageResponse::AllExtensionNumbersResponse(found))) => {
            assert_eq!(found.base_type_name, name);
        }
        other => panic!("the lookup: {other:?}"),
    }
    assert!(
        matches!(
            answers.get(1),
            Some(Ok(MessageResponse::ListServicesResponse(_)))
        ),
        "the stream goes on: {:?}",
        answers.get(1)
    );
    server.stop().await;
}
