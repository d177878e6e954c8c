//! `ReadAhead`: the socket below a TLS session, read in chunks of up to [`READ_AHEAD`] bytes.
//!
//! Why: rustls never asks its socket for more than 4 KiB at a time (its deframer offers reads
//! of 4,096 bytes), so the record of a 4 KiB message (4,133 bytes on the wire) took two
//! `recvfrom`s and a 16 KiB record five, where plain TCP reads a frame in one. Below rustls,
//! this reads whatever the socket holds, up to 32 KiB, in one system call, and hands it to
//! rustls in the pieces rustls asks for: a copy of the ciphertext in memory (about 130
//! instructions per 4 KiB) in place of a system call per 4 KiB.
//!
//! ```text
//!  rustls read_tls(4 KiB) ─▶ ReadAhead: empty? ─▶ socket read (≤ 32 KiB) ─▶ 4,133 bytes
//!                                      └──────▶ the first 4,096 ─▶ rustls
//!  rustls read_tls(4 KiB) ─▶ ReadAhead: the other 37 (no system call) ─▶ rustls
//! ```
//!
//! Only where it pays: until a read fills all rustls asked for (so the socket may hold more
//! of the record), reads go straight into rustls's buffer, with no copy and no buffer of ours.
//! A connection of small messages (64 B: one read of ~100 bytes each) pays nothing, neither
//! the copy (~190 instructions per read) nor 32 KiB of memory held; from the first full read
//! on, the connection reads ahead for good.
//!
//! The server's first bytes, read to tell TLS from plain text, are the buffer's first content,
//! so rustls reads them first. The buffer is allocated at the first read ahead and kept; each
//! read starts at its beginning, so only the pages the largest read reached are ever touched.

use bytes::{Buf, BufMut, BytesMut};
use std::{
    io,
    pin::Pin,
    task::{ready, Context, Poll},
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes one read of the socket asks for at most: two whole records of 16 KiB, so that a large
/// message takes a system call per 32 KiB, not per 4 KiB.
pub(crate) const READ_AHEAD: usize = 32 * 1024;

/// A stream read ahead in chunks; reads are served from what was read, and only an empty
/// buffer reads the stream.
pub(crate) struct ReadAhead<T> {
    /// Read from `inner` and not yet handed over.
    buf: BytesMut,
    /// Whether an empty buffer reads `inner` ahead: set once a read straight into the caller's
    /// buffer filled it, and kept.
    ahead: bool,
    inner: T,
}

impl<T> ReadAhead<T> {
    /// Reads `inner` ahead.
    pub(crate) fn new(inner: T) -> ReadAhead<T> {
        ReadAhead::with_prefix(Vec::new(), inner)
    }

    /// Reads `inner` ahead, handing over `prefix` (bytes already read from it) first.
    pub(crate) fn with_prefix(prefix: Vec<u8>, inner: T) -> ReadAhead<T> {
        ReadAhead {
            buf: BytesMut::from(&prefix[..]),
            ahead: false,
            inner,
        }
    }

    /// The stream, without the bytes read ahead and not handed over.
    pub(crate) fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ReadAhead<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if out.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if this.buf.is_empty() && !this.ahead {
            // Straight into the caller's buffer. Filled: the socket may hold more, so read
            // ahead from now on.
            let asked = out.remaining();
            let before = out.filled().len();
            ready!(Pin::new(&mut this.inner).poll_read(cx, out))?;
            this.ahead = out.filled().len() - before == asked;
            return Poll::Ready(Ok(()));
        }
        if this.buf.is_empty() {
            // Empty: back to the start of the allocation (no copy, no allocation once made).
            this.buf.reserve(READ_AHEAD);
            let spare = READ_AHEAD.min(this.buf.capacity() - this.buf.len());
            let mut chunk = (&mut this.buf).limit(spare);
            let n = ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut this.inner),
                cx,
                &mut chunk
            ))?;
            if n == 0 {
                // The end of the stream, reported as a read of nothing.
                return Poll::Ready(Ok(()));
            }
        }
        let n = this.buf.len().min(out.remaining());
        out.put_slice(&this.buf[..n]);
        this.buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

super::io::write_through!(ReadAhead);

#[cfg(test)]
#[path = "read_ahead_tests.rs"]
mod tests;
