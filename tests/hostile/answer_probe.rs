//! What the raw clients of the answer-window attacks share (`answer_window_wakes.rs`,
//! `answer_window_turns.rs`): the capability they announce, a reader that walks every frame the
//! server sends, and a wait for the server to stop sending (its streams then wait for credit).

use crate::raw::{frame, PREFACE, WINDOW};
use crate::support::bounded;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;

/// `Streamer::Produce`'s path.
pub(crate) const PRODUCE_PATH: &[u8] = b"/sockrpc.test.stream.Streamer/Produce";

/// `CAP_ANSWER_WINDOW` (crates/sockrpc-protocol/src/frame/settings.rs).
pub(crate) const CAP_ANSWER_WINDOW: u32 = 0x20;

/// A WINDOW on call 0: answer credit.
pub(crate) fn credit(bytes: u32) -> Vec<u8> {
    frame(WINDOW, 0, 0, &bytes.to_be_bytes())
}

/// How [`walk_frames`] reads.
#[derive(Clone, Copy)]
pub(crate) enum Pace {
    /// 256 KiB a read, as fast as the server sends.
    Fast,
    /// 16 KiB a read and a pause of 1 ms every 64 KiB: the server's write buffer fills.
    Slow,
}

/// Reads everything the server sends until it closes: counts the bytes into `bytes`, skips
/// the server's PREFACE and hands each whole frame's kind, call id and body length to
/// `on_frame`.
pub(crate) async fn walk_frames(
    mut reader: OwnedReadHalf,
    bytes: &AtomicU64,
    pace: Pace,
    mut on_frame: impl FnMut(u8, u32, usize),
) {
    let mut pending = Vec::new();
    let mut buf = vec![
        0u8;
        match pace {
            Pace::Fast => 256 * 1024,
            Pace::Slow => 16 * 1024,
        }
    ];
    let mut preface = true;
    for reads in 0u64.. {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if matches!(pace, Pace::Slow) && reads % 4 == 3 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        bytes.fetch_add(n as u64, Ordering::Relaxed);
        pending.extend_from_slice(&buf[..n]);
        if preface {
            if pending.len() < PREFACE.len() {
                continue;
            }
            pending.drain(..PREFACE.len());
            preface = false;
        }
        let mut at = 0;
        while pending.len() - at >= 12 {
            let length = u32::from_be_bytes(pending[at..at + 4].try_into().expect("4")) as usize;
            if pending.len() - at < 12 + length {
                break;
            }
            let call_id = u32::from_be_bytes(pending[at + 8..at + 12].try_into().expect("4"));
            on_frame(pending[at + 4], call_id, length);
            at += 12 + length;
        }
        pending.drain(..at);
    }
}

/// Waits until nothing more has arrived for `quiet` (the server waits for credit).
pub(crate) async fn until_quiet(bytes: &AtomicU64, quiet: Duration) {
    bounded("the server stops sending", async {
        loop {
            let before = bytes.load(Ordering::Relaxed);
            tokio::time::sleep(quiet).await;
            if bytes.load(Ordering::Relaxed) == before {
                return;
            }
        }
    })
    .await;
}
