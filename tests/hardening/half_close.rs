//! Behaviour 2: a MESSAGE after the client's own half-close — an END frame, or END_STREAM on
//! its last MESSAGE — is a protocol error. The connection is closed with a GOAWAY that says so,
//! and the handler never sees the message.
//!
//! Before the fix, the message was queued for the handler as if the stream had never ended.

use crate::raw::{concat, frame, INTERNAL, MESSAGE};
use crate::service::HardStreamer;
use crate::support::Running;
use crate::wire::{half_close, open_with, RawConn, COLLECT_PATH, STREAM};
use prost::Message as _;
use sockrpc::Server;
use sockrpc_tests::stream::streamer_server::StreamerServer;
use sockrpc_tests::stream::Chunk;
use std::time::Duration;

fn chunk(call_id: u32, seq: u64, flags: u8) -> Vec<u8> {
    let body = Chunk {
        seq,
        payload: vec![1; 8].into(),
    }
    .encode_to_vec();
    frame(MESSAGE, flags, call_id, &body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_after_half_close_closes_the_connection() {
    let streamer = HardStreamer::default();
    let server =
        Running::start(Server::builder().add_service(StreamerServer::new(streamer.clone())));
    let cases: [(&str, Vec<u8>); 2] = [
        (
            "OPEN(STREAM), END, MESSAGE",
            concat(&[
                &open_with(1, COLLECT_PATH, Duration::ZERO, STREAM),
                &half_close(1),
                &chunk(1, 1, 0),
            ]),
        ),
        (
            "OPEN(STREAM), MESSAGE(END_STREAM), MESSAGE",
            concat(&[
                &open_with(1, COLLECT_PATH, Duration::ZERO, STREAM),
                &chunk(1, 1, crate::raw::END_STREAM),
                &chunk(1, 2, 0),
            ]),
        ),
    ];
    for (name, bytes) in cases {
        let before = streamer.seen.collected();
        let mut conn = RawConn::connect(server.addr).await;
        conn.send(&bytes).await;
        let (code, reason) = conn.goaway_then_close(name).await;
        assert_eq!(code, INTERNAL, "{name}: GOAWAY code ({reason})");
        assert!(
            reason.contains("after its half-close"),
            "{name}: GOAWAY reason {reason:?}"
        );
        // Give a handler that wrongly got the message every chance to count it.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let seen = streamer.seen.collected() - before;
        let allowed = usize::from(name.contains("END_STREAM"));
        assert!(
            seen <= allowed,
            "{name}: the handler read {seen} message(s); only those before the half-close count"
        );
    }
    server.stop().await;
}
