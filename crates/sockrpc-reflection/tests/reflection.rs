//! Reflection over a real socket: a server with reflection mounted in one call answers
//! list_services (both of reflection's names), file_containing_symbol (the file first, then its
//! imports, each once per stream),
//! file_by_filename, and a NOT_FOUND error on the stream for an unknown symbol, under both v1
//! and v1alpha names; the v1alpha file it hands out describes the v1alpha service.

use futures_util::StreamExt;
use prost::Message;
use sockrpc::codegen::prost_types::FileDescriptorProto;
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

/// Both names reflection serves under, as `list` has them (sorted).
const BOTH: [&str; 2] = [
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];
const V1ALPHA_FILE: &str = "grpc/reflection/v1alpha/reflection.proto";

fn files(response: &MessageResponse) -> Vec<FileDescriptorProto> {
    match response {
        MessageResponse::FileDescriptorResponse(files) => files
            .file_descriptor_proto
            .iter()
            .map(|bytes| FileDescriptorProto::decode(bytes.as_slice()).expect("a file descriptor"))
            .collect(),
        other => panic!("expected files, got {other:?}"),
    }
}

fn file_names(response: &MessageResponse) -> Vec<String> {
    files(response)
        .iter()
        .map(|file| file.name().to_owned())
        .collect()
}

fn service_names(response: &MessageResponse) -> Vec<String> {
    match response {
        MessageResponse::ListServicesResponse(list) => {
            list.service.iter().map(|s| s.name.clone()).collect()
        }
        other => panic!("expected a list, got {other:?}"),
    }
}

/// The one file of `response` is v1alpha's, and declares the v1alpha service, whose method
/// takes and returns v1alpha's messages.
fn assert_v1alpha_file(response: &MessageResponse) {
    let files = files(response);
    let [file] = files.as_slice() else {
        panic!("expected one file, got {files:?}");
    };
    assert_eq!(file.name(), V1ALPHA_FILE);
    assert_eq!(file.package(), "grpc.reflection.v1alpha");
    let services: Vec<_> = file.service.iter().map(|s| s.name()).collect();
    assert_eq!(services, ["ServerReflection"]);
    let method = &file.service[0].method[0];
    assert_eq!(method.name(), "ServerReflectionInfo");
    assert_eq!(
        method.input_type(),
        ".grpc.reflection.v1alpha.ServerReflectionRequest"
    );
    assert_eq!(
        method.output_type(),
        ".grpc.reflection.v1alpha.ServerReflectionResponse"
    );
    assert!(
        file.message_type
            .iter()
            .any(|message| message.name() == "ServerReflectionRequest"),
        "{file:?}"
    );
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

/// A server with reflection over `sets` on loopback, a channel to it, and what stops it.
async fn serve(
    sets: &[&[u8]],
) -> (
    Channel,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = Server::builder().add_reflection(sets);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve_with_listener_and_shutdown(listener, async {
        let _ = stop_rx.await;
    }));
    let channel = Channel::connect(format!("tcp://{addr}"))
        .await
        .expect("connect");
    (channel, stop_tx, serving)
}

/// One `ServerReflectionInfo` stream carrying `requests`: its answers.
async fn open(
    client: &mut ServerReflectionClient,
    requests: Vec<ServerReflectionRequest>,
) -> sockrpc::Streaming<sockrpc_reflection::pb::ServerReflectionResponse> {
    tokio::time::timeout(
        Duration::from_secs(10),
        client.server_reflection_info(Request::new(futures_util::stream::iter(requests))),
    )
    .await
    .expect("in time")
    .expect("call")
    .into_inner()
}

