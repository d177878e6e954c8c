//! Calls made before the server's metadata limit reaches their client fail as later ones do
//! when their metadata is past it: `RESOURCE_EXHAUSTED`, saying that the request's metadata
//! exceeds the server's limit, their call alone.
//!
//! Each side announces its limit in a SETTINGS of its own, in answer to the peer's first
//! SETTINGS, so the client learns the server's one round trip after it connects. A plain TCP
//! `Channel` does not wait for it: its first call is refused by the client when the limit came
//! in time (6 runs of 8 here), by the server otherwise, as grpc-go's server refuses headers past
//! its `SETTINGS_MAX_HEADER_LIST_SIZE` that its client sent before it had the server's SETTINGS.
//! A block over the limit by less than the room an OPEN has beside it is read and refused
//! "request metadata of N bytes exceeds the limit of L", as the client later says it. A larger
//! one makes an OPEN past the server's frame limit, skipped unread, and was refused "Open frame
//! of N bytes exceeds the server's limit of F (its metadata limit is L bytes)": neither the
//! request's metadata nor that it exceeds the limit was named, where the same call a moment
//! later was refused for its metadata. Here a raw client sends such OPENs first thing, and a
//! channel makes such calls at once.

use crate::edges::{end_code, until_end};
use crate::raw::{connect, echo_message, frame, open, open_body, send, ECHO_PATH, OPEN, PREFACE};
use crate::support::{bounded, start_serving, EchoImpl, Running};
use bytes::Bytes;
use sockrpc::{Code, Limits, MetadataMap, Request, Status};
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::streamer_server::StreamerServer;
use sockrpc_tests::stream::Chunk;

/// The server's metadata limit (the default).
const LIMIT: usize = 16 * 1024;

/// `entries` entries `big-bin` that count `size` against a limit together (their bytes and 32
/// each).
fn block_of(size: usize, entries: usize) -> MetadataMap {
    let value = size / entries - 1 - "big-bin".len() - 2 - 32;
    let mut map = MetadataMap::new();
    for _ in 0..entries {
        map.append_bin("big-bin", Bytes::from(vec![7u8; value]).into())
            .expect("valid");
    }
    map
}

fn start() -> Running {
    start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .add_service(StreamerServer::new(sockrpc_tests::mirror::Mirror))
            .add_service(EchoServer::new(EchoImpl::default()))
            .serve_with_listener_and_shutdown(listener, shutdown)
    })
}

/// A new channel of one connection whose own metadata limit is 256 KiB, and a unary call on it
/// made at once, with `metadata`; then the same call again, once the first has come back.
async fn first_and_later(server: &Running, metadata: MetadataMap) -> [Status; 2] {
    let endpoint = sockrpc::Endpoint::new("127.0.0.1", server.addr.port())
        .pool_size(1)
        .limits(Limits::default().with_max_metadata_size(256 * 1024));
    let channel = sockrpc::Channel::lazy(endpoint).expect("endpoint");
    let mut client = StreamerClient::new(channel);
    let call = || {
        let mut request = Request::new(Chunk {
            seq: 1,
            payload: Bytes::from_static(b"unary"),
        });
        *request.metadata_mut() = metadata.clone();
        let mut client = client.clone();
        async move { bounded("the call", client.unary(request)).await }
    };
    let first = call().await.expect_err("past the server's limit");
    let later = call().await.expect_err("past the server's limit");
    // The connection goes on.
    let mut request = Request::new(Chunk::default());
    request
        .metadata_mut()
        .insert("x-small", "1".parse().expect("value"))
        .expect("key");
    bounded("a small call", client.unary(request))
        .await
        .expect("served");
    [first, later]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_calls_past_the_servers_metadata_limit_fail_as_later_ones_do() {
    let server = start();
    // Just over the limit (read and refused by the server), and four times over it (an OPEN
    // past the server's frame limit).
    for (size, entries) in [(LIMIT + 1, 1), (8 * LIMIT, 4)] {
        let [first, later] = first_and_later(&server, block_of(size, entries)).await;
        println!("{size}: first {first:?}\n  later {later:?}");
        assert!(later.is_refused_before_sending(), "{later:?}");
        for (which, status) in [("first", &first), ("later", &later)] {
            assert_eq!(
                status.code(),
                Code::ResourceExhausted,
                "{which}: {status:?}"
            );
            for words in ["request metadata", &format!("exceeds the limit of {LIMIT}")] {
                assert!(
                    status.message().contains(words),
                    "{size}, the {which} call: want {words:?}: {status:?}"
                );
            }
        }
    }
    server.stop().await;
}

/// The message of the END for `call_id` among `frames`.
fn end_message(frames: &[crate::raw::ServerFrame], call_id: u32) -> String {
    let end = frames
        .iter()
        .find(|f| f.kind == crate::raw::END && f.call_id == call_id)
        .expect("END");
    let len = u32::from_be_bytes(end.body[4..8].try_into().expect("length")) as usize;
    String::from_utf8_lossy(&end.body[8..8 + len]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opens_sent_before_any_settings_past_the_metadata_limit_are_refused_for_it() {
    let server = start();
    // Call 1 just over the limit (read, refused); call 3 with 192 KiB, an OPEN past the
    // server's frame limit (skipped unread, refused); call 5 served. All in the client's first
    // write, before it could have read the server's SETTINGS.
    let value = vec![7u8; 16 * 1024];
    let just_over: Vec<(&[u8], &[u8])> = vec![(b"big-bin", &value[..LIMIT - 41])];
    let far_over: Vec<(&[u8], &[u8])> = vec![(b"big-bin", &value[..]); 12];
    let mut stream = connect(server.addr).await;
    send(
        &mut stream,
        &[
            PREFACE,
            &frame(OPEN, 0, 1, &open_body(ECHO_PATH, &just_over)),
            &echo_message(1, 1, b"dropped"),
            &frame(OPEN, 0, 3, &open_body(ECHO_PATH, &far_over)),
            &echo_message(3, 3, b"dropped"),
            &open(5, ECHO_PATH, &[]),
            &echo_message(5, 5, b"answered"),
        ],
    )
    .await;
    let mut got = Vec::new();
    let frames = until_end(&mut stream, &mut got, 5).await;
    assert_eq!(end_code(&frames, 5), 0, "{frames:?}");
    for call_id in [1, 3] {
        assert_eq!(end_code(&frames, call_id), Code::ResourceExhausted as u32);
        let why = end_message(&frames, call_id);
        for words in ["request metadata", &format!("exceeds the limit of {LIMIT}")] {
            assert!(why.contains(words), "call {call_id}: want {words:?}: {why}");
        }
    }
    server.stop().await;
}
