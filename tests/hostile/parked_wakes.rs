//! Handlers parked because their connection's write buffer is past its high-water mark
//! (`server/room.rs`) are woken a few at a time as the client drains it, not all at once.
//!
//! `parked_handlers.rs` checks that a parked handler is never lost. Here, what waking them
//! costs: the connection used to wake every parked handler each time its buffer fell back under
//! the mark; the first one or two answered, the buffer passed the mark again and the rest parked
//! again. A client reading slowly made the server poll every parked handler (up to 4,096, the
//! default calls in flight) for each few KiB it read. Counted as the polls of the calls' tasks:
//! the server enters each call's `rpc` span on every poll of its task, and a subscriber on the
//! server's worker threads counts the enters.

use crate::raw::{connect, frame, open, END_STREAM, MESSAGE, PREFACE};
use crate::support::{bounded, fresh_call, start_serving_with};
use crate::unread_answers::{read_all_ends, GROW_PATH};
use crate::unread_waiting_answers::SlowGrow;
use prost::Message as _;
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::GrowRequest;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata};

/// Calls sent at once, each answered [`ANSWER`] bytes after its handler waited (`SlowGrow`,
/// 50 ms): 47 MiB in all, so over a thousand handlers park behind the 8 MiB mark.
const CALLS: u32 = 3000;
const ANSWER: u64 = 16 * 1024;
/// What the client takes per read at most; it waits [`PAUSE`] every [`READS_PER_PAUSE`] reads.
const CHUNK: usize = 32 * 1024;
const PAUSE: Duration = Duration::from_millis(1);
const READS_PER_PAUSE: u32 = 8;
/// The server's `SO_SNDBUF` (the kernel doubles it).
pub(crate) const SEND_BUFFER: usize = 128 * 1024;
/// Polls of one call's task, all told, a server may take: its first poll inline, the wake of
/// its own timer (while parked), the wake that lets it answer, a few more for its flush (about
/// 6 measured). Waking every parked handler per drain made it 42.
const POLLS_PER_CALL: u64 = 8;
/// Of those, while the client reads: the turn of each parked handler (1.6 a call measured;
/// waking them all per drain made it 38).
const POLLS_PER_CALL_READING: u64 = 3;

/// Counts the enters of `rpc` spans: one per poll of a call's task. Nothing else is enabled.
#[derive(Default)]
pub(crate) struct PollCount {
    /// `rpc` spans made: one per call.
    pub(crate) spans: AtomicU64,
    /// Their enters: one per poll of a call's task.
    pub(crate) enters: AtomicU64,
}

impl tracing::Subscriber for PollCount {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.is_span() && metadata.name() == "rpc"
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(self.spans.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, _: &Event<'_>) {}

    fn enter(&self, _: &Id) {
        self.enters.fetch_add(1, Ordering::Relaxed);
    }

    fn exit(&self, _: &Id) {}
}

/// A reader that takes at most [`CHUNK`] bytes a read and now and then waits [`PAUSE`]: a
/// client that reads slowly.
pub(crate) struct Slow<'a> {
    stream: &'a mut TcpStream,
    pause: Option<Pin<Box<Sleep>>>,
    chunk: Vec<u8>,
    reads: u32,
}

impl<'a> Slow<'a> {
    /// Reads `stream` slowly.
    pub(crate) fn new(stream: &'a mut TcpStream) -> Slow<'a> {
        Slow {
            stream,
            pause: None,
            chunk: vec![0; CHUNK],
            reads: 0,
        }
    }
}

/// A runtime of two workers on which every task's `rpc` span enters are counted by `counter`
/// (set as each worker's default subscriber): a server started on it has its calls' polls
/// counted, and nothing else.
pub(crate) fn counted_runtime(counter: &Arc<PollCount>) -> tokio::runtime::Runtime {
    let dispatch = tracing::Dispatch::from(Arc::clone(counter));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || {
            // For the thread's life: the guard only restores the previous default.
            std::mem::forget(tracing::dispatcher::set_default(&dispatch));
        })
        .build()
        .expect("runtime")
}

