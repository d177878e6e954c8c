//! tonic's sensitive metadata values (`set_sensitive`, `is_sensitive`): a value marked
//! sensitive prints as `Sensitive`, alone and in its map (so a logged request does not leak a
//! token), keeps its mark in the map (`get_mut` marks one in place, as tonic's), and is sent
//! all the same: the server reads the token, unmarked (values off the wire are not sensitive).

use crate::support::bounded;
use sockrpc::metadata::{AsciiMetadataValue, BinaryMetadataValue, MetadataMap, MetadataValue};
use sockrpc::transport::{Endpoint, EndpointExt, Server};
use sockrpc::{Request, Response, Status};
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::{Input, Output};
use sockrpc_tests::serve::Running;
use std::sync::{Arc, Mutex};

const TOKEN: &str = "Bearer s3cr3t";

/// Keeps what the server read under `authorization`, and whether it came marked.
#[derive(Clone, Default)]
struct Reads(Arc<Mutex<Option<(String, bool)>>>);

impl Test for Reads {
    async fn unary_call(&self, request: Request<Input>) -> Result<Response<Output>, Status> {
        let value = request.metadata().get_value("authorization");
        *self.0.lock().expect("lock") = value.map(|v| (v.as_ref().to_owned(), v.is_sensitive()));
        Ok(Response::new(Output::default()))
    }
}

#[test]
fn a_sensitive_value_prints_as_sensitive_alone_and_in_its_map() {
    let mut token: AsciiMetadataValue = TOKEN.parse().expect("ascii");
    assert!(!token.is_sensitive());
    assert_eq!(format!("{token:?}"), format!("{TOKEN:?}"));
    token.set_sensitive(true);
    assert!(token.is_sensitive());
    assert_eq!(format!("{token:?}"), "Sensitive");
    assert_eq!(token, TOKEN, "still the same value");

    let mut map = MetadataMap::new();
    map.insert("authorization", token).expect("ascii");
    map.insert_str("x-user", "ann").expect("ascii");
    let mut blob = BinaryMetadataValue::from_bytes(b"\x00key");
    blob.set_sensitive(true);
    map.insert_bin("x-key-bin", blob).expect("binary");
    let shown = format!("{map:?}");
    assert!(
        !shown.contains("s3cr3t") && !shown.contains("key\""),
        "{shown}"
    );
    assert_eq!(
        shown,
        r#"{"authorization": Sensitive, "x-user": "ann", "x-key-bin": Sensitive}"#
    );
    assert!(map.get_value("authorization").expect("kept").is_sensitive());
    assert!(map.get_bin_value("x-key-bin").expect("kept").is_sensitive());

    // Marked in place, as tonic's `map.get_mut(k).unwrap().set_sensitive(true)`.
    map.get_mut("x-user").expect("text").set_sensitive(true);
    assert!(map.get_value("x-user").expect("kept").is_sensitive());
    assert!(!format!("{map:?}").contains("ann"));
    let mut unmarked = MetadataValue::from_static("v");
    unmarked.set_sensitive(false);
    assert_eq!(format!("{unmarked:?}"), "\"v\"");
}

#[tokio::test]
async fn a_sensitive_value_is_sent_all_the_same() {
    let reads = Reads::default();
    let server = Running::start(Server::builder().add_service(TestServer::new(reads.clone())));
    let endpoint = Endpoint::from_shared(format!("tcp://{}", server.addr)).expect("uri");
    let channel = bounded("connect", endpoint.connect())
        .await
        .expect("connect");
    let mut request = Request::new(Input {});
    let mut token: AsciiMetadataValue = TOKEN.parse().expect("ascii");
    token.set_sensitive(true);
    request
        .metadata_mut()
        .insert("authorization", token)
        .expect("ascii");
    assert!(!format!("{:?}", request.metadata()).contains("s3cr3t"));
    bounded("call", TestClient::new(channel).unary_call(request))
        .await
        .expect("call");
    let read = reads.0.lock().expect("lock").clone();
    assert_eq!(
        read,
        Some((TOKEN.to_owned(), false)),
        "sent, unmarked off the wire"
    );
    server.stop().await;
}
