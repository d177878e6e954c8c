//! tonic's `Status::from_error` tests (`from_error_status`, `from_error_unknown`,
//! `from_error_nested`): a boxed `Status` is itself, an error that wraps a `Status` somewhere in
//! its `source()` chain stands for that status (its code, message, details and metadata), and
//! anything else is `UNKNOWN` with the error's text. The nested case matters in a handler:
//! an application error that wraps a downstream call's `Status`, turned into the answer with
//! `Status::from_error`, must keep the downstream code, not become `UNKNOWN`.
//!
//! The status found in the chain drops the local marks a transport put on it (never sent, not
//! processed): the wrapping error is an answer of this handler, not a call that never started.

use crate::support::{bounded, channel, serve};
use sockrpc::{Code, MetadataMap, Request, Response, Server, Status};
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::{Input, Output};
use std::error::Error;
use std::fmt;

/// An application's error that wraps another error as its `source()`.
#[derive(Debug)]
struct Nested(Box<dyn Error + Send + Sync>);

impl fmt::Display for Nested {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "nested error: {}", self.0)
    }
}

impl Error for Nested {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.0)
    }
}

#[test]
fn from_error_status() {
    let found = Status::from_error(Box::new(Status::new(Code::OutOfRange, "weeaboo")));
    assert_eq!(found.code(), Code::OutOfRange);
    assert_eq!(found.message(), "weeaboo");
}

#[test]
fn from_error_unknown() {
    let found = Status::from_error("peek-a-boo".into());
    assert_eq!(found.code(), Code::Unknown);
    assert_eq!(found.message(), "peek-a-boo");
}

#[test]
fn from_error_nested() {
    let orig = Nested(Box::new(Status::new(Code::OutOfRange, "weeaboo")));
    let found = Status::from_error(Box::new(orig));
    assert_eq!(found.code(), Code::OutOfRange);
    assert_eq!(found.message(), "weeaboo");
    let source = found
        .source()
        .expect("the wrapping error is kept as the source");
    assert!(source.is::<Nested>(), "{source:?}");
}

#[test]
fn from_error_twice_nested_keeps_the_nearest_status() {
    let inner = Nested(Box::new(Status::new(Code::NotFound, "deepest")));
    let outer = Nested(Box::new(
        Status::new(Code::Aborted, "nearest").with_source(inner),
    ));
    let found = Status::from_error(Box::new(Nested(Box::new(outer))));
    assert_eq!((found.code(), found.message()), (Code::Aborted, "nearest"));
}

/// Fails every call with an application error that wraps a downstream `Status`.
struct Wrapping;

impl Test for Wrapping {
    async fn unary_call(&self, _: Request<Input>) -> Result<Response<Output>, Status> {
        let mut metadata = MetadataMap::new();
        metadata.insert_str("x-hint", "later").expect("ascii entry");
        let downstream =
            Status::with_details_and_metadata(Code::OutOfRange, "weeaboo", vec![7u8], metadata);
        let app: Result<Output, Nested> = Err(Nested(Box::new(downstream)));
        app.map(Response::new)
            .map_err(|e| Status::from_error(Box::new(e)))
    }
}

#[tokio::test]
async fn a_handler_answers_the_status_its_error_wraps() {
    let server = serve(Server::builder().add_service(TestServer::new(Wrapping)));
    let mut client = TestClient::new(channel(server.addr).await);
    let err = bounded("unary", client.unary_call(Input {}))
        .await
        .expect_err("the handler fails");
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert_eq!(err.message(), "weeaboo");
    assert_eq!(err.details(), &[7u8]);
    assert_eq!(err.metadata().get_str("x-hint"), Some("later"));
    server.stop().await;
}
