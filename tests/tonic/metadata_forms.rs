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

/// tonic's doc examples of `remove`, `remove_bin`, `contains_key`, the entry API and the
/// `MetadataValue` conversions and comparisons, verbatim (`use tonic::metadata::*` as
/// `use sockrpc::metadata::*`) but where said: tonic's `get_all` is a `GetAll` view of values,
/// sockrpc's an iterator of their bytes, so the lines after an entry's `append` and `iter_mut`
/// read the values otherwise; and a text value here is printable ASCII (tonic's takes
/// `b"hello\xfa"`).
mod tonic_docs {
    // tonic's forms as written: `let mut` it does not need, `!x.is_ok()`, `AMV`, and owned or
    // borrowed operands of comparisons.
    #![allow(
        clippy::unwrap_used,
        clippy::needless_borrows_for_generic_args,
        unused_must_use,
        unused_mut,
        clippy::nonminimal_bool,
        clippy::upper_case_acronyms,
        clippy::cmp_owned,
        clippy::op_ref
    )]

    use sockrpc::metadata::*;
    use std::str;

    #[test]
    fn remove_and_remove_bin_return_the_first_value() {
        let mut map = MetadataMap::new();
        map.insert("x-host", "hello.world".parse().unwrap());

        let prev = map.remove("x-host").unwrap();
        assert_eq!("hello.world", prev);

        assert!(map.remove("x-host").is_none());

        // Attempting to remove a key of the wrong type fails by not
        // finding anything.
        map.append_bin("host-bin", MetadataValue::from_bytes(b"world"));
        assert!(map.remove("host-bin").is_none());
        assert!(map.remove("host-bin".to_string()).is_none());
        assert!(map.remove(&("host-bin".to_string())).is_none());

        // Attempting to remove an invalid key string fails by not
        // finding anything.
        assert!(map.remove("host{}").is_none());
        assert!(map.remove("host{}".to_string()).is_none());
        assert!(map.remove(&("host{}".to_string())).is_none());

        let mut map = MetadataMap::new();
        map.insert_bin("trace-proto-bin", MetadataValue::from_bytes(b"hello.world"));

        let prev = map.remove_bin("trace-proto-bin").unwrap();
        assert_eq!("hello.world", prev);

        assert!(map.remove_bin("trace-proto-bin").is_none());

        map.append("host", "world".parse().unwrap());
        assert!(map.remove_bin("host").is_none());
        assert!(map.remove_bin("host".to_string()).is_none());
        assert!(map.remove_bin(&("host".to_string())).is_none());

        assert!(map.remove_bin("host{}-bin").is_none());
        assert!(map.remove_bin("host{}-bin".to_string()).is_none());
        assert!(map.remove_bin(&("host{}-bin".to_string())).is_none());
    }

    #[test]
    fn contains_key_takes_either_kind() {
        let mut map = MetadataMap::new();
        assert!(!map.contains_key("x-host"));

        map.append_bin("host-bin", MetadataValue::from_bytes(b"world"));
        map.insert("x-host", "world".parse().unwrap());

        // contains_key works for both Binary and Ascii keys:
        assert!(map.contains_key("x-host"));
        assert!(map.contains_key("host-bin"));

        // contains_key returns false for invalid keys:
        assert!(!map.contains_key("x{}host"));

        // And its keys are tonic's `AsEncodingAgnosticMetadataKey`s.
        assert!(map.contains_key("x-host".to_string()));
        assert!(map.contains_key(&("host-bin".to_string())));
        assert!(map.contains_key(AsciiMetadataKey::from_static("x-host")));
        assert!(map.contains_key(&BinaryMetadataKey::from_static("host-bin")));
    }

    #[test]
    fn entry_and_entry_bin() {
        let mut map = MetadataMap::default();

        let headers = &["content-length", "x-hello", "Content-Length", "x-world"];

        for &header in headers {
            let counter = map.entry(header).unwrap().or_insert("".parse().unwrap());
            *counter = format!("{}{}", counter.to_str().unwrap(), "1")
                .parse()
                .unwrap();
        }

        assert_eq!(map.get("content-length").unwrap(), "11");
        assert_eq!(map.get("x-hello").unwrap(), "1");

        // Gracefully handles parting invalid key strings
        assert!(!map.entry("a{}b").is_ok());

        // Attempting to read a key of the wrong type fails by not
        // finding anything.
        map.append_bin("host-bin", MetadataValue::from_bytes(b"world"));
        assert!(!map.entry("host-bin").is_ok());
        assert!(!map.entry("host-bin".to_string()).is_ok());
        assert!(!map.entry(&("host-bin".to_string())).is_ok());

        // Attempting to read an invalid key string fails by not
        // finding anything.
        assert!(!map.entry("host{}").is_ok());
        assert!(!map.entry("host{}".to_string()).is_ok());
        assert!(!map.entry(&("host{}".to_string())).is_ok());

        let mut map = MetadataMap::default();

        let headers = &[
            "content-length-bin",
            "x-hello-bin",
            "Content-Length-bin",
            "x-world-bin",
        ];

        for &header in headers {
            let counter = map
                .entry_bin(header)
                .unwrap()
                .or_insert(MetadataValue::from_bytes(b""));
            *counter = MetadataValue::from_bytes(
                format!(
                    "{}{}",
                    str::from_utf8(counter.to_bytes().unwrap().as_ref()).unwrap(),
                    "1"
                )
                .as_bytes(),
            );
        }

        assert_eq!(map.get_bin("content-length-bin").unwrap(), "11");
        assert_eq!(map.get_bin("x-hello-bin").unwrap(), "1");

        map.append("host", "world".parse().unwrap());
        assert!(!map.entry_bin("host").is_ok());
        assert!(!map.entry_bin("host".to_string()).is_ok());
        assert!(!map.entry_bin(&("host".to_string())).is_ok());

        assert!(!map.entry_bin("host{}-bin").is_ok());
        assert!(!map.entry_bin("host{}-bin".to_string()).is_ok());
        assert!(!map.entry_bin(&("host{}-bin".to_string())).is_ok());
    }

    #[test]
    fn entry_or_insert_and_key() {
        let mut map: MetadataMap = MetadataMap::default();

        let keys = &["content-length", "x-hello", "Content-Length", "x-world"];

        for &key in keys {
            let counter = map
                .entry(key)
                .expect("valid key names")
                .or_insert("".parse().unwrap());
            *counter = format!("{}{}", counter.to_str().unwrap(), "1")
                .parse()
                .unwrap();
        }

        assert_eq!(map.get("content-length").unwrap(), "11");
        assert_eq!(map.get("x-hello").unwrap(), "1");

        let mut map = MetadataMap::new();

        let res = map
            .entry("x-hello")
            .unwrap()
            .or_insert_with(|| "world".parse().unwrap());

        assert_eq!(res, "world");

        let mut map = MetadataMap::new();
        map.insert("host", "world".parse().unwrap());

        let res = map
            .entry("host")
            .expect("host is a valid string")
            .or_insert_with(|| unreachable!());

        assert_eq!(res, "world");

        let mut map = MetadataMap::new();

        assert_eq!(map.entry("x-hello").unwrap().key(), "x-hello");
    }

    #[test]
    fn vacant_entry() {
        let mut map = MetadataMap::new();

        assert_eq!(map.entry("x-hello").unwrap().key(), "x-hello");

        let mut map = MetadataMap::new();

        if let Entry::Vacant(v) = map.entry("x-hello").unwrap() {
            assert_eq!(v.into_key().as_str(), "x-hello");
        }

        let mut map = MetadataMap::new();

        if let Entry::Vacant(v) = map.entry("x-hello").unwrap() {
            v.insert("world".parse().unwrap());
        }

        assert_eq!(map.get("x-hello").unwrap(), "world");

        let mut map = MetadataMap::new();

        if let Entry::Vacant(v) = map.entry("x-hello").unwrap() {
            let mut e = v.insert_entry("world".parse().unwrap());
            e.insert("world2".parse().unwrap());
        }

        assert_eq!(map.get("x-hello").unwrap(), "world2");
    }

    #[test]
    fn occupied_entry() {
        let mut map = MetadataMap::new();
        map.insert("host", "world".parse().unwrap());

        if let Entry::Occupied(e) = map.entry("host").unwrap() {
            assert_eq!("host", e.key());
        }

        let mut map = MetadataMap::new();
        map.insert("host", "hello.world".parse().unwrap());

        if let Entry::Occupied(mut e) = map.entry("host").unwrap() {
            assert_eq!(e.get(), &"hello.world");

            e.append("hello.earth".parse().unwrap());

            assert_eq!(e.get(), &"hello.world");
        }

        let mut map = MetadataMap::default();
        map.insert("host", "hello.world".parse().unwrap());

        if let Entry::Occupied(mut e) = map.entry("host").unwrap() {
            e.get_mut().set_sensitive(true);
            assert_eq!(e.get(), &"hello.world");
            assert!(e.get().is_sensitive());
        }

        let mut map = MetadataMap::default();
        map.insert("host", "hello.world".parse().unwrap());
        map.append("host", "hello.earth".parse().unwrap());

        if let Entry::Occupied(e) = map.entry("host").unwrap() {
            e.into_mut().set_sensitive(true);
        }

        assert!(map.get("host").unwrap().is_sensitive());

        let mut map = MetadataMap::new();
        map.insert("host", "hello.world".parse().unwrap());

        if let Entry::Occupied(mut e) = map.entry("host").unwrap() {
            let mut prev = e.insert("earth".parse().unwrap());
            assert_eq!("hello.world", prev);
        }

        assert_eq!("earth", map.get("host").unwrap());

        let mut map = MetadataMap::new();
        map.insert("host", "world".parse().unwrap());
        map.append("host", "world2".parse().unwrap());

        if let Entry::Occupied(mut e) = map.entry("host").unwrap() {
            let mut prev = e.insert_mult("earth".parse().unwrap());
            assert_eq!("world", prev.next().unwrap());
            assert_eq!("world2", prev.next().unwrap());
            assert!(prev.next().is_none());
        }

        assert_eq!("earth", map.get("host").unwrap());

        let mut map = MetadataMap::new();
        map.insert("host", "world".parse().unwrap());

        if let Entry::Occupied(mut e) = map.entry("host").unwrap() {
            e.append("earth".parse().unwrap());
        }

        // Not verbatim: tonic reads `map.get_all("host").iter()`.
        let values: Vec<_> = map.get_all("host").collect();
        assert_eq!(values, [b"world", b"earth"]);

        let mut map = MetadataMap::new();
        map.insert("host", "world".parse().unwrap());

        if let Entry::Occupied(e) = map.entry("host").unwrap() {
            let mut prev = e.remove();
            assert_eq!("world", prev);
        }

        assert!(!map.contains_key("host"));

        let mut map = MetadataMap::new();
        map.insert("host", "world".parse().unwrap());

        if let Entry::Occupied(e) = map.entry("host").unwrap() {
            let (key, mut prev) = e.remove_entry();
            assert_eq!("host", key.as_str());
            assert_eq!("world", prev);
        }

        assert!(!map.contains_key("host"));

        let mut map = MetadataMap::new();
        map.insert("host", "world".parse().unwrap());
        map.append("host", "earth".parse().unwrap());

        if let Entry::Occupied(e) = map.entry("host").unwrap() {
            let mut iter = e.iter();
            assert_eq!(&"world", iter.next().unwrap());
            assert_eq!(&"earth", iter.next().unwrap());
            assert!(iter.next().is_none());
        }

        let mut map = MetadataMap::default();
        map.insert("host", "world".parse().unwrap());
        map.append("host", "earth".parse().unwrap());

        if let Entry::Occupied(mut e) = map.entry("host").unwrap() {
            for e in e.iter_mut() {
                e.set_sensitive(true);
            }
        }

        // Not verbatim: tonic reads `map.get_all("host").iter()`.
        let mut i = map.values();
        assert!(matches!(i.next(), Some(ValueRef::Ascii(v)) if v.is_sensitive()));
        assert!(matches!(i.next(), Some(ValueRef::Ascii(v)) if v.is_sensitive()));
    }

    #[test]
    fn metadata_values_from_keys_bytes_and_references_compared_as_tonic_does() {
        let val = AsciiMetadataValue::from_key::<Ascii>("accept".parse().unwrap());
        assert_eq!(val, AsciiMetadataValue::try_from(b"accept").unwrap());

        let mut map = MetadataMap::new();
        map.insert(
            "accept",
            MetadataKey::<Ascii>::from_bytes(b"hello-world")
                .unwrap()
                .into(),
        );

        assert_eq!(
            map.get("accept").unwrap(),
            AsciiMetadataValue::try_from(b"hello-world").unwrap()
        );

        let val = AsciiMetadataValue::try_from(b"\n");
        assert!(val.is_err());

        let val = AsciiMetadataValue::try_from(bytes::Bytes::from_static(b"shared")).unwrap();
        assert_eq!(val, "shared");
        let val = AsciiMetadataValue::try_from(b"owned".to_vec()).unwrap();
        assert_eq!(val, "owned");
        assert!(AsciiMetadataValue::try_from(b"\x00".to_vec()).is_err());
        let copy = AsciiMetadataValue::from(&val);
        assert_eq!(copy, val);

        type AMV = AsciiMetadataValue;
        assert!(AMV::from_static("abc") < AMV::from_static("abd"));
        assert!(AMV::from_static("abc") < *"abd");
        assert!(AMV::from_static("abc") < "abd");
        assert!(AMV::from_static("abc") > *b"abb".as_slice());
        assert!(AMV::from_static("abc") < String::from("abd"));
        assert!("abd" > AMV::from_static("abc"));
        assert!(*"abd" > AMV::from_static("abc"));
        assert!(String::from("abb") < AMV::from_static("abc"));
        assert!(&AMV::from_static("abc") < AMV::from_static("abd"));
    }
}
