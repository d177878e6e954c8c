//! `Outbox`: the write side of a connection, shared by every call on it.
//!
//! Calls append whole frames to one buffer; whoever holds the lock may flush it. That is how
//! writes from many calls coalesce: when 64 calls finish in one scheduler tick, their frames go
//! out in one `write`, not 64. A lone call flushes its own frames immediately from its own task,
//! so the idle path has no hop to a writer task.
//!
//! A large message body is not copied into the buffer: the outbox holds the `Bytes` it came in
//! and writes it from where it is, in the same vectored write as the frame heads around it
//! ([`Outbox::append_body`]). Below [`BY_REFERENCE`] bytes (4 KiB + 257) a body is copied.
//!
//! ```text
//!  queue (written first, in order)                          buf (appended to)
//!  [ heads set aside ][ 64 KiB body, by reference ][ ... ]   [ heads of later frames ]
//! ```
//!
//! A message larger than `LONGEST_PIECE` (96 KiB; `PIECE`, 64 KiB, while others wait there) to
//! a peer that reads split messages ([`CAP_PIECES`](frame::CAP_PIECES)) is not queued whole: it
//! waits in `bulks` (`outbox/bulk.rs`), and its pieces are cut as the writer takes them, at
//! most `PIECES_PER_FLUSH` (16) per flush. A flush offers what waits before it and its next
//! pieces in one vectored write, and cuts what the socket took; a piece not begun stays in the
//! message, so when the socket fills, the frames other calls append meanwhile go out before it
//! and a small answer waits behind at most the rest of one piece.
//! Frames of the same call that must follow the message (its END, its next message) wait in
//! its bulk's tail and go out right after its last piece:
//!
//! ```text
//!  bulks: [ call 3: 900 KiB left | tail: END(3) ][ call 5: 2 MiB | tail: - ]
//!  flush: write(queue, buf, piece(3, 64 KiB, MORE) ×≤16) ─▶ (socket full: others append)
//!         ─▶ write(rest of the piece begun, buf, next pieces) ─▶ …
//! ```
//!
//! A call that ends early ([`Outbox::abandon`]: cancelled, reset) takes its bulks out of the
//! lane, tail and all, so a cancelled 16 MiB message does not go on going out; the frame that
//! ends the call goes in `buf`, then, if a piece was cut, an empty last piece that ends the
//! peer's assembly.

mod bulk;
#[cfg(test)]
mod test_writer;

use bulk::{Bulk, LONGEST_PIECE};
use bytes::{Buf, Bytes, BytesMut};
use sockrpc_protocol::frame;
use std::{
    collections::VecDeque,
    io::{self, IoSlice},
    pin::Pin,
    task::{ready, Context, Poll, Waker},
};
use tokio::io::AsyncWrite;

/// A boxed write half: TCP, Unix socket or in-memory duplex.
pub type BoxWriter = Pin<Box<dyn AsyncWrite + Send + Sync>>;

/// Past this many buffered bytes a call stops appending and waits: a peer that does not read
/// must not make us buffer without bound.
pub const HIGH_WATER: usize = 8 * 1024 * 1024;

/// Calls in a batch past which the appender writes the batch itself, so that both ends of the
/// connection work at once instead of taking turns. 32 since session 11: with 64 calls in
/// flight, 16 sent four writes per batch, each waking the server for a quarter of it; 8 and 64
/// were slower (`docs/PERFORMANCE-LOG.md`).
pub const EARLY_FLUSH: usize = 32;

/// Bytes kept allocated between flushes, so the steady state does not reallocate.
const KEEP_CAPACITY: usize = 64 * 1024;

/// Message bodies of at least this many bytes are written from their own `Bytes`, not copied
/// into the buffer (on a writer that takes vectored writes: TCP, Unix sockets, TLS). Smaller
/// ones are copied: a copy costs less than another slice, and the codec cuts them from a
/// shared chunk ([`arena`](sockrpc_protocol::codec::arena)), which holding one would keep
/// alive whole. Past it a body has its own allocation, so what the outbox holds is what
/// [`buffered`](Outbox::buffered) counts against [`HIGH_WATER`].
pub const BY_REFERENCE: usize = sockrpc_protocol::codec::arena::LARGEST + 1;

/// Pieces of split messages one flush writes at most (1 MiB) before it lets the tasks woken
/// meanwhile append. A socket that takes no more ends a flush sooner, and then what they
/// appended goes out before the next piece: that is where pieces matter, a peer slower than
/// its sender. Pausing after every piece cost a 1 MiB echo twice its time (a re-poll of the
/// writer per 64 KiB, both ways) and bought nothing while the socket took everything at once.
/// On a vectored writer they are offered in one write (`outbox/bulk.rs`).
const PIECES_PER_FLUSH: usize = 16;

