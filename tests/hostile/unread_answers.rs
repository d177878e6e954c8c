//! A client that sends many calls with large answers in one write and never reads its socket:
//! the server's write buffer, and so its memory, stays bounded (it stops taking frames from
//! what it already read once the buffer passes its high-water mark, not only before the next
//! read), and every answer still arrives once the client reads. Measured as the peak resident
//! size (VmHWM) of a server in a child process (`memory.rs`'s), so a brief spike counts too.

use crate::memory::{
    assert_growth, child_server, parent_runtime, peak_of, warm_baseline, CHILD_ENV, MIB,
};
use crate::raw::{connect, frame, open, END, END_STREAM, MESSAGE, PREFACE};
use crate::support::{bounded, fresh_call, Witness};
use prost::Message as _;
use sockrpc_tests::child::{test_name, ChildServer};
use sockrpc_tests::echo::GrowRequest;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub(crate) const GROW_PATH: &[u8] = b"/sockrpc.test.Echo/Grow";
/// Calls sent at once; each answer is [`ANSWER`] bytes, 200 MiB in all: about 13 KiB of
/// requests, which the server reads in one or two reads.
const CALLS: u32 = 200;
pub(crate) const ANSWER: u64 = 1 << 20;
/// What the server may hold for this client: its 8 MiB high-water mark, one more answer, the
/// allocator's slack. Buffering every answer would be 200 MiB.
const HELD: u64 = 48 * MIB;

/// A connection's first bytes: the preface, then `calls` `Grow` calls (ids 1 to `calls`)
/// asking for answers of `size` bytes each.
pub(crate) fn grow_calls(calls: u32, size: u64) -> Vec<u8> {
    let mut bytes = PREFACE.to_vec();
    let grow = GrowRequest { size }.encode_to_vec();
    for call_id in 1..=calls {
        bytes.extend_from_slice(&open(call_id, GROW_PATH, &[]));
        bytes.extend_from_slice(&frame(MESSAGE, END_STREAM, call_id, &grow));
    }
    bytes
}

/// Reads frames until `calls` ENDs arrived, for calls 1 to `calls` (bounded by `limit`
/// bytes); returns the END codes.
pub(crate) async fn read_all_ends(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    calls: u32,
    limit: u64,
) -> Vec<u32> {
    let mut codes = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    // Body bytes of the current frame still to skip (MESSAGE bodies are not kept).
    let mut skip: u64 = 0;
    let mut total: u64 = 0;
    let mut preface = false;
    while codes.len() < calls as usize {
        let n = stream.read(&mut buf).await.expect("read answers");
        assert!(
            n > 0,
            "server closed after {} of {calls} answers",
            codes.len()
        );
        total += n as u64;
        assert!(total <= limit, "server sent more than {limit} bytes");
        let mut chunk = &buf[..n];
        let taken = usize::try_from(skip.min(chunk.len() as u64)).expect("fits");
        skip -= taken as u64;
        chunk = &chunk[taken..];
        pending.extend_from_slice(chunk);
        if !preface && pending.len() >= PREFACE.len() {
            assert_eq!(&pending[..8], PREFACE);
            pending.drain(..8);
            preface = true;
        }
        while preface && skip == 0 && pending.len() >= 12 {
            let len = u32::from_be_bytes(pending[..4].try_into().expect("4")) as usize;
            let (kind, call_id) = (
                pending[4],
                u32::from_be_bytes(pending[8..12].try_into().expect("4")),
            );
            if kind == END {
                if pending.len() < 12 + len {
                    break;
                }
                codes.push(u32::from_be_bytes(pending[12..16].try_into().expect("4")));
                assert!((1..=calls).contains(&call_id), "END for call {call_id}");
                pending.drain(..12 + len);
            } else {
                let have = (pending.len() - 12).min(len);
                skip = (len - have) as u64;
                pending.drain(..12 + have);
            }
        }
    }
    codes
}

#[test]
fn answers_a_client_does_not_read_stay_bounded() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return child_server();
    }
    let child = ChildServer::spawn(
        &test_name(
            module_path!(),
            "answers_a_client_does_not_read_stay_bounded",
        ),
        CHILD_ENV,
    );
    sends_calls_then_reads_late(&child, "200 unread 1 MiB answers (peak RSS)");
    child.finish();
}

/// The parent's side of both tests: [`CALLS`] `Grow` calls of [`ANSWER`] bytes to `child` in
/// one write, nothing read for up to 3 s (or until the peak shows the server holding them),
/// the server's growth checked against [`HELD`] as `what`, then every answer read, all OK;
/// the server serves other connections throughout.
pub(crate) fn sends_calls_then_reads_late(child: &ChildServer, what: &str) {
    parent_runtime().block_on(async {
        let (_, virt_before) = warm_baseline(child).await;
        let before = (peak_of(child.pid()).0, virt_before);
        let witness = Witness::start(child.addr).await;
        let calls = grow_calls(CALLS, ANSWER);
        let mut stream = connect(child.addr).await;
        bounded("write the calls", stream.write_all(&calls))
            .await
            .expect("write");
        // Long enough for a server that holds every answer to have done so (handlers that wait
        // included); it stops early when the peak already shows it.
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if peak_of(child.pid()).0.saturating_sub(before.0) >= HELD {
                break;
            }
        }
        // The server goes on serving other connections meanwhile.
        fresh_call(child.addr, 300).await;
        let after = peak_of(child.pid());
        assert_growth(what, before, after, HELD, 2 * HELD);
        // Nothing was lost: once the client reads, every call is answered, in a bounded time
        // (generous: a debug build on a shared machine writes 200 MiB).
        let limit = u64::from(CALLS) * (ANSWER + 1024) + 1024;
        let codes = tokio::time::timeout(
            Duration::from_secs(60),
            read_all_ends(&mut stream, CALLS, limit),
        )
        .await
        .expect("every answer arrives once the client reads");
        assert!(codes.iter().all(|&c| c == 0), "END codes: {codes:?}");
        witness.finish().await;
        drop(stream);
        fresh_call(child.addr, 301).await;
    });
}
