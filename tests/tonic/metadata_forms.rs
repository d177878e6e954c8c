//! tonic's metadata forms, written as tonic's integration tests and docs write them (only the
//! crate's name changed), over a real socket: a client that sets request metadata with
//! `"v".parse().unwrap()`, `MetadataValue::from_static`, `MetadataValue::try_from` and binary
//! `MetadataValue::from_bytes`, a handler that reads them with
//! `.get(..).unwrap().to_str().unwrap()` and `.get_bin(..).unwrap().to_bytes().unwrap()`, and
//! a client that reads the answer's metadata and a failed call's trailers the same way.
//!
//! Verbatim tonic, so: `.unwrap()` (clippy's `unwrap_used`), keys lent as `&String` (clippy's
//! `needless_borrows_for_generic_args`), and setters called as statements: tonic's setters
//! return an `Option` nobody must use, sockrpc's a `Result` (a bad key is an error, not a
//! panic), which `unused_must_use` asks to look at.
#![allow(
    clippy::unwrap_used,
    clippy::needless_borrows_for_generic_args,
    unused_must_use
)]

use crate::support::bounded;
use sockrpc::metadata::{AsciiMetadataKey, MetadataKey, MetadataMap, MetadataValue};
use sockrpc::transport::{Endpoint, EndpointExt, Server};
use sockrpc::{Code, Request, Response, Status};
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::{Input, Output};
use sockrpc_tests::serve::Running;

const ASCII_NAME: &str = "x-host-ip";
const ASCII_VALUE: &str = "127.0.0.1";
const BINARY_NAME: &str = "x-host-name-bin";
const BINARY_VALUE: &[u8] = b"localhost\0\xff";
const MESSAGE: &str = "Internal error, see metadata for details";

/// Reads the request's metadata as tonic handlers do and answers with what it read: in the
/// answer's metadata when the call asks for `x-fail` absent, in the status's trailers when not.
struct Svc;

impl Test for Svc {
    async fn unary_call(&self, req: Request<Input>) -> Result<Response<Output>, Status> {
        let md = req.metadata();
        let parsed = md.get("x-parsed").unwrap().to_str().unwrap().to_owned();
        assert_eq!(md.get("x-static").unwrap(), "static");
        assert_eq!(md.get("X-Try").unwrap(), &"try-7");
        assert_eq!(md.get(&String::from("x-key")).unwrap(), "by-key");
        assert_eq!(md.get("x-multi").unwrap(), "one");
        // sockrpc's `get_all` yields the values' bytes (tonic's a `GetAll` view).
        assert_eq!(md.get_all("x-multi").collect::<Vec<_>>(), [b"one", b"two"]);
        let blob = md.get_bin("x-blob-bin").unwrap().to_bytes().unwrap();
        assert_eq!(md.get_bin("x-blob-bin").unwrap(), &b"\x00\xffbin"[..]);
        assert!(
            md.get("x-blob-bin").is_none(),
            "a binary key is not read as text"
        );
        assert!(
            md.get_bin("x-parsed").is_none(),
            "a text key is not read as binary"
        );

        if md.get("x-fail").is_some() {
            let mut metadata = MetadataMap::new();
            metadata.insert(ASCII_NAME, ASCII_VALUE.parse().unwrap());
            metadata.insert_bin(BINARY_NAME, MetadataValue::from_bytes(BINARY_VALUE));
            return Err(Status::with_metadata(Code::Internal, MESSAGE, metadata));
        }
        let mut response = Response::new(Output::default());
        response
            .metadata_mut()
            .insert("x-echo", parsed.parse().unwrap());
        response
            .metadata_mut()
            .insert_bin("x-echo-bin", MetadataValue::from_bytes(&blob));
        Ok(response)
    }
}

/// A request carrying every form tonic sets metadata with.
fn request(fail: bool) -> Request<Input> {
    let mut req = Request::new(Input {});
    req.metadata_mut()
        .insert("x-parsed", "parsed".parse().unwrap());
    req.metadata_mut()
        .insert("x-static", MetadataValue::from_static("static"));
    let value = MetadataValue::try_from(format!("try-{}", 7)).unwrap();
    req.metadata_mut().insert("x-try", value);
    req.metadata_mut()
        .insert(MetadataKey::from_static("x-key"), "by-key".parse().unwrap());
    req.metadata_mut().append("x-multi", "one".parse().unwrap());
    req.metadata_mut().append(
        AsciiMetadataKey::from_bytes(b"x-multi").unwrap(),
        MetadataValue::from_static("two"),
    );
    req.metadata_mut()
        .insert_bin("x-blob-bin", MetadataValue::from_bytes(b"\x00\xffbin"));
    if fail {
        req.metadata_mut()
            .insert("x-fail", MetadataValue::from(1u32));
    }
    req
}