/// Pieces copied into the buffer before the next write, on a writer without vectored writes
/// (256 KiB): a write per piece cost a 1 MiB message 16 system calls each way.
const PIECES_PER_WRITE: usize = 4;

/// Slices one vectored write gathers at most.
const MAX_SLICES: usize = 32;

/// A write buffer and the writer it drains into.
pub struct Outbox {
    buf: BytesMut,
    /// What goes out before `buf`'s bytes, in order: bodies held by reference, and the bytes
    /// that were in `buf` when each was queued.
    queue: VecDeque<Bytes>,
    /// Bytes in `queue`.
    queued: usize,
    /// The writer takes vectored writes, so bodies can be held by reference.
    vectored: bool,
    writer: BoxWriter,
    driver: Option<Waker>,
    failed: Option<io::ErrorKind>,
    /// Calls whose frames were appended since the buffer was last empty.
    batched: usize,
    /// Bytes the writer has accepted since the connection opened.
    written: u64,
    /// The driver is running and writes before it parks: appenders leave the write to it.
    driving: bool,
    /// Messages going out in pieces, oldest first: the front one's are cut as the writer
    /// takes them (`outbox/bulk.rs`).
    bulks: VecDeque<Bulk>,
    /// Bytes waiting in `bulks`: bodies not yet cut, and the tails' messages.
    bulked: usize,
    /// The peer reads split messages (it announced [`CAP_PIECES`](frame::CAP_PIECES)).
    pieces: bool,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("buffered", &self.buf.len())
            .field("failed", &self.failed)
            .finish()
    }
}

impl Outbox {
    /// An empty outbox over `writer`.
    pub fn new(writer: BoxWriter) -> Outbox {
        Outbox {
            buf: BytesMut::with_capacity(8 * 1024),
            queue: VecDeque::new(),
            queued: 0,
            vectored: writer.is_write_vectored(),
            writer,
            driver: None,
            failed: None,
            batched: 0,
            written: 0,
            driving: false,
            bulks: VecDeque::new(),
            bulked: 0,
            pieces: false,
        }
    }

    /// Says whether the peer reads messages split into pieces (its SETTINGS had
    /// [`CAP_PIECES`](frame::CAP_PIECES)): from then on a message larger than `LONGEST_PIECE`
    /// goes out in pieces.
    pub fn set_pieces(&mut self, pieces: bool) {
        self.pieces = pieces;
    }

    /// Appends a MESSAGE of `call_id` with `flags` (`FLAG_END_STREAM`, `FLAG_END_OK`,
    /// `FLAG_COMPRESSED`): in pieces when it is larger than `LONGEST_PIECE` and the peer reads
    /// them; behind the call's own unfinished split message when it has one.
    #[inline]
    pub fn append_message(&mut self, call_id: u32, flags: u8, body: &Bytes) {
        if self.bulks.is_empty() && (body.len() <= LONGEST_PIECE || !self.pieces) {
            frame::encode_message_head_flags(&mut self.buf, call_id, flags, body.len());
            self.append_body(body);
        } else {
            self.append_bulk(call_id, flags, body);
        }
    }

    /// The buffer for a frame of `call_id` that must follow the messages it sent (its END):
    /// the tail of its unfinished split message when it has one, else [`buf_mut`](Self::buf_mut).
    #[inline]
    pub fn frames_for(&mut self, call_id: u32) -> &mut BytesMut {
        if self.bulks.is_empty() {
            return &mut self.buf;
        }
        match self.bulks.iter().rposition(|b| b.call_id == call_id) {
            Some(at) => &mut self.bulks[at].tail,
            None => &mut self.buf,
        }
    }

    /// Ends `call_id` early (cancelled, reset, aborted): its split messages still waiting in the
    /// bulk lane are dropped with the frames queued behind them (its END, its next messages),
    /// `ending` writes the frame that ends the call, if any (a client's CANCEL, a server's
    /// error END; none when the peer ended it), and when a piece of a dropped message already
    /// went out, an empty last piece ends the peer's assembly after it (see *Pieces* in
    /// `docs/PROTOCOL.md`). Frames already cut are written whole.
    ///
    /// Returns what the dropped messages would have charged the peer's connection window
    /// (`frame::message_charge` each) and it will now never credit back: a message not begun,
    /// whole; of the one begun, the bytes not cut (the peer credits the shorter message it
    /// completes). A client gives that back to its count of outstanding stream messages, or
    /// each cancelled upload would keep part of the window for ever; a server gives it back
    /// to its count of the client's answer window. A message with `FLAG_END_STREAM` (a unary
    /// or one-message answer, the one request of a server-streaming call) is counted by
    /// neither window, so not here either, and its empty last piece keeps the flag, so that
    /// the peer does not credit what it completes.
    #[inline]
    pub fn abandon(&mut self, call_id: u32, ending: impl FnOnce(&mut BytesMut)) -> usize {
        if self.bulks.is_empty() {
            ending(&mut self.buf);
            return 0;
        }
        self.abandon_bulks(call_id, ending)
    }