impl AsyncRead for Slow<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.reads % READS_PER_PAUSE == 0 {
            let pause = this
                .pause
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(PAUSE)));
            ready!(pause.as_mut().poll(cx));
        }
        let room = buf.remaining().min(CHUNK);
        let mut part = ReadBuf::new(&mut this.chunk[..room]);
        ready!(Pin::new(&mut *this.stream).poll_read(cx, &mut part))?;
        buf.put_slice(part.filled());
        this.pause = None;
        this.reads += 1;
        Poll::Ready(Ok(()))
    }
}

/// How often [`quiet`] reads the count, and how many reads in a row must find it unchanged.
const SAMPLE: Duration = Duration::from_millis(20);
const QUIET_SAMPLES: u32 = 15;

/// Waits until every call's span is made and the polls stopped ([`QUIET_SAMPLES`] reads in a
/// row, [`SAMPLE`] apart, find the same count), then returns the count; bounded. A fixed
/// 300 ms sleep did this, and a loaded machine (`cargo test` runs this binary's tests at once
/// on CI's 2 cores) had handlers still waking after it: their polls were counted as the
/// reading's (11,220 against 9,000 once).
async fn quiet(counter: &PollCount) -> u64 {
    bounded("the handlers park", async {
        let mut last = counter.enters.load(Ordering::Relaxed);
        let mut same = 0;
        loop {
            tokio::time::sleep(SAMPLE).await;
            let now = counter.enters.load(Ordering::Relaxed);
            let made = counter.spans.load(Ordering::Relaxed);
            same = if now == last && made >= u64::from(CALLS) {
                same + 1
            } else {
                0
            };
            last = now;
            if same >= QUIET_SAMPLES {
                return now;
            }
        }
    })
    .await
}

#[test]
fn parked_handlers_are_woken_a_few_at_a_time_as_a_slow_client_reads() {
    let counter = Arc::new(PollCount::default());
    // The server's tasks run on these workers only: the count sees them and nothing else.
    let runtime = counted_runtime(&counter);
    runtime.block_on(async {
        // A small socket send buffer: each time the client reads, the server writes a little
        // and its buffer falls just under the mark, as it does for a client that reads a few
        // KiB at a time over a slow link.
        let socket =
            sockrpc::transport::SocketConfig::default().send_buffer_size(Some(SEND_BUFFER));
        let server = start_serving_with(&socket, |listener, shutdown| {
            sockrpc::Server::builder()
                .add_service(EchoServer::new(SlowGrow))
                .serve_with_listener_and_shutdown(listener, shutdown)
        });
        let grow = GrowRequest { size: ANSWER }.encode_to_vec();
        let mut calls = PREFACE.to_vec();
        for call_id in 1..=CALLS {
            calls.extend_from_slice(&open(call_id, GROW_PATH, &[]));
            calls.extend_from_slice(&frame(MESSAGE, END_STREAM, call_id, &grow));
        }
        let mut stream = connect(server.addr).await;
        bounded("write the calls", stream.write_all(&calls))
            .await
            .expect("write");
        // Once every handler has waited its 50 ms, the buffer is past the mark and the rest
        // are parked: nothing polls them until the client reads.
        let before = quiet(&counter).await;
        let mut slow = Slow::new(&mut stream);
        let limit = u64::from(CALLS) * (ANSWER + 1024) + 1024;
        let codes = tokio::time::timeout(
            Duration::from_secs(60),
            read_all_ends(&mut slow, CALLS, limit),
        )
        .await
        .expect("every answer arrives as the client reads");
        assert!(codes.iter().all(|&c| c == 0), "END codes: {codes:?}");
        let polls = counter.enters.load(Ordering::Relaxed);
        let spans = counter.spans.load(Ordering::Relaxed);
        eprintln!(
            "{spans} calls, {polls} polls of their tasks ({} while the client read)",
            polls - before
        );
        assert!(
            spans >= u64::from(CALLS),
            "the count sees every call's span ({spans})"
        );
        assert!(
            polls - before <= u64::from(CALLS) * POLLS_PER_CALL_READING
                && polls <= u64::from(CALLS) * POLLS_PER_CALL,
            "{polls} polls of {CALLS} calls' tasks ({} while the client read): parked handlers \
             were woken all at once",
            polls - before
        );
        drop(stream);
        fresh_call(server.addr, 1).await;
        server.stop().await;
    });
}