#[tokio::test]
async fn tonic_metadata_forms_cross_a_unary_call_both_ways() {
    let server = Running::start(Server::builder().add_service(TestServer::new(Svc)));
    let endpoint = Endpoint::from_shared(format!("http://{}", server.addr)).unwrap();
    let channel = bounded("connect", endpoint.connect()).await.unwrap();
    let mut client = TestClient::new(channel);

    let response = bounded("unary", client.unary_call(request(false)))
        .await
        .unwrap();
    let md = response.metadata();
    assert_eq!(md.get("x-echo").unwrap().to_str().unwrap(), "parsed");
    assert_eq!(
        md.get_bin("x-echo-bin").unwrap().to_bytes().unwrap(),
        &b"\x00\xffbin"[..]
    );

    // The trailers of a failed call, as tonic's `status_with_metadata` reads them.
    let err = bounded("unary", client.unary_call(request(true)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal);
    assert_eq!(err.message(), MESSAGE);
    let metadata = err.metadata();
    assert_eq!(
        metadata.get(ASCII_NAME).unwrap().to_str().unwrap(),
        ASCII_VALUE
    );
    assert_eq!(
        metadata.get_bin(BINARY_NAME).unwrap().to_bytes().unwrap(),
        BINARY_VALUE
    );
    server.stop().await;
}

/// tonic's `MetadataMap` doc examples.
#[test]
fn tonic_metadata_map_doc_forms() {
    let mut map = MetadataMap::new();
    map.insert("x-host", "example.com".parse().unwrap());
    map.insert("x-number", "123".parse().unwrap());
    map.insert_bin(
        "trace-proto-bin",
        MetadataValue::from_bytes(b"[binary data]"),
    );
    assert!(map.contains_key("x-host"));
    assert!(!map.contains_key("x-location"));
    assert_eq!(map.get("x-host").unwrap(), "example.com");
    map.remove("x-host");
    assert!(!map.contains_key("x-host"));

    let mut map = MetadataMap::new();
    assert!(map.get("x-host").is_none());
    map.insert("x-host", "hello".parse().unwrap());
    assert_eq!(map.get("x-host").unwrap(), &"hello");
    map.append("x-host", "world".parse().unwrap());
    assert_eq!(map.get("x-host").unwrap(), &"hello");
    map.append_bin("host-bin", MetadataValue::from_bytes(b"world"));
    assert!(map.get("host-bin").is_none());
    assert!(map.get("host-bin".to_string()).is_none());
    assert!(map.get(&("host-bin".to_string())).is_none());
    assert!(map.get("host{}bin").is_none());
    assert!(map.get("host{}bin".to_string()).is_none());

    let mut map = MetadataMap::new();
    assert!(map.get_bin("trace-proto-bin").is_none());
    map.insert_bin("trace-proto-bin", MetadataValue::from_bytes(b"hello"));
    assert_eq!(map.get_bin("trace-proto-bin").unwrap(), &"hello");
    map.append("host", "world".parse().unwrap());
    assert!(map.get_bin("host").is_none());
    assert!(map.get_bin("host".to_string()).is_none());
    assert!(map.get_bin("host{}-bin").is_none());

    let mut map = MetadataMap::default();
    map.insert("x-host", "hello".parse().unwrap());
    map.get_mut("x-host").unwrap().set_sensitive(true);
    assert!(map.get("x-host").unwrap().is_sensitive());

    let val = MetadataValue::from_static("hello");
    assert_eq!(val.to_str().unwrap(), "hello");
    assert_eq!(val.as_bytes(), b"hello");
    assert_eq!(val.as_encoded_bytes(), b"hello");
    assert_eq!(val.to_bytes().unwrap().as_ref(), b"hello");
    assert_eq!(val.len(), 5);
    assert!(!val.is_empty());
    assert_eq!("hello", val);
    assert_eq!(val, String::from("hello"));
    assert_eq!(String::from("hello"), val);
    assert_eq!(val, *"hello".as_bytes());
    assert_eq!(*"hello".as_bytes(), val);
    let val = MetadataValue::from_bytes(b"hello\xfa");
    assert_eq!(val, &b"hello\xfa"[..]);
    assert_eq!(val.to_bytes().unwrap().as_ref(), b"hello\xfa");

    let a = AsciiMetadataKey::from_bytes(b"custom-key").unwrap();
    let b = AsciiMetadataKey::from_static("custom-key");
    assert_eq!(a, b);
    assert_eq!(a, "Custom-Key");
}
