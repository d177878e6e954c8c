//! Reflection over a real socket: a server with reflection mounted in one call answers
//! list_services, file_containing_symbol (with the imports first), file_by_filename, and a
//! NOT_FOUND error on the stream for an unknown symbol, under both v1 and v1alpha names.

use futures_util::StreamExt;
use prost::Message;
use sockrpc::{Channel, Request, Server};
use sockrpc_reflection::pb::server_reflection_client::ServerReflectionClient;
use sockrpc_reflection::pb::server_reflection_request::MessageRequest;
use sockrpc_reflection::pb::server_reflection_response::MessageResponse;
use sockrpc_reflection::pb::ServerReflectionRequest;
use sockrpc_reflection::ReflectionExt;
use std::time::Duration;

fn ask(request: MessageRequest) -> ServerReflectionRequest {
    ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    }
}

fn file_names(response: &MessageResponse) -> Vec<String> {
    match response {
        MessageResponse::FileDescriptorResponse(files) => files
            .file_descriptor_proto
            .iter()
            .map(|bytes| {
                sockrpc::codegen::prost_types::FileDescriptorProto::decode(bytes.as_slice())
                    .expect("a file descriptor")
                    .name()
                    .to_owned()
            })
            .collect(),
        other => panic!("expected files, got {other:?}"),
    }
}

async fn next(
    answers: &mut sockrpc::Streaming<sockrpc_reflection::pb::ServerReflectionResponse>,
) -> MessageResponse {
    tokio::time::timeout(Duration::from_secs(10), answers.next())
        .await
        .expect("in time")
        .expect("an answer")
        .expect("not an error")
        .message_response
        .expect("a response")
}

#[tokio::test]
async fn reflection_answers_on_one_stream() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    // The server reflects its own descriptors: reflection.proto registers nothing else.
    let server = Server::builder().add_reflection(&[]);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve_with_listener_and_shutdown(listener, async {
        let _ = stop_rx.await;
    }));
    let channel = Channel::connect(format!("tcp://{addr}"))
        .await
        .expect("connect");
    let mut client = ServerReflectionClient::new(channel.clone());
    let requests = futures_util::stream::iter(vec![
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol(
            "grpc.reflection.v1.ServerReflection.ServerReflectionInfo".into(),
        )),
        ask(MessageRequest::FileByFilename(
            "grpc/reflection/v1/reflection.proto".into(),
        )),
        ask(MessageRequest::FileContainingSymbol("no.Such".into())),
    ]);
    let mut answers = tokio::time::timeout(
        Duration::from_secs(10),
        client.server_reflection_info(Request::new(requests)),
    )
    .await
    .expect("in time")
    .expect("call")
    .into_inner();
    match next(&mut answers).await {
        MessageResponse::ListServicesResponse(list) => {
            let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(names, ["grpc.reflection.v1.ServerReflection"]);
        }
        other => panic!("expected a list, got {other:?}"),
    }
    assert_eq!(
        file_names(&next(&mut answers).await),
        ["grpc/reflection/v1/reflection.proto"]
    );
    assert_eq!(
        file_names(&next(&mut answers).await),
        ["grpc/reflection/v1/reflection.proto"]
    );
    match next(&mut answers).await {
        MessageResponse::ErrorResponse(error) => {
            assert_eq!(error.error_code, sockrpc::Code::NotFound as i32);
            assert!(error.error_message.contains("no.Such"), "{error:?}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
    drop(answers);

    // The same service under its v1alpha name (identical messages on the wire).
    let mut raw = sockrpc::Client::new(channel.clone());
    let mut alpha = raw
        .streaming(
            Request::new(futures_util::stream::iter([ask(
                MessageRequest::ListServices(String::new()),
            )])),
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            sockrpc::ProstCodec,
        )
        .await
        .expect("v1alpha answers")
        .into_inner();
    match next(&mut alpha).await {
        MessageResponse::ListServicesResponse(list) => assert_eq!(list.service.len(), 1),
        other => panic!("expected a list, got {other:?}"),
    }
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), serving).await;
}
