//! A streaming call's OPEN read in the same read as a large frame must not keep that frame's
//! buffer alive for as long as the call runs: its metadata (a slice of the read buffer) is
//! copied out. The client sends, again and again, a 4 MiB MESSAGE for a call that does not
//! exist (dropped) followed by OPEN(STREAM) with one small metadata entry, whose handler then
//! waits for a request message that never comes. Measured as the peak resident size of a
//! server in a child process (`memory.rs`'s).

use crate::memory::{assert_growth, child_server, parent_runtime, warm_baseline, CHILD_ENV, MIB};
use crate::raw::{
    concat, connect, frame, header, open_body, read_while_open, ECHO_PATH, MESSAGE, OPEN,
};
use crate::support::{fresh_call, Witness};
use sockrpc_tests::child::{memory_of, test_name, ChildServer};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// The OPEN flag for a streamed request (docs/PROTOCOL.md, *Flags*).
const STREAM: u8 = 0x02;
/// Rounds of (4 MiB MESSAGE, streaming OPEN): 240 MiB pinned if each OPEN kept its buffer.
const ROUNDS: u32 = 60;
/// The message limit: a MESSAGE of exactly this size is buffered whole.
const LARGE: usize = 4 << 20;
const HELD: u64 = 64 * MIB;

#[test]
fn streaming_opens_do_not_pin_large_read_buffers() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return child_server();
    }
    let child = ChildServer::spawn(
        &test_name(
            module_path!(),
            "streaming_opens_do_not_pin_large_read_buffers",
        ),
        CHILD_ENV,
    );
    parent_runtime().block_on(async {
        let before = warm_baseline(&child).await;
        let witness = Witness::start(child.addr).await;
        let mut stream = connect(child.addr).await;
        stream.write_all(crate::raw::PREFACE).await.expect("write");
        let large = vec![0x5A; LARGE];
        let metadata: &[(&[u8], &[u8])] = &[(b"k", b"v")];
        for round in 1..=ROUNDS {
            let bytes = concat(&[
                // For a call never opened: read whole, then dropped.
                &header(LARGE as u32, MESSAGE, 0, 0, 1_000_000 + round),
                &large,
                &frame(OPEN, STREAM, round, &open_body(ECHO_PATH, metadata)),
            ]);
            tokio::time::timeout(Duration::from_secs(30), stream.write_all(&bytes))
                .await
                .expect("the server reads")
                .expect("write");
        }
        // Everything sent has been read once a fresh connection is served and a moment passed.
        fresh_call(child.addr, 500).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        // What is held now, not the transient peak of reading 4 MiB frames, is what counts.
        assert_growth(
            "60 streaming OPENs after 4 MiB frames (RSS now)",
            before,
            memory_of(child.pid()),
            HELD,
            4 * HELD,
        );
        // The streaming calls are still open, waiting.
        read_while_open(&mut stream, Duration::from_millis(200), "streaming calls").await;
        witness.finish().await;
        drop(stream);
        fresh_call(child.addr, 501).await;
    });
    child.finish();
}