#[tokio::test]
async fn reflection_answers_on_one_stream() {
    // The server reflects its own descriptors: reflection.proto registers nothing else.
    let (channel, stop_tx, serving) = serve(&[]).await;
    let mut client = ServerReflectionClient::new(channel.clone());
    let requests = vec![
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol(
            "grpc.reflection.v1.ServerReflection.ServerReflectionInfo".into(),
        )),
        ask(MessageRequest::FileByFilename(
            "grpc/reflection/v1/reflection.proto".into(),
        )),
        ask(MessageRequest::FileContainingSymbol("no.Such".into())),
        ask(MessageRequest::FileContainingSymbol(
            "grpc.reflection.v1alpha.ServerReflection".into(),
        )),
        ask(MessageRequest::FileByFilename(V1ALPHA_FILE.into())),
    ];
    let mut answers = open(&mut client, requests).await;
    assert_eq!(service_names(&next(&mut answers).await), BOTH);
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
    assert_v1alpha_file(&next(&mut answers).await);
    assert_v1alpha_file(&next(&mut answers).await);
    drop(answers);

    // The same service under its v1alpha name (identical messages on the wire).
    let mut raw = sockrpc::Client::new(channel.clone());
    let mut alpha = raw
        .streaming(
            Request::new(futures_util::stream::iter([
                ask(MessageRequest::ListServices(String::new())),
                ask(MessageRequest::FileContainingSymbol(
                    "grpc.reflection.v1alpha.ServerReflection".into(),
                )),
                ask(MessageRequest::FileContainingSymbol(
                    "grpc.reflection.v1alpha.ServerReflection.ServerReflectionInfo".into(),
                )),
            ])),
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            sockrpc::ProstCodec,
        )
        .await
        .expect("v1alpha answers")
        .into_inner();
    assert_eq!(service_names(&next(&mut alpha).await), BOTH);
    assert_v1alpha_file(&next(&mut alpha).await);
    assert_v1alpha_file(&next(&mut alpha).await);
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), serving).await;
}

/// `api.proto` (package `pkg`, service `Svc` taking `base.Base`) importing `base.proto`, as one
/// encoded set.
fn importing_set() -> Vec<u8> {
    use sockrpc::codegen::prost_types::{
        DescriptorProto, FileDescriptorSet, MethodDescriptorProto, ServiceDescriptorProto,
    };
    let named = |name: &str| Some(name.to_owned());
    let method = MethodDescriptorProto {
        name: named("Get"),
        input_type: named(".base.Base"),
        output_type: named(".base.Base"),
        ..Default::default()
    };
    let file = |name: &str, package: &str| FileDescriptorProto {
        name: named(name),
        package: named(package),
        ..Default::default()
    };
    let mut base = file("base.proto", "base");
    base.message_type.push(DescriptorProto {
        name: named("Base"),
        ..Default::default()
    });
    let mut api = file("api.proto", "pkg");
    api.dependency.push("base.proto".to_owned());
    api.service.push(ServiceDescriptorProto {
        name: named("Svc"),
        method: vec![method],
        ..Default::default()
    });
    FileDescriptorSet {
        file: vec![base, api],
    }
    .encode_to_vec()
}

/// grpc-go's order and its per-stream bookkeeping: the file asked for comes first, then its
/// imports, and an import a stream was sent once is not sent again on it.
#[tokio::test]
async fn the_file_asked_for_comes_first_and_imports_go_once_per_stream() {
    let set = importing_set();
    let (channel, stop_tx, serving) = serve(&[&set]).await;
    let mut client = ServerReflectionClient::new(channel);
    for _ in 0..2 {
        // Each stream keeps its own record: the second starts afresh.
        let requests = vec![
            ask(MessageRequest::FileContainingSymbol("pkg.Svc".into())),
            ask(MessageRequest::FileByFilename("api.proto".into())),
            ask(MessageRequest::FileContainingSymbol("base.Base".into())),
        ];
        let mut answers = open(&mut client, requests).await;
        assert_eq!(
            file_names(&next(&mut answers).await),
            ["api.proto", "base.proto"]
        );
        assert_eq!(file_names(&next(&mut answers).await), ["api.proto"]);
        assert_eq!(file_names(&next(&mut answers).await), ["base.proto"]);
    }
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), serving).await;
}
