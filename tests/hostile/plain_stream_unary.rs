//! A unary method opened as a stream, whose OPEN names an encoding and whose one message comes
//! plain, counts nothing for that message against the connection's budget of running requests,
//! as a stream's plain message does (`RequestCharge::hold(0)`) and a plain unary request beyond
//! its wire size does (`server/call.rs` attaches a `RequestCharge` to a unary call only when its
//! message came compressed).
//!
//! The service layer's unary handler (`single_request`) added the message's size to the
//! charge the transport attaches to every stream whose OPEN names an encoding, compressed or
//! not: two such calls of 600 KiB plain messages whose handlers sleep counted 1.2 MiB under a
//! 1 MiB budget, and every other call on the connection was refused `RESOURCE_EXHAUSTED` for
//! as long as they slept. (sockrpc's own clients open a unary method as a unary call; another
//! client may not.)

use crate::compressed_running::{ends, RESOURCE_EXHAUSTED};
use crate::raw::PREFACE;
use crate::raw::{echo_message, frame, open, open_body, ECHO_PATH, END_STREAM, MESSAGE, OPEN};
use crate::support::{bounded, start_serving, EchoImpl};
use prost::Message as _;
use sockrpc::CompressionEncoding;
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::SleepRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SLEEP_PATH: &[u8] = b"/sockrpc.test.Echo/Sleep";
/// OPEN: the client streams its request (`STREAM`), with encoding fields (`ENCODING`).
const STREAM_WITH_ENCODING: u8 = 0x02 | 0x08;
const BUDGET: usize = 1 << 20;
/// Each sleeping call's plain message: two are past the budget, one is not.
const TOKEN: usize = 600 * 1024;

/// `Sleep` opened as a stream naming gzip for what it sends, and its one message, plain: a
/// minute's sleep with a `TOKEN`-byte token.
fn plain_stream_of_unary(call_id: u32) -> Vec<u8> {
    let mut body = open_body(SLEEP_PATH, &[]);
    // Encoding fields: length 3, accept gzip, send gzip (docs/COMPRESSION.md).
    body.extend_from_slice(&[3, 0, 1, 1]);
    let sleep = SleepRequest {
        millis: 60_000,
        token: "t".repeat(TOKEN),
    }
    .encode_to_vec();
    let mut bytes = frame(OPEN, STREAM_WITH_ENCODING, call_id, &body);
    bytes.extend_from_slice(&frame(MESSAGE, END_STREAM, call_id, &sleep));
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_message_of_a_unary_method_opened_as_a_stream_counts_as_a_streams() {
    let service = EchoImpl::default();
    let sleeping = std::sync::Arc::clone(&service.sleeping);
    let running = start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .max_running_requests_size(BUDGET)
            .add_service(EchoServer::new(service).accept_compressed(CompressionEncoding::Gzip))
            .serve_with_listener_and_shutdown(listener, shutdown)
    });
    let mut stream = TcpStream::connect(running.addr).await.expect("connect");
    stream.write_all(PREFACE).await.expect("write");
    // One at a time: the handler has read its message (and counted it, if it does) once it
    // sleeps.
    for call_id in [1, 3] {
        stream
            .write_all(&plain_stream_of_unary(call_id))
            .await
            .expect("write");
        bounded("the sleeping handler starts", sleeping.notified()).await;
    }
    let last = 5;
    let mut call = open(last, ECHO_PATH, &[]);
    call.extend_from_slice(&echo_message(last, 7, b"after"));
    stream.write_all(&call).await.expect("write");
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    bounded("the unary call after them is answered", async {
        while !ends(&got).iter().any(|(id, _)| *id == last) {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "the server closed the connection");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    let ends = ends(&got);
    assert!(
        !ends.iter().any(|(id, _)| *id != last),
        "the sleeping calls ended: {ends:?}"
    );
    assert_ne!(
        ends.iter()
            .find(|(id, _)| *id == last)
            .map(|(_, code)| *code),
        Some(RESOURCE_EXHAUSTED),
        "two plain messages of {TOKEN} bytes counted against the budget of {BUDGET}"
    );
    assert_eq!(
        ends.iter()
            .find(|(id, _)| *id == last)
            .map(|(_, code)| *code),
        Some(0),
        "the call after them is served"
    );
    drop(stream);
    running.stop().await;
}
