//! The writer the outbox's tests write into: it keeps what it takes, takes at most so many bytes
//! per write (a socket that takes a few at a time), and at most so many in all before it is
//! full (`Pending`, so that a test can fill the socket at any byte and free it later). It counts
//! the writes it saw.

use super::Outbox;
use std::{
    io::{self, IoSlice},
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, Wake, Waker},
};
use tokio::io::AsyncWrite;

/// What the writer took, in order.
pub(crate) type Out = Arc<Mutex<Vec<u8>>>;
/// Bytes the writer takes before it is full; a test changes it to free the socket.
pub(crate) type Room = Arc<Mutex<usize>>;
/// Vectored writes seen, the most slices one of them carried, and plain writes seen.
pub(crate) type Seen = Arc<Mutex<(usize, usize, usize)>>;

struct TestWriter {
    out: Out,
    room: Room,
    /// Bytes one write takes at most.
    max: usize,
    vectored: bool,
    seen: Seen,
}

impl TestWriter {
    /// Takes what `bufs` hold, in order, up to the write's and the room's limits.
    fn take(&self, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let mut room = self.room.lock().expect("room");
        if *room == 0 {
            return Poll::Pending;
        }
        let mut out = self.out.lock().expect("out");
        let limit = self.max.min(*room);
        let mut left = limit;
        for buf in bufs {
            let n = buf.len().min(left);
            out.extend_from_slice(&buf[..n]);
            left -= n;
        }
        *room -= limit - left;
        Poll::Ready(Ok(limit - left))
    }
}

impl AsyncWrite for TestWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.seen.lock().expect("seen").2 += 1;
        self.take(&[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        assert!(
            self.vectored,
            "a vectored write to a writer that said it takes none"
        );
        {
            let mut seen = self.seen.lock().expect("seen");
            seen.0 += 1;
            seen.1 = seen.1.max(bufs.len());
        }
        self.take(bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.vectored
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// An outbox over a writer that takes at most `max` bytes per write and is never full: the
/// outbox, what the writer took, and the writes it saw.
pub(crate) fn outbox(max: usize, vectored: bool) -> (Outbox, Out, Seen) {
    let (outbox, out, _, seen) = build(max, usize::MAX, vectored);
    (outbox, out, seen)
}

/// An outbox to a peer that reads pieces, over a writer that takes `room` bytes before it is
/// full: the outbox, what the writer took, and its room, to change.
pub(crate) fn outbox_with_room(room: usize, vectored: bool) -> (Outbox, Out, Room) {
    let (mut outbox, out, room, _) = build(usize::MAX, room, vectored);
    outbox.set_pieces(true);
    (outbox, out, room)
}

fn build(max: usize, room: usize, vectored: bool) -> (Outbox, Out, Room, Seen) {
    let out = Out::default();
    let room = Arc::new(Mutex::new(room));
    let seen = Seen::default();
    let writer = TestWriter {
        out: Arc::clone(&out),
        room: Arc::clone(&room),
        max,
        vectored,
        seen: Arc::clone(&seen),
    };
    (Outbox::new(Box::pin(writer)), out, room, seen)
}

struct Noop;

impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

/// A waker that does nothing: the tests poll by hand.
pub(crate) fn noop_waker() -> Waker {
    Waker::from(Arc::new(Noop))
}
