//! A client's stream senders waiting for the server's connection credit (`CAP_CONNECTION_WINDOW`,
//! `client/credit.rs`) are woken a few at a time as credit comes, not all at once, and a
//! GOAWAY repeated does not wake them at all.
//!
//! The mirror of `answer_window_wakes.rs`, with the roles swapped: a hostile server announces
//! the connection window, reads everything and credits nothing until hundreds of streams wait
//! for credit, then credits one message at a time, a 16-byte WINDOW frame each. The client used
//! to wake every waiting sender per frame: one sent, the window closed again, and the rest
//! waited again, so each frame cost a poll of every blocked stream (about 600 here). So did each
//! GOAWAY of a server repeating it, 22 bytes a frame, which takes no call away from a connection
//! it already drains. Counted here as the polls of the senders' `poll_ready`, each sender in a
//! task of its own; then the server credits everything, and every sender must still finish.
//! And a server that takes the window away (a later SETTINGS without `CAP_CONNECTION_WINDOW`)
//! lets the senders waiting for its credit go: they used to wait for a WINDOW that would never
//! come.
//!
//! Each credit is checked against the server's own count ([`credit_in_steps`]): while what it
//! read of the client's messages, less its credit, leaves the window open, a message must come.
//! A first version counted on one message per credit of one message, and hung under CI's
//! `cargo test` (all tests at once, threads preempted): senders that find the window open at
//! once each send a message (`client/credit.rs`), so the window may be overdrawn by one, and the
//! next credit of one message rightly leaves it spent. Also: credits smaller than a message,
//! and senders dropped while the credit that woke them is read (a turn they held passes on).

use crate::answer_probe::{credit, walk_frames, Pace};
use crate::raw::{frame, MESSAGE, PING, PREFACE, SETTINGS, WINDOW};
use crate::server_probe::{goaway, PONG};
use crate::support::bounded;
use bytes::Bytes;
use sockrpc::transport::ClientConnection;
use sockrpc::{Limits, MetadataMap, MethodPath};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::task::JoinHandle;

/// Streams, each sending [`MESSAGES`] messages of [`SIZE`] bytes: 56 KiB a stream, within its
/// own 64 KiB window (which the server never credits); 33 MiB in all, twice the 16 MiB
/// connection window, so that most senders wait for connection credit.
const STREAMS: usize = 600;
const MESSAGES: usize = 7;
const SIZE: usize = 8 * 1024;
/// What one message charges the connection window: its length and 64 (`message_charge`).
const CHARGE: u32 = SIZE as u32 + 64;
/// `CAP_CONNECTION_WINDOW` (crates/sockrpc-protocol/src/frame/settings.rs).
const CAP_CONNECTION_WINDOW: u32 = 0x2;
/// Credits of one message each, one WINDOW frame a write.
const CREDITS: u64 = 60;
/// Polls of senders a credit of one message may cost: the few woken with turns, the one that
/// goes and the one it passes its turn to (about 600 when every waiting sender was woken).
const POLLS_PER_CREDIT: u64 = 20;
/// The connection window (`frame::CONNECTION_WINDOW`).
const WINDOW_BYTES: u64 = 16 * 1024 * 1024;
/// Credits of a quarter of a message each, one WINDOW frame a write.
const QUARTER_CREDITS: u64 = 120;
/// GOAWAYs after the first, one a write.
const GOAWAYS: u64 = 40;
/// GOAWAY code UNAVAILABLE.
const UNAVAILABLE: u32 = 14;

/// What the server has read from the client.
#[derive(Default)]
struct Seen {
    bytes: AtomicU64,
    messages: AtomicU64,
    pongs: AtomicU64,
}

