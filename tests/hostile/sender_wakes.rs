//! A client's stream senders waiting for its write buffer to drain (a server reading slowly)
//! are woken a few at a time as it drains, not all at once (`client/credit.rs`,
//! `client/limit.rs`, `turns.rs`).
//!
//! The client used to wake every sender parked for room each time a flush brought its buffer
//! back under the high-water mark; one or two sent a message, the buffer passed the mark again
//! and the rest parked again: a server reading a few KiB at a time made the client poll every
//! waiting sender (thousands of streams) per few KiB it read. Counted here as the polls of the
//! senders' `poll_ready`, each sender in a task of its own, against a raw server that reads
//! slowly and never answers.

use crate::credit_wakes::{spawn_senders, Senders};
use crate::parked_wakes::Slow;
use crate::raw::{frame, PREFACE, SETTINGS, WINDOW};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Streams, each sending [`MESSAGES`] messages of [`SIZE`] bytes (within the stream window,
/// which the server never credits back): 47 MiB in all, so over a thousand senders wait behind
/// the client's 8 MiB mark.
const STREAMS: usize = 2000;
const MESSAGES: usize = 2;
const SIZE: usize = 12 * 1024;
/// The server's `SO_RCVBUF` (the kernel doubles it).
const RECEIVE_BUFFER: u32 = 128 * 1024;
/// Polls of one sender's `poll_ready`, all told: one a message, the one that parks it, its
/// turn, now and then one that finds the buffer full again (3.5 a sender measured). Waking
/// every waiting sender per drain made it 11.
const POLLS_PER_SENDER: u64 = 5;

/// A server by hand: greets, then reads everything slowly and answers nothing. Returns its
/// address; its task ends when the client closes.
async fn slow_sink() -> std::net::SocketAddr {
    // A small socket receive buffer: each read the server makes lets the client write a
    // little, and its buffer falls just under the mark, as over a slow link.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .set_recv_buffer_size(RECEIVE_BUFFER)
        .expect("SO_RCVBUF");
    socket
        .bind("127.0.0.1:0".parse().expect("address"))
        .expect("bind");
    let listener = socket.listen(16).expect("listen");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        // SETTINGS: room for every stream, no capabilities (no connection window).
        let settings = (u32::try_from(STREAMS * 2).expect("fits") << 16).to_be_bytes();
        let hello = [PREFACE.as_slice(), &frame(WINDOW, SETTINGS, 0, &settings)].concat();
        if socket.write_all(&hello).await.is_err() {
            return;
        }
        let mut slow = Slow::new(&mut socket);
        let mut sink = vec![0u8; 64 * 1024];
        // Bounded: the client sends about 50 MiB, at least a byte a read.
        for _ in 0..100_000_000u64 {
            if !matches!(slow.read(&mut sink).await, Ok(n) if n > 0) {
                return;
            }
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senders_waiting_for_the_buffer_are_woken_a_few_at_a_time_as_a_slow_server_reads() {
    let addr = slow_sink().await;
    let Senders {
        conn,
        polls,
        tasks: senders,
        receivers,
    } = spawn_senders(addr, STREAMS, MESSAGES, SIZE).await;
    let mut done = Vec::with_capacity(STREAMS);
    tokio::time::timeout(Duration::from_secs(60), async {
        for sender in senders {
            done.push(sender.await.expect("sender task"));
        }
    })
    .await
    .expect("every sender sends as the server reads");
    let polls = polls.load(Ordering::Relaxed);
    eprintln!("{STREAMS} senders, {polls} polls of their poll_ready");
    assert!(
        polls <= STREAMS as u64 * POLLS_PER_SENDER,
        "{polls} polls of {STREAMS} senders: senders waiting for the buffer were woken all at once"
    );
    drop((done, receivers, conn));
}
