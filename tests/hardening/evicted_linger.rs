//! An evicted connection's GOAWAY is not destroyed by a reset, and lingering on it costs no
//! connection slot (`crates/sockrpc-transport/src/server/linger.rs`, `conn.rs`).
//!
//! A plain client has the server's PREFACE at once and may write its preface and calls before
//! the server reads them. Evicted then at the cap, the connection used to write its GOAWAY and
//! close at once with those bytes unread: the kernel answers with a RST, so the client's next
//! write fails with "broken pipe" / "connection reset" before it may have read the GOAWAY, and
//! a stack that drops what it had received on a RST loses the GOAWAY itself. Lingering on its
//! own task would hold the slot eviction exists to free, so the socket is handed to the
//! server's bounded lingering (the refusals' slots): GOAWAY, FIN, read and drop ≤ 64 KiB ≤ 1 s.
//!
//! Determinism: the server runs on the test's runtime (one thread). The newcomer connects, then
//! the stalled client writes its preface and call, both without the test yielding; the runtime
//! then sees both sockets ready in one turn, the accept loop (ready first) evicts before the
//! evicted connection's task runs, and that task checks its eviction before it reads: the
//! client's bytes are unread when it closes.

use crate::evicted::{assert_told_evicted, call_through, capped_server, quiet};
use crate::raw::{concat, echo_message, open, Closed, ECHO_PATH, GOAWAY, PREFACE};
use crate::support::bounded;
use crate::wire::RawConn;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Connects `n` silent clients (no preface) to the server at `addr`.
async fn stalled(addr: std::net::SocketAddr, n: usize) -> Vec<RawConn> {
    let mut conns = Vec::new();
    for _ in 0..n {
        conns.push(RawConn::connect_silent(addr).await);
    }
    conns
}

/// Whether the server still takes what `conn` writes after it closed its end (it lingers)
/// rather than having reset the connection: two writes a moment apart, the second of which
/// fails once the first met a closed socket (or the close already sent a RST).
async fn still_taken(conn: &mut RawConn) -> bool {
    for _ in 0..2 {
        if conn.stream.write_all(&[0u8; 512]).await.is_err() {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

#[tokio::test(start_paused = true)]
async fn an_evicted_client_with_unread_calls_gets_the_goaway_and_no_reset() {
    let _warnings = quiet();
    let server = capped_server(1);
    let mut evicted = RawConn::connect_silent(server.addr).await;
    // Old enough to be evicted.
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Neither step yields to the server (see the module docs).
    let newcomer = std::net::TcpStream::connect(server.addr).expect("newcomer connects");
    let calls = concat(&[PREFACE, &open(1, ECHO_PATH, &[]), &echo_message(1, 7, b"x")]);
    let written = evicted.stream.try_write(&calls).expect("client writes");
    assert_eq!(
        written,
        calls.len(),
        "the whole preface and call written at once"
    );

    let (frames, closed) = evicted.until_closed("the evicted connection").await;
    assert_told_evicted(&frames, "the evicted connection");
    assert!(
        matches!(closed, Closed::Eof),
        "an orderly close: {closed:?}"
    );
    // No RST: what the client still sends (calls made before it read the GOAWAY) is taken.
    assert!(
        still_taken(&mut evicted).await,
        "the evicted connection was reset"
    );
    drop(newcomer);
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_slot_frees_at_once_while_the_evicted_one_lingers() {
    let _warnings = quiet();
    let server = capped_server(1);
    let mut evicted = RawConn::connect_silent(server.addr).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // A real client evicts it and is served while the evicted socket still lingers (its client
    // never closes it).
    let served = bounded("the newcomer's call", call_through(server.addr, 9)).await;
    assert_eq!(served.expect("newcomer served"), 9);
    let (frames, closed) = evicted.until_closed("the evicted connection").await;
    assert!(frames.iter().any(|f| f.kind == GOAWAY), "{frames:?}");
    assert!(matches!(closed, Closed::Eof), "{closed:?}");
    assert!(still_taken(&mut evicted).await, "not lingering");
    server.stop().await;
}

/// More evictions at once than lingering slots (64): every evicted client is told, 64 linger,
/// the rest are closed at once (a later write of theirs is reset), and the server keeps serving.
#[tokio::test(start_paused = true)]
async fn lingering_stays_bounded_under_a_flood_of_evictions() {
    let _warnings = quiet();
    const CAP: usize = 80;
    const LINGERING: usize = 64;
    let server = capped_server(CAP);
    let mut evicted = stalled(server.addr, CAP).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Each silent newcomer evicts one (they are too young to be evicted in turn).
    let newcomers = stalled(server.addr, CAP).await;
    let mut lingering = 0;
    for conn in &mut evicted {
        let (frames, _) = conn.until_closed("an evicted connection").await;
        assert!(
            frames.iter().any(|f| f.kind == GOAWAY),
            "not told: {frames:?}"
        );
    }
    let checks = evicted.iter_mut().map(still_taken);
    for taken in futures_util::future::join_all(checks).await {
        lingering += usize::from(taken);
    }
    // No refusals share the slots here: exactly as many linger as there are slots.
    assert_eq!(
        lingering, LINGERING,
        "{lingering} of {CAP} evicted connections lingered"
    );
    drop(newcomers);
    drop(evicted);
    // The lingering ones let go within the linger (1 s): the server serves on.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let served = bounded("a call after the flood", call_through(server.addr, 3)).await;
    assert_eq!(served.expect("served after the flood"), 3);
    server.stop().await;
}