/// A server by hand: greets with the connection window and room for every stream, reads
/// (and counts) everything the client sends, and hands back its write half, for the test to
/// credit or send GOAWAYs with.
async fn stingy_server() -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Receiver<OwnedWriteHalf>,
    Arc<Seen>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Seen::default());
    let counted = Arc::clone(&seen);
    let (give, writer) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let Ok((socket, _)) = listener.accept().await else {
            return;
        };
        let (reader, mut writer) = socket.into_split();
        let word = (u32::try_from(STREAMS * 2).expect("fits") << 16) | CAP_CONNECTION_WINDOW;
        let hello = [
            PREFACE.as_slice(),
            &frame(WINDOW, SETTINGS, 0, &word.to_be_bytes()),
        ]
        .concat();
        if writer.write_all(&hello).await.is_err() {
            return;
        }
        let _ = give.send(writer);
        walk_frames(
            reader,
            &counted.bytes,
            Pace::Fast,
            |kind, _, _| match kind {
                MESSAGE => {
                    counted.messages.fetch_add(1, Ordering::Relaxed);
                }
                PONG => {
                    counted.pongs.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            },
        )
        .await;
    });
    (addr, writer, seen)
}

/// The client's streams, each sender in a task of its own counting its polls into `polls`.
pub(crate) struct Senders {
    pub(crate) conn: ClientConnection,
    pub(crate) polls: Arc<AtomicU64>,
    pub(crate) tasks: Vec<JoinHandle<sockrpc::transport::StreamSender>>,
    pub(crate) receivers: Vec<sockrpc::transport::StreamReceiver>,
}

async fn start_senders(addr: std::net::SocketAddr) -> Senders {
    spawn_senders(addr, STREAMS, MESSAGES, SIZE).await
}

/// Connects to `addr` and opens `streams` `Collect` streams, each sending `messages` messages
/// of `size` bytes from a task of its own that counts every poll of its sender.
pub(crate) async fn spawn_senders(
    addr: std::net::SocketAddr,
    streams: usize,
    messages: usize,
    size: usize,
) -> Senders {
    let socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let conn = ClientConnection::spawn_tcp(socket, Limits::default());
    bounded("handshake", conn.ready()).await.expect("handshake");
    let path = MethodPath::from_static("/sockrpc.test.stream.Streamer/Collect");
    let metadata = MetadataMap::new();
    let message = Bytes::from(vec![5u8; size]);
    let polls = Arc::new(AtomicU64::new(0));
    let mut receivers = Vec::with_capacity(streams);
    let mut tasks = Vec::with_capacity(streams);
    for _ in 0..streams {
        let (mut sender, receiver) = conn
            .open_stream(&path, &metadata, None, None)
            .expect("open");
        receivers.push(receiver);
        let polls = Arc::clone(&polls);
        let message = message.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..messages {
                std::future::poll_fn(|cx| {
                    polls.fetch_add(1, Ordering::Relaxed);
                    match sender.poll_ready(cx) {
                        Poll::Ready(Ok(())) => Poll::Ready(sender.send(cx, &message)),
                        Poll::Ready(Err(status)) => Poll::Ready(Err(status)),
                        Poll::Pending => Poll::Pending,
                    }
                })
                .await
                .expect("sent");
            }
            sender
        }));
    }
    Senders {
        conn,
        polls,
        tasks,
        receivers,
    }
}

/// Whether the window is spent as the server counts it: what it read of the client's
/// messages, less the `credited` bytes it gave back.
fn spent(seen: &Seen, credited: u64) -> bool {
    seen.messages.load(Ordering::Relaxed) * u64::from(CHARGE) >= WINDOW_BYTES + credited
}

