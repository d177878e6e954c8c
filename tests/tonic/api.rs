//! tonic's public API as a ported test touches it: the `metadata` module and its typed values,
//! `Code`'s and `Status`'s constructors and readers, `Request`'s addresses, the `transport`
//! module's `Server`/`Channel`/`Endpoint` with tonic's builder names, `service::interceptor`,
//! and a Unix socket served with `serve_unix`. Written as tonic's integration tests are: a
//! service in the test, a server, a client, asserts on what came back.

use crate::support::bounded;
use sockrpc::metadata::{AsciiMetadataValue, BinaryMetadataValue, MetadataMap, MetadataValue};
use sockrpc::transport::{Channel, Endpoint, Server};
use sockrpc::{Code, Request, Response, Status};
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::{Input, Output};
use sockrpc_tests::serve::Running;
use std::error::Error as _;
use std::time::Duration;

const ASCII_NAME: &str = "x-host-ip";
const ASCII_VALUE: &str = "127.0.0.1";
const BINARY_NAME: &str = "x-host-name-bin";
const BINARY_VALUE: &[u8] = b"localhost\0\xff";

/// Fails every call with a status carrying metadata built from tonic's typed values.
struct WithMetadata;

impl Test for WithMetadata {
    async fn unary_call(&self, _: Request<Input>) -> Result<Response<Output>, Status> {
        let mut metadata = MetadataMap::new();
        metadata
            .insert(ASCII_NAME, MetadataValue::from_static(ASCII_VALUE))
            .expect("ascii");
        metadata
            .insert_bin(BINARY_NAME, MetadataValue::from_bytes(BINARY_VALUE))
            .expect("binary");
        let parsed: AsciiMetadataValue = "parsed".parse().expect("ascii");
        metadata.insert("x-parsed", parsed).expect("ascii");
        metadata
            .insert("x-number", AsciiMetadataValue::from(42u64))
            .expect("ascii");
        Err(Status::with_details_and_metadata(
            Code::Internal,
            "see metadata",
            &[1u8][..],
            metadata,
        ))
    }
}

#[tokio::test]
async fn status_with_typed_metadata() {
    let server = Running::start(Server::builder().add_service(TestServer::new(WithMetadata)));
    let endpoint = Channel::from_shared(format!("tcp://{}", server.addr)).expect("uri");
    let channel = bounded("connect", Channel::connect(endpoint))
        .await
        .expect("connect");
    let mut client = TestClient::new(channel);

    let err = bounded("unary", client.unary_call(Request::new(Input {})))
        .await
        .expect_err("the handler fails");

    assert_eq!(err.code(), Code::Internal);
    assert_eq!(err.message(), "see metadata");
    assert_eq!(err.details(), &[1]);
    let metadata = err.metadata();
    assert_eq!(
        metadata
            .get_value(ASCII_NAME)
            .expect("ascii entry")
            .to_str()
            .expect("text"),
        ASCII_VALUE
    );
    assert_eq!(
        metadata
            .get_bin_value(BINARY_NAME)
            .expect("binary entry")
            .to_bytes()
            .expect("bytes"),
        BINARY_VALUE
    );
    assert_eq!(metadata.get_value("x-parsed").expect("parsed"), "parsed");
    assert_eq!(metadata.get_str("x-number"), Some("42"));
    assert_eq!(
        metadata.keys().collect::<Vec<_>>(),
        [ASCII_NAME, BINARY_NAME, "x-parsed", "x-number"]
    );
    server.stop().await;
}

#[test]
fn metadata_values_are_checked_as_tonic_checks_them() {
    assert!("new\nline".parse::<AsciiMetadataValue>().is_err());
    assert!(AsciiMetadataValue::try_from("caf\u{e9}").is_err());
    let value = AsciiMetadataValue::try_from(String::from("fine")).expect("ascii");
    assert_eq!(value, "fine");
    assert_eq!(value.len(), 4);
    let binary = BinaryMetadataValue::from(vec![0u8, 255]);
    assert_eq!(binary.to_bytes().expect("bytes").as_ref(), &[0u8, 255]);

    let mut map = MetadataMap::new();
    map.insert_str("x-a", &String::from("1")).expect("ascii");
    map.append("x-a", MetadataValue::from_static("2"))
        .expect("ascii");
    map.append_bin("x-b-bin", binary).expect("binary");
    assert_eq!(
        map.keys().collect::<Vec<_>>(),
        ["x-a", "x-b-bin"],
        "a repeated key once"
    );
    assert_eq!(map.len(), 3);
    assert!(map.get_value("x-b-bin").is_none(), "binary is not text");
    assert!(map.get_bin_value("x-a").is_none(), "text is not binary");
}

#[test]
#[should_panic(expected = "printable ASCII")]
fn from_static_panics_on_a_value_that_is_not_ascii() {
    let _ = MetadataValue::from_static("bad\r\n");
}

