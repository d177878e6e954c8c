//! tonic-reflection's tests (`tests/server.rs`, `tests/versions.rs`), in tonic's forms: the
//! service built with `server::Builder::configure()…build_v1()` (or `build_v1alpha()`), served
//! from a listener until a shutdown signal, asked one request on one `ServerReflectionInfo`
//! stream by `pb::v1` / `pb::v1alpha`'s client, which answers it once and ends the stream.
//!
//! tonic's `test_file_by_filename` asks for the name its own descriptor set gives reflection's
//! file (`reflection.proto`); sockrpc's set names it by its path,
//! `grpc/reflection/v1/reflection.proto`, so the port asks for the first file of the set by its
//! name, whatever it is, and compares the file answered with the set's.

use crate::support::bounded;
use futures_util::StreamExt;
use prost::Message;
use sockrpc::codegen::prost_types::{FileDescriptorProto, FileDescriptorSet};
use sockrpc::transport::{Endpoint, EndpointExt, Server};
use sockrpc::Request;
use sockrpc_reflection::pb::server_reflection_client::ServerReflectionClient;
use sockrpc_reflection::pb::server_reflection_request::MessageRequest;
use sockrpc_reflection::pb::server_reflection_response::MessageResponse;
use sockrpc_reflection::pb::{v1, v1alpha};
use sockrpc_reflection::pb::{
    ServerReflectionRequest, ServerReflectionResponse, ServiceResponse, FILE_DESCRIPTOR_SET,
};
use sockrpc_reflection::server::Builder;
use std::net::SocketAddr;
use tokio::sync::oneshot;

/// Reflection's own first file, as the set holds it.
fn reflection_service_fd() -> FileDescriptorProto {
    let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("decode the set");
    set.file.into_iter().next().expect("a file")
}

fn the_one_file(response: MessageResponse) -> FileDescriptorProto {
    let MessageResponse::FileDescriptorResponse(descriptor) = response else {
        panic!("Expected a FileDescriptorResponse variant, got {response:?}");
    };
    assert_eq!(
        descriptor.file_descriptor_proto.len(),
        1,
        "no imports to send"
    );
    let first = descriptor
        .file_descriptor_proto
        .first()
        .expect("descriptor");
    FileDescriptorProto::decode(first.as_slice()).expect("a file descriptor")
}