    /// Where the next frame appended will start, counted in bytes from the connection's first:
    /// a frame at or past [`written`](Self::written) has not reached the socket.
    pub fn position(&self) -> u64 {
        // Split messages waiting in `bulks` go out after it, piece by piece.
        self.written + (self.queued + self.buf.len()) as u64
    }

    /// Bytes the writer has accepted since the connection opened.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The buffer to append whole frames to, or a frame's head whose body
    /// [`append_body`](Self::append_body) appends next.
    pub fn buf_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Appends `body`, the end of the frame whose head was just written to
    /// [`buf_mut`](Self::buf_mut). A body of at least [`BY_REFERENCE`] bytes is held by
    /// reference and written from where it is; a smaller one is copied.
    #[inline(always)]
    pub fn append_body(&mut self, body: &Bytes) {
        if body.len() < BY_REFERENCE || !self.vectored {
            self.buf.extend_from_slice(body);
        } else {
            self.queue_body(body);
        }
    }

    /// Queues `body` by reference, behind what the buffer holds.
    #[inline(never)]
    fn queue_body(&mut self, body: &Bytes) {
        if !self.buf.is_empty() {
            let heads = self.buf.split().freeze();
            self.queued += heads.len();
            self.queue.push_back(heads);
        }
        self.queued += body.len();
        self.queue.push_back(body.clone());
    }

    /// Counts a call whose frames were just appended, and returns how many are waiting.
    pub fn add_to_batch(&mut self) -> usize {
        self.batched += 1;
        self.batched
    }

    /// Wakes the driver to write the batch, unless an earlier call of it already did: only a
    /// flush that wrote everything empties the count, so the driver woken has not written yet.
    pub fn wake_driver_for_batch(&self) {
        if self.batched <= 1 {
            self.wake_driver();
        }
    }

    /// Bytes waiting to be written, bodies held by reference and split messages included.
    pub fn buffered(&self) -> usize {
        self.queued + self.buf.len() + self.bulked
    }

    /// Whether a write already failed; the connection is then dead.
    pub fn failed(&self) -> Option<io::ErrorKind> {
        self.failed
    }

    /// Registers the connection driver's waker: it is woken when frames wait that the appender
    /// did not flush itself.
    pub fn set_driver(&mut self, waker: &Waker) {
        match &self.driver {
            Some(old) if old.will_wake(waker) => {}
            _ => self.driver = Some(waker.clone()),
        }
    }

    /// Says whether the driver is running now and will write what is buffered before it parks
    /// (the server's connection sets it around its poll). While it is, [`flush_or_defer`]
    /// writes only past [`EARLY_FLUSH`] calls and wakes no one: the driver writes the rest of
    /// the batch, once, when its pass is over.
    ///
    /// [`flush_or_defer`]: Outbox::flush_or_defer
    pub fn set_driving(&mut self, driving: bool) {
        self.driving = driving;
    }

    /// Whether the driver is running now (see [`set_driving`](Outbox::set_driving)).
    pub fn driving(&self) -> bool {
        self.driving
    }

    /// Wakes the driver to flush.
    pub fn wake_driver(&self) {
        if let Some(waker) = &self.driver {
            waker.wake_by_ref();
        }
    }

