//! A unary call opened in the read batch after which the server stops reading for its inbound
//! budget (streams whose handlers do not read, from a client that ignores the connection
//! window: `server/conn.rs`) is settled then, not once reading resumes: its deadline ends it
//! during the pause. Before, it was left unsettled (its path and metadata still slices of the
//! read buffer, no expiry armed) for as long as the pause lasted, here for ever. On tokio's
//! paused clock.

use crate::edges::{end_code, until_end};
use crate::raw::{connect, frame, open_body, send, MESSAGE, OPEN, PREFACE};
use crate::stream_reset::{Holding, COLLECT_PATH, UNARY_PATH};
use crate::support::{bounded, start_serving};
use sockrpc::protocol::frame::{message_charge, CONNECTION_WINDOW, MESSAGE_CHARGE};
use sockrpc::protocol::Limits;
use sockrpc_tests::stream::streamer_server::StreamerServer;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// OPEN flag: the client streams its request.
const STREAM: u8 = 0x02;
/// The messages that fill the streams' queues, each on a stream of its own (its window
/// allows one message whatever its size).
const FILL: usize = 4_000_000;
const DEADLINE_EXCEEDED: u32 = 4;

/// An OPEN of `path` with `flags`, whose deadline is `timeout_us` away (0: none).
fn open_with(call_id: u32, flags: u8, path: &[u8], timeout_us: u64) -> Vec<u8> {
    let mut body = open_body(path, &[]);
    body[..8].copy_from_slice(&timeout_us.to_be_bytes());
    frame(OPEN, flags, call_id, &body)
}

#[tokio::test(start_paused = true)]
async fn a_call_opened_as_reading_pauses_for_the_inbound_budget_ends_at_its_deadline() {
    let server = start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .idle_timeout(None)
            .keepalive(None)
            .add_service(StreamerServer::new(Holding::default()))
            .serve_with_listener_and_shutdown(listener, shutdown)
    });
    // Where the server stops reading (`server/respond.rs` `pause_at`): the connection window
    // and one message past it, in message charges.
    let pause_at = CONNECTION_WINDOW + message_charge(Limits::default().max_message_size);
    // `Collect` streams that never read, queued to 512 charges under it.
    let mut fill = PREFACE.to_vec();
    let mut left = pause_at - 512;
    let mut call_id = 1;
    while left > 0 {
        let len = FILL.min(left - MESSAGE_CHARGE);
        fill.extend_from_slice(&open_with(call_id, STREAM, COLLECT_PATH, 0));
        fill.extend_from_slice(&frame(MESSAGE, 0, call_id, &vec![0; len]));
        left -= message_charge(len);
        call_id += 2;
    }
    let mut stream = connect(server.addr).await;
    bounded("write the streams", stream.write_all(&fill))
        .await
        .expect("write");
    // The server takes all of it (it runs until nothing is left to read; only then does the
    // paused clock move), and reads on.
    tokio::time::sleep(Duration::from_millis(1)).await;
    // In one read: a message that takes the queues past the budget, then a unary OPEN whose
    // MESSAGE does not come, with a deadline of 200 ms.
    let unary = call_id + 2;
    send(
        &mut stream,
        &[
            &open_with(call_id, STREAM, COLLECT_PATH, 0),
            &frame(MESSAGE, 0, call_id, &[0; 1024]),
            &open_with(unary, 0, UNARY_PATH, 200_000),
        ],
    )
    .await;
    let mut got = Vec::new();
    let frames = until_end(&mut stream, &mut got, unary).await;
    assert_eq!(end_code(&frames, unary), DEADLINE_EXCEEDED, "{frames:?}");
    drop(stream);
    server.stop().await;
}
