//! A writer for the outbox's tests that takes what its room allows and is full at 0, so that a
//! test can fill the socket at any byte.

use super::Outbox;
use std::{
    io::{self, IoSlice},
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};
use tokio::io::AsyncWrite;

/// A writer that takes what `room` allows and is full at 0; vectored or not.
pub(crate) struct Room {
    pub(crate) out: Arc<Mutex<Vec<u8>>>,
    pub(crate) room: Arc<Mutex<usize>>,
    pub(crate) vectored: bool,
}

impl AsyncWrite for Room {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut room = self.room.lock().expect("room");
        if *room == 0 {
            return Poll::Pending;
        }
        let mut out = self.out.lock().expect("out");
        let before = *room;
        for buf in bufs {
            let n = buf.len().min(*room);
            out.extend_from_slice(&buf[..n]);
            *room -= n;
        }
        Poll::Ready(Ok(before - *room))
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

/// The output and the room of [`Room::outbox`]'s writer.
pub(crate) type Wire = (Arc<Mutex<Vec<u8>>>, Arc<Mutex<usize>>);

impl Room {
    /// An outbox to a peer that reads pieces, over a writer with `room` bytes of room: the
    /// outbox, what the writer took, and its room, to change.
    pub(crate) fn outbox(room: usize, vectored: bool) -> (Outbox, Wire) {
        let out = Arc::new(Mutex::new(Vec::new()));
        let room = Arc::new(Mutex::new(room));
        let writer = Room {
            out: Arc::clone(&out),
            room: Arc::clone(&room),
            vectored,
        };
        let mut outbox = Outbox::new(Box::pin(writer));
        outbox.set_pieces(true);
        (outbox, (out, room))
    }
}