#[test]
fn codes_and_statuses_read_as_in_tonic() {
    assert_eq!(Code::from_i32(5), Code::NotFound);
    assert_eq!(Code::from_i32(-1), Code::Unknown);
    assert_eq!(Code::from_i32(17), Code::Unknown);
    assert_eq!(i32::from(Code::Unauthenticated), 16);
    assert_eq!(
        Code::Ok.description(),
        "The operation completed successfully"
    );
    assert_eq!(
        Code::DeadlineExceeded.description(),
        "Deadline expired before operation could complete"
    );
    assert_eq!(Status::ok("fine").code(), Code::Ok);

    let status = Status::from_error(Box::new(Status::not_found("gone")));
    assert_eq!((status.code(), status.message()), (Code::NotFound, "gone"));
    let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
    let status = Status::from_error(Box::new(io));
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.source().is_some(), "the io error is kept");
    let status = Status::from_error("plain".into());
    assert_eq!((status.code(), status.message()), (Code::Unknown, "plain"));
}

/// Answers with the addresses the request carried and the metadata the interceptors put
/// there.
struct Addresses;

impl Test for Addresses {
    async fn unary_call(&self, request: Request<Input>) -> Result<Response<Output>, Status> {
        let local = request.local_addr().expect("local address");
        let remote = request.remote_addr().expect("remote address");
        let certs = if request.peer_certs().is_some() {
            "tls"
        } else {
            "plain"
        };
        let client = request.metadata().get_str("x-client").unwrap_or("-");
        let server = request.metadata().get_str("x-server").unwrap_or("-");
        Ok(Response::new(Output {
            message: format!("{local} {remote} {certs} {client} {server}"),
        }))
    }
}

#[tokio::test]
async fn addresses_and_interceptors_by_tonic_names() {
    let server = Running::start_layered(
        Server::builder()
            .concurrency_limit_per_connection(32)
            .max_concurrent_streams(Some(32))
            .tcp_nodelay(true)
            .tcp_keepalive(Some(Duration::from_secs(60)))
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(5)))
            .timeout(Duration::from_secs(30))
            .layer(sockrpc::service::interceptor(|mut req: Request<()>| {
                req.metadata_mut()
                    .insert("x-server", MetadataValue::from_static("seen"))
                    .map_err(|e| Status::internal(e.to_string()))?;
                Ok(req)
            }))
            .add_service(TestServer::new(Addresses))
            // Left out: `Addresses` still answers.
            .add_optional_service(None::<TestServer<Plain>>),
    );
    let endpoint = Endpoint::try_from(format!("tcp://{}", server.addr))
        .expect("endpoint")
        .timeout(Duration::from_secs(10));
    let channel = Channel::connect_lazy(endpoint).expect("lazy channel");
    let mut client = TestClient::with_interceptor(channel, |mut req: Request<()>| {
        req.metadata_mut()
            .insert("x-client", MetadataValue::from(7i32))
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(req)
    });

    let reply = bounded("unary", client.unary_call(Input {}))
        .await
        .expect("answer")
        .into_inner();
    let words: Vec<&str> = reply.message.split(' ').collect();
    assert_eq!(words[0], server.addr.to_string(), "local is the server's");
    assert!(words[1].starts_with("127.0.0.1:"), "remote: {}", words[1]);
    assert_eq!(&words[2..], ["plain", "7", "seen"]);
    server.stop().await;
}

#[test]
fn endpoints_by_tonic_names() {
    let endpoint = Channel::from_static("tcp://127.0.0.1:50051");
    assert_eq!(
        endpoint.to_string(),
        Endpoint::from_static("127.0.0.1:50051").to_string()
    );
    assert!(Endpoint::from_shared("not an address").is_err());
    assert!(Endpoint::try_from("unix:///run/x.sock").is_ok());
    let parsed: Endpoint = "http://127.0.0.1:50051".parse().expect("tonic's FromStr");
    assert_eq!(parsed.to_string(), endpoint.to_string());
    assert!("no-port".parse::<Endpoint>().is_err());
    let result = std::panic::catch_unwind(|| Endpoint::from_static("tcp://no-port"));
    assert!(result.is_err(), "from_static panics on a bad address");
}

/// Answers every call.
struct Plain;

impl Test for Plain {
    async fn unary_call(&self, _: Request<Input>) -> Result<Response<Output>, Status> {
        Ok(Response::new(Output {
            message: "unix".into(),
        }))
    }
}

#[tokio::test]
async fn serve_unix_serves_until_dropped() {
    let name = format!("sockrpc-serve-unix-{}.sock", std::process::id());
    let path = std::env::temp_dir().join(name);
    let server = tokio::spawn(
        Server::builder()
            .add_optional_service(Some(TestServer::new(Plain)))
            .serve_unix(path.clone()),
    );
    let uri = format!("unix://{}", path.display());
    // The server binds on its first poll; try a bounded number of times.
    let mut channel = None;
    for _ in 0..100 {
        if let Ok(connected) = Channel::connect(uri.as_str()).await {
            channel = Some(connected);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut client = TestClient::new(channel.expect("the Unix socket came up"));
    let reply = bounded("unary", client.unary_call(Input {}))
        .await
        .expect("answer");
    assert_eq!(reply.into_inner().message, "unix");
    server.abort();
    let _ = server.await;
    let _ = std::fs::remove_file(&path);
}
