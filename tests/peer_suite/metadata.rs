//! grpc-go's `metadata_test.go` and `TestMetadataUnaryRPC` / `TestMetadataOrderUnaryRPC` /
//! `TestMetadataStreamingRPC`, tonic's `metadata` tests: which keys and values the API takes,
//! how keys fold, and that what a client sends reaches the handler (and what a handler answers
//! reaches the client) byte for byte, in order, in every call shape.

use crate::support::{bounded, channel, serve, with_meta, Peer};
use futures_util::stream;
use sockrpc::protocol::MetadataError;
use sockrpc::{MetadataMap, Request, Server};
use sockrpc_tests::parity::test1_client::Test1Client;
use sockrpc_tests::parity::test1_server::Test1Server;
use sockrpc_tests::parity::Input1;

#[test]
fn keys_fold_to_lowercase_and_lookups_ignore_case() {
    let mut map = MetadataMap::new();
    map.insert_str("X-Mixed-Case", "v").expect("valid");
    map.insert_bin("X-Trace-BIN", b"\x00\xff".into())
        .expect("valid");
    let keys: Vec<&str> = map.iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["x-mixed-case", "x-trace-bin"]);
    assert_eq!(map.get_str("x-MIXED-case"), Some("v"));
    assert_eq!(map.get_bin_bytes("x-trace-bin"), Some(&b"\x00\xff"[..]));
    // Inserting under another spelling of the same key replaces it.
    map.insert_str("x-mixed-CASE", "w").expect("valid");
    assert_eq!(map.get_all("x-mixed-case").count(), 1);
    assert_eq!(map.get_str("x-mixed-case"), Some("w"));
}

#[test]
fn invalid_keys_and_values_are_refused() {
    let mut map = MetadataMap::new();
    for key in [
        "",
        "a b",
        ":authority",
        "k\u{e9}y",
        "key/",
        "k\0",
        "k=v",
        "k\n",
    ] {
        assert!(
            matches!(map.insert_str(key, "v"), Err(MetadataError::InvalidKey(_))),
            "{key:?} is no key"
        );
    }
    assert!(
        map.insert_str("k".repeat(255), "v").is_ok(),
        "255 bytes is a key"
    );
    assert!(map.insert_str("k".repeat(256), "v").is_err(), "256 is not");
    for value in ["line\nbreak", "cr\r", "tab\t", "del\x7f", "nul\0", "\u{e9}"] {
        assert!(
            matches!(
                map.insert_str("x-k", value),
                Err(MetadataError::InvalidValue(_))
            ),
            "{value:?} is no text value"
        );
    }
    // Every printable ASCII byte, and nothing at all, is a text value.
    let printable: String = (0x20u8..=0x7e).map(char::from).collect();
    map.insert_str("x-printable", &printable)
        .expect("printable ASCII");
    map.insert_str("x-empty", "").expect("an empty value");
    assert_eq!(map.get_str("x-printable"), Some(printable.as_str()));
    assert_eq!(map.get_str("x-empty"), Some(""));
    // Text under a -bin key, bytes under a text key: the wrong kind.
    assert!(matches!(
        map.insert_str("x-k-bin", "v"),
        Err(MetadataError::WrongKind(_))
    ));
    assert!(matches!(
        map.insert_bin("x-k", b"v".into()),
        Err(MetadataError::WrongKind(_))
    ));
    // The framework's own prefix is refused in any case.
    assert!(matches!(
        map.insert_str("SockRPC-Anything", "v"),
        Err(MetadataError::Reserved(_))
    ));
}

/// Every byte value, as a -bin value.
fn all_bytes() -> Vec<u8> {
    (0..=255u8).collect()
}

/// The request metadata a `Peer` call echoes back in its headers.
fn rich_request<T>(message: T) -> Request<T> {
    let mut request = with_meta(
        message,
        &[
            ("x-echo-meta", "1"),
            ("X-Upper", "Value With Spaces"),
            ("x-dup", "first"),
            ("x-empty", ""),
            ("x-dup", "second"),
            ("content-type", "application/x-custom"),
        ],
    );
    let metadata = request.metadata_mut();
    metadata
        .append_bin("x-raw-bin", all_bytes().into())
        .expect("bin");
    metadata
        .append_bin("x-raw-bin", Vec::new().into())
        .expect("empty bin");
    metadata.append_str("x-dup", "third").expect("text");
    request
}

fn assert_rich(metadata: &MetadataMap, what: &str) {
    assert_eq!(
        metadata.get_str("x-upper"),
        Some("Value With Spaces"),
        "{what}"
    );
    let dups: Vec<&[u8]> = metadata.get_all("x-dup").collect();
    assert_eq!(
        dups,
        [&b"first"[..], b"second", b"third"],
        "{what}: order kept"
    );
    assert_eq!(metadata.get_str("x-empty"), Some(""), "{what}");
    let raws: Vec<&[u8]> = metadata.get_all("x-raw-bin").collect();
    assert_eq!(raws, [all_bytes().as_slice(), &[]], "{what}: bytes exact");
    assert_eq!(
        metadata.get_str("content-type"),
        Some("application/x-custom"),
        "{what}"
    );
}

#[tokio::test]
async fn metadata_round_trips_exactly_in_every_shape() {
    let server = serve(Server::builder().add_service(Test1Server::new(Peer::default())));
    let mut client = Test1Client::new(channel(server.addr).await);

    let unary = bounded("unary", client.unary_call(rich_request(Input1::default())))
        .await
        .expect("unary");
    assert_rich(unary.metadata(), "unary headers");
    assert_eq!(
        unary.trailers().get_str("x-trailer"),
        Some("t"),
        "unary trailers"
    );

    let response = bounded(
        "stream",
        client.stream_call(rich_request(Input1::default())),
    )
    .await
    .expect("server stream");
    assert_rich(response.metadata(), "server-stream headers");
    let mut messages = response.into_inner();
    while bounded("stream message", messages.message())
        .await
        .expect("message")
        .is_some()
    {}
    let trailers = bounded("trailers", messages.trailers())
        .await
        .expect("a clean end")
        .expect("trailers once the stream ended");
    assert_eq!(
        trailers.get_str("x-trailer"),
        Some("t"),
        "server-stream trailers"
    );

    let requests = stream::iter(vec![Input1::default(); 3]);
    let collected = bounded("collect", client.collect(rich_request(requests)))
        .await
        .expect("client stream");
    assert_rich(collected.metadata(), "client-stream headers");
    assert_eq!(
        collected.trailers().get_str("x-trailer"),
        Some("t"),
        "client-stream trailers"
    );

    let requests = stream::iter(vec![Input1::default(); 3]);
    let chat = bounded("chat", client.chat(rich_request(requests)))
        .await
        .expect("bidi");
    assert_rich(chat.metadata(), "bidi headers");
    let mut messages = chat.into_inner();
    let mut answers = 0;
    while bounded("chat message", messages.message())
        .await
        .expect("message")
        .is_some()
    {
        answers += 1;
    }
    assert_eq!(answers, 3);
    let trailers = bounded("trailers", messages.trailers())
        .await
        .expect("a clean end")
        .expect("trailers once the stream ended");
    assert_eq!(trailers.get_str("x-trailer"), Some("t"), "bidi trailers");
    server.stop().await;
}
