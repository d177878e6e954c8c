//! SETTINGS sent again and again, late, and changing its mind. HTTP/2 servers had to learn that
//! a peer can flood SETTINGS (CVE-2019-9515): each one owed an ACK, and a client that never read
//! them made the server queue ACKs without bound. A sockrpc server answers a client's SETTINGS
//! once at most (its own limits, to the first that shows `CAP_METADATA_LIMIT`,
//! `server/announced.rs`): 20,000 SETTINGS frames, with the bit and without, `CAP_PIECES` on and
//! off between large answers, get that one answer and nothing more, every answer on the
//! connection still comes whole, and the connection goes on.

use crate::raw::{
    connect, echo_message, frame, open, server_frames, ServerFrame, ECHO_PATH, END, MESSAGE,
    PREFACE, SETTINGS, WINDOW,
};
use crate::support::{bounded, start_echo, EchoImpl, Witness};
use prost::Message as _;
use sockrpc_tests::echo::EchoReply;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `CAP_PIECES` and `CAP_METADATA_LIMIT` (crates/sockrpc-protocol/src/frame/settings.rs).
const CAP_PIECES: u32 = 0x8;
const CAP_METADATA_LIMIT: u32 = 0x10;

/// SETTINGS frames in each burst.
const BURST: usize = 5_000;

/// Bytes of each echoed payload: a few pieces' worth (a piece is 64 KiB).
const PAYLOAD: usize = 200 * 1024;

/// A client's SETTINGS: `capabilities`, and the metadata limit it announces, if any.
fn settings(capabilities: u32, max_metadata: Option<u32>) -> Vec<u8> {
    let mut body = capabilities.to_be_bytes().to_vec();
    if let Some(limit) = max_metadata {
        body.extend_from_slice(&limit.to_be_bytes());
    }
    frame(WINDOW, SETTINGS, 0, &body)
}

/// The SETTINGS frames among what the server sent (its first one included).
fn server_settings(bytes: &[u8]) -> usize {
    let mut rest = &bytes[PREFACE.len()..];
    let mut count = 0;
    while rest.len() >= 12 {
        let length = u32::from_be_bytes(rest[..4].try_into().expect("4")) as usize;
        if rest.len() < 12 + length {
            break;
        }
        let call_id = u32::from_be_bytes(rest[8..12].try_into().expect("4"));
        if rest[4] == WINDOW && call_id == 0 && rest[5] & SETTINGS != 0 {
            count += 1;
        }
        rest = &rest[12 + length..];
    }
    count
}

/// The payload of call `call_id`'s answer: its MESSAGE frames (the pieces of one message, or
/// the whole) put together and decoded.
fn echoed(frames: &[ServerFrame], call_id: u32) -> Vec<u8> {
    let message: Vec<u8> = frames
        .iter()
        .filter(|f| f.kind == MESSAGE && f.call_id == call_id)
        .flat_map(|f| f.body.iter().copied())
        .collect();
    EchoReply::decode(&message[..])
        .unwrap_or_else(|err| panic!("call {call_id}'s answer: {err}"))
        .payload
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_floods_and_changes_of_mind_get_one_answer_and_break_nothing() {
    let server = start_echo(EchoImpl::default());
    let witness = Witness::start(server.addr).await;
    let mut stream = connect(server.addr).await;
    let payload = |seed: u8| -> Vec<u8> { (0..PAYLOAD).map(|i| (i as u8) ^ seed).collect() };
    let both = CAP_PIECES | CAP_METADATA_LIMIT;
    // Each burst ends with a large echo: pieces on (and the limit announced, again and again),
    // pieces off, pieces on with the limit bit and no limit, then a limit of 1 byte (echo answers
    // carry no metadata).
    let bursts: [(Vec<u8>, u32); 4] = [
        (settings(both, Some(16 * 1024)).repeat(BURST), 1),
        (settings(0, None).repeat(BURST), 3),
        (settings(both, None).repeat(BURST), 5),
        (
            [settings(both, Some(1)), settings(CAP_METADATA_LIMIT, None)]
                .concat()
                .repeat(BURST / 2),
            7,
        ),
    ];
    let mut wire = PREFACE.to_vec();
    for (burst, call_id) in &bursts {
        wire.extend_from_slice(burst);
        wire.extend_from_slice(&open(*call_id, ECHO_PATH, &[]));
        wire.extend_from_slice(&echo_message(
            *call_id,
            u64::from(*call_id),
            &payload(*call_id as u8),
        ));
    }
    // Written while the answers are read: the client here reads as it writes.
    let (mut reader, mut writer) = stream.split();
    let write = async {
        bounded("write the bursts", writer.write_all(&wire))
            .await
            .expect("write");
    };
    let read = async {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        bounded("every answer", async {
            loop {
                let n = reader.read(&mut buf).await.expect("read");
                assert!(
                    n > 0,
                    "the server closed the connection: {:?}",
                    server_frames(&got)
                );
                got.extend_from_slice(&buf[..n]);
                let frames = server_frames(&got);
                if frames.iter().any(|f| f.kind == END && f.call_id == 7) {
                    return;
                }
            }
        })
        .await;
        // Anything the last burst would still make the server send.
        let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
        while let Ok(read) = tokio::time::timeout_at(deadline, reader.read(&mut buf)).await {
            let n = read.expect("read");
            assert!(n > 0, "the server closed the connection");
            got.extend_from_slice(&buf[..n]);
        }
        got
    };
    let ((), got) = tokio::join!(write, read);
    let frames = server_frames(&got);
    assert_eq!(
        server_settings(&got),
        2,
        "{} SETTINGS from the client: the server's own, and one answer",
        4 * BURST
    );
    for (_, call_id) in &bursts {
        let end = frames
            .iter()
            .find(|f| f.kind == END && f.call_id == *call_id)
            .unwrap_or_else(|| panic!("call {call_id} ended"));
        assert_eq!(end.body[..4], [0, 0, 0, 0], "call {call_id} ends OK");
        assert!(
            echoed(&frames, *call_id) == payload(*call_id as u8),
            "call {call_id}'s answer came whole"
        );
    }
    let control = got.len() - 4 * PAYLOAD;
    assert!(
        control < 8 * 1024,
        "beside the answers, the server sent {control} bytes"
    );
    drop(stream);
    witness.finish().await;
    server.stop().await;
}