    /// Writes buffered bytes until none are left or the socket is full.
    ///
    /// `Ready(Ok)` means everything was written; `Pending` means the socket is full and `cx`
    /// will be woken when it drains.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(kind) = self.failed {
            return Poll::Ready(Err(io::Error::new(kind, "connection write failed earlier")));
        }
        if self.vectored && !self.bulks.is_empty() {
            ready!(self.poll_write_bulks(cx))?;
        }
        if self.queued > 0 {
            ready!(self.poll_flush_queue(cx))?;
        }
        ready!(self.poll_write_buf(cx))?;
        if !self.bulks.is_empty() {
            ready!(self.poll_write_bulks_copied(cx))?;
        }
        self.batched = 0;
        if self.buf.capacity() > KEEP_CAPACITY * 4 {
            self.buf = BytesMut::with_capacity(KEEP_CAPACITY);
        }
        // TCP and Unix streams need no flush; a buffered writer (tests) does.
        match self.writer.as_mut().poll_flush(cx) {
            Poll::Ready(Err(err)) => {
                self.failed = Some(err.kind());
                Poll::Ready(Err(err))
            }
            other => other,
        }
    }

    /// Writes the buffer with plain writes until it is empty.
    #[inline]
    fn poll_write_buf(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.buf.is_empty() {
            match self.writer.as_mut().poll_write(cx, &self.buf) {
                Poll::Ready(Ok(n)) if n > 0 => {
                    self.buf.advance(n);
                    self.written += n as u64;
                }
                polled => return self.write_failed(polled),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Writes until the queue is empty, each write a vectored one of the queue and the buffer
    /// behind it (at most [`MAX_SLICES`] parts).
    #[inline(never)]
    fn poll_flush_queue(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.queued > 0 {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let parts = self.queue.iter().map(|part| &part[..]);
            let parts = parts.chain(std::iter::once(&self.buf[..]));
            let mut count = 0;
            for (slot, part) in slices.iter_mut().zip(parts.filter(|p| !p.is_empty())) {
                *slot = IoSlice::new(part);
                count += 1;
            }
            match self
                .writer
                .as_mut()
                .poll_write_vectored(cx, &slices[..count])
            {
                Poll::Ready(Ok(n)) if n > 0 => self.consume(n),
                polled => return self.write_failed(polled),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// What a write that took nothing means: `Pending` waits for room; an error, or a writer
    /// that accepts no bytes, fails the connection.
    #[cold]
    fn write_failed(&mut self, polled: Poll<io::Result<usize>>) -> Poll<io::Result<()>> {
        let err = match polled {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(_)) => io::Error::from(io::ErrorKind::WriteZero),
            Poll::Ready(Err(err)) => err,
        };
        self.failed = Some(err.kind());
        Poll::Ready(Err(err))
    }

    /// Drops the first `n` bytes written: whole parts of the queue, then the buffer's.
    fn consume(&mut self, mut n: usize) {
        self.written += n as u64;
        while n > 0 {
            match self.queue.front_mut() {
                Some(front) if front.len() <= n => {
                    n -= front.len();
                    self.queued -= front.len();
                    self.queue.pop_front();
                }
                Some(front) => {
                    front.advance(n);
                    self.queued -= n;
                    n = 0;
                }
                None => {
                    self.buf.advance(n.min(self.buf.len()));
                    n = 0;
                }
            }
        }
    }

    /// Flushes from the appender's own task when possible; otherwise hands the rest to the
    /// driver. Call after appending frames.
    pub fn flush_or_hand_off(&mut self, cx: &mut Context<'_>) {
        match self.poll_flush(cx) {
            Poll::Ready(Ok(())) => {}
            // Failed (the driver sees it and closes) or full (the driver waits for room).
            _ => self.wake_driver(),
        }
    }

    /// After appending: the only call on its connection writes at once from its own task (no
    /// hop); with others in flight the driver writes, once, for everything appended meanwhile.
    pub fn flush_or_defer(&mut self, cx: &mut Context<'_>, alone: bool) {
        if self.driving {
            // The driver is running and writes before it parks; only a batch past its first
            // part goes now.
            if self.add_to_batch() >= EARLY_FLUSH {
                self.flush_or_hand_off(cx);
            }
            return;
        }
        // Past a part of a batch, write now: the peer works on it while the rest is appended.
        if alone || self.add_to_batch() >= EARLY_FLUSH {
            self.flush_or_hand_off(cx);
        } else {
            self.wake_driver();
        }
    }

    /// Gives the writer up for good (the connection has ended): it is dropped here, with what
    /// waits to be written, and the outbox writes into a sink from now on, as a failed one.
    /// Whoever still holds the outbox (a request stream a handler kept) then no longer holds
    /// the socket.
    pub fn release_writer(&mut self) {
        self.writer = Box::pin(tokio::io::sink());
        self.vectored = false;
        self.buf.clear();
        self.queue.clear();
        self.queued = 0;
        self.bulks.clear();
        self.bulked = 0;
        if self.failed.is_none() {
            self.failed = Some(io::ErrorKind::NotConnected);
        }
    }

    /// Shuts the write side down (sends FIN on TCP).
    pub fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.writer.as_mut().poll_shutdown(cx)
    }
}

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;