/// Waits until the client has spent the window and sent nothing for a while: its senders wait
/// for credit. Checks that they do (not every message sent).
async fn until_waiting(seen: &Seen) {
    bounded("the client spends the window", async {
        while !spent(seen, 0) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    crate::answer_probe::until_quiet(&seen.bytes, Duration::from_millis(300)).await;
    let sent = seen.messages.load(Ordering::Relaxed);
    assert!(
        sent < (STREAMS * MESSAGES) as u64 / 2 + 100,
        "{sent} messages sent: the senders do not wait for connection credit"
    );
}

/// Credits `credits` times `each` bytes, a WINDOW frame and a PING a write. After each, waits
/// for the client to have read it (its PONG) and, while the server's count says the window is
/// open, for the client's messages to spend it: a sender left waiting on an open window (a lost
/// turn) times out here. `credited`: the credit given so far, kept for the next call.
async fn credit_in_steps(
    writer: &mut OwnedWriteHalf,
    seen: &Seen,
    credited: &mut u64,
    credits: u64,
    each: u32,
) {
    for n in 0..credits {
        let pongs = seen.pongs.load(Ordering::Relaxed);
        *credited += u64::from(each);
        let total = *credited;
        let out = [credit(each), frame(PING, 0, 0, &n.to_be_bytes())].concat();
        writer.write_all(&out).await.expect("credit");
        bounded("the client reads the credit and spends it", async {
            while seen.pongs.load(Ordering::Relaxed) == pongs || !spent(seen, total) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
    }
}

/// Credits everything until every sender has sent all its messages (none is left waiting),
/// then closes the streams.
async fn finish(senders: Senders, writer: &mut OwnedWriteHalf) {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::clone(&stop);
    let tasks = senders.tasks;
    let finished = tokio::spawn(async move {
        let mut kept = Vec::with_capacity(tasks.len());
        for task in tasks {
            kept.push(task.await.expect("sender task"));
        }
        done.store(true, Ordering::Relaxed);
        kept
    });
    // Bounded: 60 s of credit, a window's worth every 20 ms.
    for _ in 0..3000 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        writer.write_all(&credit(u32::MAX)).await.expect("credit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let kept = bounded("every sender finishes once credited", finished)
        .await
        .expect("senders");
    drop((kept, senders.receivers, senders.conn));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senders_waiting_for_connection_credit_are_woken_a_few_at_a_time() {
    let (addr, writer, seen) = stingy_server().await;
    let senders = start_senders(addr).await;
    let mut writer = bounded("the server's writer", writer)
        .await
        .expect("writer");
    until_waiting(&seen).await;
    let before = senders.polls.load(Ordering::Relaxed);
    credit_in_steps(&mut writer, &seen, &mut 0, CREDITS, CHARGE).await;
    let polls = senders.polls.load(Ordering::Relaxed) - before;
    eprintln!("{CREDITS} credits of one message: {polls} polls of the waiting senders");
    assert!(
        polls <= CREDITS * POLLS_PER_CREDIT,
        "{polls} polls for {CREDITS} credits: every waiting sender was woken per credit"
    );
    finish(senders, &mut writer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_smaller_than_a_message_wake_senders_only_once_they_open_the_window() {
    let (addr, writer, seen) = stingy_server().await;
    let senders = start_senders(addr).await;
    let mut writer = bounded("the server's writer", writer)
        .await
        .expect("writer");
    until_waiting(&seen).await;
    let before = senders.polls.load(Ordering::Relaxed);
    credit_in_steps(&mut writer, &seen, &mut 0, QUARTER_CREDITS, CHARGE / 4).await;
    let polls = senders.polls.load(Ordering::Relaxed) - before;
    eprintln!(
        "{QUARTER_CREDITS} credits of a quarter message: {polls} polls of the waiting senders"
    );
    // About one credit in four opens the window (for a message); the others wake no one.
    assert!(
        polls <= QUARTER_CREDITS / 4 * POLLS_PER_CREDIT,
        "{polls} polls for {QUARTER_CREDITS} credits: senders were woken by credit that left \
         the window spent"
    );
    finish(senders, &mut writer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senders_dropped_as_credit_wakes_them_pass_their_turns_on() {
    let (addr, writer, seen) = stingy_server().await;
    let mut senders = start_senders(addr).await;
    let mut writer = bounded("the server's writer", writer)
        .await
        .expect("writer");
    until_waiting(&seen).await;
    // Every other sender is dropped (its task aborted) just as credit for a few messages comes:
    // those woken with a turn and not yet run are dropped instead of run, with their turns.
    let mut kept = Vec::with_capacity(STREAMS / 2);
    let mut dropped = Vec::with_capacity(STREAMS / 2);
    for (n, task) in std::mem::take(&mut senders.tasks).into_iter().enumerate() {
        if n % 2 == 0 {
            dropped.push(task);
        } else {
            kept.push(task);
        }
    }
    let mut credited = u64::from(4 * CHARGE);
    writer.write_all(&credit(4 * CHARGE)).await.expect("credit");
    for task in &dropped {
        task.abort();
    }
    for task in dropped {
        // Cancelled, or finished before the abort (its seven messages sent).
        if let Err(err) = bounded("an aborted sender's task", task).await {
            assert!(err.is_cancelled(), "sender task: {err}");
        }
    }
    // The senders kept still spend each credit as it comes: no turn went with the dropped.
    credit_in_steps(&mut writer, &seen, &mut credited, CREDITS / 2, CHARGE).await;
    senders.tasks = kept;
    finish(senders, &mut writer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goaways_repeated_do_not_wake_the_waiting_senders() {
    let (addr, writer, seen) = stingy_server().await;
    let senders = start_senders(addr).await;
    let mut writer = bounded("the server's writer", writer)
        .await
        .expect("writer");
    until_waiting(&seen).await;
    let before = senders.polls.load(Ordering::Relaxed);
    // Each GOAWAY names every call as one it finishes; the PING after it says (by its PONG)
    // when the client has read it.
    for n in 0..=GOAWAYS {
        let pongs = seen.pongs.load(Ordering::Relaxed);
        let out = [
            goaway(u32::MAX, UNAVAILABLE, b"draining"),
            frame(PING, 0, 0, &n.to_be_bytes()),
        ]
        .concat();
        writer.write_all(&out).await.expect("goaway");
        bounded("the PONG after the GOAWAY", async {
            while seen.pongs.load(Ordering::Relaxed) == pongs {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        // Senders woken by it look again, and wait again, before the next.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let polls = senders.polls.load(Ordering::Relaxed) - before;
    eprintln!(
        "{} GOAWAYs: {polls} polls of the waiting senders",
        GOAWAYS + 1
    );
    // The first GOAWAY may wake each waiting sender once; the ones after it nobody.
    assert!(
        polls <= STREAMS as u64 + GOAWAYS * 4,
        "{polls} polls for {} GOAWAYs: each woke every waiting sender",
        GOAWAYS + 1
    );
    // The connection drains: every call on it goes on, and ends as credit comes.
    finish(senders, &mut writer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senders_waiting_for_credit_go_once_a_settings_takes_the_window_away() {
    // A later SETTINGS without CAP_CONNECTION_WINDOW: the server grants no connection credit
    // any more, and the client counts none. The senders already waiting for credit used to
    // wait for a WINDOW that would never come.
    let (addr, writer, seen) = stingy_server().await;
    let senders = start_senders(addr).await;
    let mut writer = bounded("the server's writer", writer)
        .await
        .expect("writer");
    until_waiting(&seen).await;
    let word = u32::try_from(STREAMS * 2).expect("fits") << 16;
    writer
        .write_all(&frame(WINDOW, SETTINGS, 0, &word.to_be_bytes()))
        .await
        .expect("settings");
    let tasks = senders.tasks;
    let kept = bounded("every sender finishes with no credit", async move {
        let mut kept = Vec::with_capacity(tasks.len());
        for task in tasks {
            kept.push(task.await.expect("sender task"));
        }
        kept
    })
    .await;
    drop((kept, senders.receivers, senders.conn));
}
