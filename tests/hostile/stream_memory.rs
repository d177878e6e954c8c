//! What thousands of streams a client opens, half-closes at once and never touches again cost
//! the server: each holds its handler's future, its queue and window state, its place in the
//! connection's tables — a few KiB (about 2.3 KiB measured, in a debug build) for about 50
//! bytes on the wire, bounded per connection by the call limit (4,096). Nothing per stream may
//! be reserved ahead of use: a window's worth of buffer (64 KiB) each would be 1 GiB here.
//! Measured as `memory.rs` does: the peak resident size (VmHWM) of a server in a child process.

use crate::edges::{end_code, until_end};
use crate::memory::{assert_growth, child_serving, parent_runtime, peak_of, CHILD_ENV, MIB};
use crate::raw::open_body;
use crate::raw::{connect, frame, open, send, END_STREAM, MESSAGE, OPEN, PREFACE};
use crate::stream_reset::{Holding, COLLECT_PATH, UNARY_PATH};
use prost::Message as _;
use sockrpc_tests::child::{memory_of, test_name, ChildServer};
use sockrpc_tests::stream::streamer_server::StreamerServer;
use sockrpc_tests::stream::Chunk;
use std::net::SocketAddr;
use tokio::net::TcpStream;

/// Connections, and streams each opens (under the call limit, with room for one more call).
const CONNECTIONS: u32 = 4;
const STREAMS: u32 = 4_000;
/// OPEN flags: the client streams its request (`STREAM`), and has already half-closed it.
const HALF_CLOSED: u8 = 0x02 | END_STREAM;

/// A `Unary` call on `stream` as call `call_id`, answered OK: every frame sent before it on the
/// connection has been taken. `first`: the server's preface is still to be read.
pub(crate) async fn unary(stream: &mut TcpStream, call_id: u32, first: bool) {
    let chunk = Chunk {
        seq: u64::from(call_id),
        payload: bytes::Bytes::from_static(b"unary"),
    };
    send(
        stream,
        &[
            &open(call_id, UNARY_PATH, &[]),
            &frame(MESSAGE, END_STREAM, call_id, &chunk.encode_to_vec()),
        ],
    )
    .await;
    // `until_end` reads what follows the server's preface.
    let mut got = if first { Vec::new() } else { PREFACE.to_vec() };
    let frames = until_end(stream, &mut got, call_id).await;
    assert_eq!(end_code(&frames, call_id), 0, "unary call {call_id}");
}

/// A connection with `streams` half-closed `Collect` streams open, all started.
async fn holding(addr: SocketAddr, streams: u32) -> TcpStream {
    let mut stream = connect(addr).await;
    let mut opens = PREFACE.to_vec();
    for call_id in 1..=streams {
        opens.extend_from_slice(&frame(
            OPEN,
            HALF_CLOSED,
            call_id,
            &open_body(COLLECT_PATH, &[]),
        ));
    }
    send(&mut stream, &[&opens]).await;
    unary(&mut stream, streams + 1, true).await;
    stream
}

#[test]
fn thousands_of_half_closed_streams_hold_a_few_kib_each() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return child_serving(|listener, shutdown| {
            sockrpc::Server::builder()
                .add_service(StreamerServer::new(Holding::default()))
                .serve_with_listener_and_shutdown(listener, shutdown)
        });
    }
    let child = ChildServer::spawn(
        &test_name(
            module_path!(),
            "thousands_of_half_closed_streams_hold_a_few_kib_each",
        ),
        CHILD_ENV,
    );
    parent_runtime().block_on(async {
        // Warm up: a connection with a few streams, closed again.
        drop(holding(child.addr, 100).await);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let before = memory_of(child.pid());
        let mut connections = Vec::new();
        for _ in 0..CONNECTIONS {
            connections.push(holding(child.addr, STREAMS).await);
        }
        let after = peak_of(child.pid());
        // 16,000 streams: about 37 MiB measured; 1 GiB with a window reserved for each.
        assert_growth(
            "16,000 half-closed streams",
            before,
            after,
            96 * MIB,
            192 * MIB,
        );
        // Every connection still serves.
        for (i, stream) in connections.iter_mut().enumerate() {
            unary(stream, STREAMS + 3 + 2 * i as u32, false).await;
        }
    });
    child.finish();
}