#[tokio::test]
async fn test_list_services() {
    let response = make_test_reflection_request(ServerReflectionRequest {
        host: "".to_string(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    })
    .await;
    let MessageResponse::ListServicesResponse(services) = response else {
        panic!("Expected a ListServicesResponse variant, got {response:?}");
    };
    assert_eq!(
        services.service,
        vec![ServiceResponse {
            name: String::from("grpc.reflection.v1.ServerReflection")
        }]
    );
}

#[tokio::test]
async fn test_file_by_filename() {
    let expected = reflection_service_fd();
    let response = make_test_reflection_request(ServerReflectionRequest {
        host: "".to_string(),
        message_request: Some(MessageRequest::FileByFilename(expected.name().to_owned())),
    })
    .await;
    assert_eq!(the_one_file(response), expected);
}

#[tokio::test]
async fn test_file_containing_symbol() {
    let response = make_test_reflection_request(ServerReflectionRequest {
        host: "".to_string(),
        message_request: Some(MessageRequest::FileContainingSymbol(String::from(
            "grpc.reflection.v1.ServerReflection",
        ))),
    })
    .await;
    assert_eq!(the_one_file(response), reflection_service_fd());
}

#[tokio::test]
async fn test_v1() {
    let (addr, shutdown_tx, jh) =
        serve(|s| s.add_service(Builder::configure().build_v1().expect("builds"))).await;
    let conn = connect(addr).await;
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(conn);
    let request = v1::ServerReflectionRequest {
        host: "".to_string(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut inbound = bounded(
        "request",
        client.server_reflection_info(Request::new(futures_util::stream::once(async { request }))),
    )
    .await
    .expect("request")
    .into_inner();
    let response = one_answer(&mut inbound).await;
    let v1::server_reflection_response::MessageResponse::ListServicesResponse(services) = response
    else {
        panic!("Expected a ListServicesResponse variant, got {response:?}");
    };
    assert_eq!(
        services.service,
        vec![v1::ServiceResponse {
            name: String::from("grpc.reflection.v1.ServerReflection")
        }]
    );
    stop(shutdown_tx, jh).await;
}

#[tokio::test]
async fn test_v1alpha() {
    let (addr, shutdown_tx, jh) =
        serve(|s| s.add_service(Builder::configure().build_v1alpha().expect("builds"))).await;
    let conn = connect(addr).await;
    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(conn);
    let request = v1alpha::ServerReflectionRequest {
        host: "".to_string(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut inbound = bounded(
        "request",
        client.server_reflection_info(Request::new(futures_util::stream::once(async { request }))),
    )
    .await
    .expect("request")
    .into_inner();
    let response = one_answer(&mut inbound).await;
    let v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(services) =
        response
    else {
        panic!("Expected a ListServicesResponse variant, got {response:?}");
    };
    assert_eq!(
        services.service,
        vec![v1alpha::ServiceResponse {
            name: String::from("grpc.reflection.v1alpha.ServerReflection")
        }]
    );
    // The v1 name is not served beside it, as tonic's `build_v1alpha` serves one.
    let conn = connect(addr).await;
    let mut v1_client = ServerReflectionClient::new(conn);
    let refused = bounded(
        "v1 request",
        v1_client.server_reflection_info(Request::new(futures_util::stream::iter(Vec::<
            ServerReflectionRequest,
        >::new(
        )))),
    )
    .await;
    let code = match refused {
        Ok(answer) => {
            let mut answers = answer.into_inner();
            match bounded("v1 answer", answers.next()).await {
                Some(Err(status)) => status.code(),
                other => panic!("expected UNIMPLEMENTED, got {other:?}"),
            }
        }
        Err(status) => status.code(),
    };
    assert_eq!(code, sockrpc::Code::Unimplemented);
    stop(shutdown_tx, jh).await;
}

/// tonic's `with_service_name`: once a name is given, only the names given are listed (a
/// package's set declares services this server may not serve); lookups are unchanged.
#[tokio::test]
async fn with_service_name_lists_only_the_names_given() {
    let (addr, shutdown_tx, jh) = serve(|s| {
        let service = Builder::configure()
            .register_encoded_file_descriptor_set(sockrpc_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name("grpc.health.v1.Health")
            .build_v1()
            .expect("builds");
        s.add_service(service)
    })
    .await;
    let mut client = ServerReflectionClient::new(connect(addr).await);
    let ask = |request| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let requests = vec![
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol(
            "grpc.reflection.v1.ServerReflection".into(),
        )),
    ];
    let mut inbound = bounded(
        "request",
        client.server_reflection_info(Request::new(futures_util::stream::iter(requests))),
    )
    .await
    .expect("request")
    .into_inner();
    let listed = bounded("list", inbound.next())
        .await
        .expect("an answer")
        .expect("ok")
        .message_response;
    let Some(MessageResponse::ListServicesResponse(services)) = listed else {
        panic!("Expected a ListServicesResponse variant, got {listed:?}");
    };
    assert_eq!(
        services.service,
        vec![ServiceResponse {
            name: "grpc.health.v1.Health".into()
        }]
    );
    let found = bounded("symbol", inbound.next())
        .await
        .expect("an answer")
        .expect("ok")
        .message_response
        .expect("some MessageResponse");
    assert_eq!(the_one_file(found), reflection_service_fd());
    drop(inbound);
    stop(shutdown_tx, jh).await;
}

type Serving = tokio::task::JoinHandle<()>;

/// A server configured by `add` on `127.0.0.1:0`, served from its listener until the sender
/// fires.
async fn serve(
    add: impl FnOnce(
            sockrpc::server::ServerBuilder<tower::layer::util::Identity>,
        ) -> sockrpc::server::ServerBuilder<tower::layer::util::Identity>
        + Send
        + 'static,
) -> (SocketAddr, oneshot::Sender<()>, Serving) {
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local address");
    let jh = tokio::spawn(async move {
        add(Server::builder())
            .serve_with_listener_and_shutdown(listener, async { drop(shutdown_rx.await) })
            .await
            .expect("serves");
    });
    (addr, shutdown_tx, jh)
}

async fn connect(addr: SocketAddr) -> sockrpc::Channel {
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).expect("an address");
    bounded("connect", endpoint.connect())
        .await
        .expect("connects")
}

/// The stream's one answer; the stream then ends.
async fn one_answer(inbound: &mut sockrpc::Streaming<ServerReflectionResponse>) -> MessageResponse {
    let response = bounded("answer", inbound.next())
        .await
        .expect("streamed response")
        .expect("successful response")
        .message_response
        .expect("some MessageResponse");
    // We only expect one response per request
    assert!(bounded("end", inbound.next()).await.is_none());
    response
}

async fn stop(shutdown_tx: oneshot::Sender<()>, jh: Serving) {
    shutdown_tx.send(()).expect("send shutdown");
    bounded("server shutdown", jh)
        .await
        .expect("server shutdown");
}

/// tonic's `make_test_reflection_request`: reflection over its own descriptor set, one
/// request, its one answer.
async fn make_test_reflection_request(request: ServerReflectionRequest) -> MessageResponse {
    let (addr, shutdown_tx, jh) = serve(|s| {
        let service = Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .build_v1()
            .expect("builds");
        s.add_service(service)
    })
    .await;
    let conn = connect(addr).await;
    let mut client = ServerReflectionClient::new(conn);
    let request = Request::new(futures_util::stream::iter(vec![request]));
    let mut inbound = bounded("request", client.server_reflection_info(request))
        .await
        .expect("request")
        .into_inner();
    let response = one_answer(&mut inbound).await;
    stop(shutdown_tx, jh).await;
    response
}
