//! OPENs whose request MESSAGE never comes, each with a metadata block at the 16 KiB limit made
//! of the smallest entries (a one-byte key, an empty value: four bytes on the wire, far more
//! held as a parsed entry): the server holds them until they expire, and what it holds for one
//! connection stays bounded however many the client sends (under the call cap). Measured as the
//! peak resident size of a server in a child process (`memory.rs`'s).

use crate::memory::{
    assert_growth, child_server, parent_runtime, peak_of, warm_baseline, CHILD_ENV, MIB,
};
use crate::raw::{
    connect, echo_message, frame, read_while_open, server_frames, ECHO_PATH, END, OPEN, PREFACE,
};
use crate::support::{fresh_call, Witness};
use sockrpc_tests::child::{test_name, ChildServer};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// OPENs sent, fewer than the default call cap (4096): none is refused for the cap.
const OPENS: u32 = 1000;
/// Entries per metadata block: 2 + 4 × 455 bytes, with HTTP/2's 32 bytes per entry 16,382,
/// just under the 16 KiB limit.
const ENTRIES: usize = 455;
/// Growth allowed: holding every OPEN as parsed would be several hundred MiB.
const HELD: u64 = 64 * MIB;

/// An OPEN of `call_id` for the echo method, no deadline, `ENTRIES` entries `a: ""`.
fn open_with_many_entries(call_id: u32) -> Vec<u8> {
    let mut body = Vec::with_capacity(12 + ECHO_PATH.len() + 4 * ENTRIES);
    body.extend_from_slice(&0u64.to_be_bytes());
    body.extend_from_slice(&(ECHO_PATH.len() as u16).to_be_bytes());
    body.extend_from_slice(ECHO_PATH);
    body.extend_from_slice(&(ENTRIES as u16).to_be_bytes());
    for _ in 0..ENTRIES {
        body.extend_from_slice(&[1, b'a', 0, 0]);
    }
    frame(OPEN, 0, call_id, &body)
}

#[test]
fn pending_opens_with_large_metadata_stay_bounded() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return child_server();
    }
    let child = ChildServer::spawn(
        &test_name(
            module_path!(),
            "pending_opens_with_large_metadata_stay_bounded",
        ),
        CHILD_ENV,
    );
    parent_runtime().block_on(async {
        let (_, virt_before) = warm_baseline(&child).await;
        let before = (peak_of(child.pid()).0, virt_before);
        let witness = Witness::start(child.addr).await;
        let mut opens = PREFACE.to_vec();
        for call_id in 1..=OPENS {
            opens.extend_from_slice(&open_with_many_entries(call_id));
        }
        let mut stream = connect(child.addr).await;
        // 16 MiB: the server answers some OPENs meanwhile (a refusal is a few bytes), so the
        // write cannot stall on a full receive buffer of ours.
        tokio::time::timeout(Duration::from_secs(60), stream.write_all(&opens))
            .await
            .expect("the server reads the OPENs")
            .expect("write");
        // The server has read every OPEN once a frame sent after them is answered: call 1's
        // request MESSAGE, which must still be served (the first OPEN is never refused).
        stream
            .write_all(&echo_message(1, 7, b"after"))
            .await
            .expect("write");
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        tokio::time::timeout(Duration::from_secs(60), async {
            while !server_frames(&got)
                .iter()
                .any(|f| f.kind == END && f.call_id == 1)
            {
                let n = stream.read(&mut buf).await.expect("read");
                assert!(n > 0, "server closed the connection");
                got.extend_from_slice(&buf[..n]);
            }
        })
        .await
        .expect("call 1 is answered");
        let end = server_frames(&got)
            .into_iter()
            .find(|f| f.kind == END && f.call_id == 1)
            .expect("END");
        assert_eq!(&end.body[..4], &0u32.to_be_bytes(), "call 1 ends OK");
        fresh_call(child.addr, 400).await;
        let after = peak_of(child.pid());
        assert_growth(
            "1000 pending OPENs with 4090 metadata entries each (peak RSS)",
            before,
            after,
            HELD,
            4 * HELD,
        );
        // The connection is still open: the pending OPENs wait for their messages.
        read_while_open(&mut stream, Duration::from_millis(200), "pending OPENs").await;
        witness.finish().await;
        drop(stream);
        fresh_call(child.addr, 401).await;
    });
    child.finish();
}
