//! A TLS session split into the read half and the write half a connection's tasks use.
//!
//! Why not `tokio::io::split`: its read half can only call the session's `poll_read`, and
//! tokio-rustls's `poll_read`, after it hands over the plaintext of what it read, reads the
//! socket again to fill the rest of the buffer, which finds it empty. The connection then reads
//! once more to see that no further frame follows, and finds it empty again: two empty reads
//! through rustls per answer where plain TCP makes one. This read half takes the plaintext
//! rustls has decrypted (every whole record of what it read), and goes back to the socket only
//! when asked again:
//!
//! ```text
//!  poll_read ─▶ poll_fill_buf (reads the socket only when no plaintext is held)
//!            ─▶ copy, then copy what else is decrypted already (no socket read) ─▶ Ready
//!  poll_read ─▶ poll_fill_buf ─▶ socket empty: Pending (the waker is registered)
//! ```
//!
//! Both halves share the session behind one mutex, as tokio's halves do.
//!
//! The write half says what it took before it says that the socket failed. tokio-rustls's
//! `poll_write` takes the plaintext, writes part of its records, and returns the error of a
//! later socket write: the caller counted none of it written, though the peer may have read the
//! records that went. A client marked the calls in it never sent, and a balanced channel ran
//! them again elsewhere (`split_tests.rs`). Here the plaintext taken is the write's count, and
//! the error is the next call's answer, so what the peer may have read counts as written.

use std::{
    io,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    task::{Context, Poll},
};
use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};

/// A TLS stream whose decrypted plaintext can be read without touching its socket.
pub(crate) trait Session: AsyncBufRead + AsyncWrite + Unpin {
    /// The first chunk of plaintext already decrypted (empty when there is none, or at the end
    /// of the stream); never reads the socket.
    fn decrypted(&mut self) -> &[u8];

    /// Where plaintext is taken to be sent, encrypted into records; never writes the socket.
    fn plaintext(&mut self) -> rustls::Writer<'_>;
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Session for tokio_rustls::client::TlsStream<IO> {
    fn decrypted(&mut self) -> &[u8] {
        self.get_mut().1.reader().into_first_chunk().unwrap_or(&[])
    }

    fn plaintext(&mut self) -> rustls::Writer<'_> {
        self.get_mut().1.writer()
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Session for tokio_rustls::server::TlsStream<IO> {
    fn decrypted(&mut self) -> &[u8] {
        self.get_mut().1.reader().into_first_chunk().unwrap_or(&[])
    }

    fn plaintext(&mut self) -> rustls::Writer<'_> {
        self.get_mut().1.writer()
    }
}

/// Splits `session` into halves that share it.
pub(crate) fn split<S: Session>(session: S) -> (TlsReader<S>, TlsWriter<S>) {
    let vectored = session.is_write_vectored();
    let shared = Arc::new(Mutex::new(session));
    (
        TlsReader(Arc::clone(&shared)),
        TlsWriter {
            shared,
            vectored,
            failed: None,
        },
    )
}

fn lock<S>(shared: &Mutex<S>) -> MutexGuard<'_, S> {
    // A panic while a half held the lock left the session as rustls left it: errors, if any,
    // come from rustls on the next use.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The read half of a split TLS session.
pub(crate) struct TlsReader<S>(Arc<Mutex<S>>);

impl<S: Session> AsyncRead for TlsReader<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut session = lock(&self.0);
        let data = match Pin::new(&mut *session).poll_fill_buf(cx) {
            Poll::Ready(Ok(data)) => data,
            Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
            Poll::Pending => return Poll::Pending,
        };
        // Empty: the end of the stream, reported as a read of nothing.
        let n = data.len().min(buf.remaining());
        buf.put_slice(&data[..n]);
        Pin::new(&mut *session).consume(n);
        // The rest of what was decrypted, without another look at the socket.
        while buf.remaining() > 0 {
            let data = session.decrypted();
            if data.is_empty() {
                break;
            }
            let n = data.len().min(buf.remaining());
            buf.put_slice(&data[..n]);
            Pin::new(&mut *session).consume(n);
        }
        Poll::Ready(Ok(()))
    }
}

/// The write half of a split TLS session.
pub(crate) struct TlsWriter<S> {
    shared: Arc<Mutex<S>>,
    vectored: bool,
    /// The socket failed after the session took a write's plaintext: the next call's answer.
    failed: Option<io::Error>,
}

impl<S: Session> TlsWriter<S> {
    /// Has the session take what `bufs` hold, then writes its records as far as the socket
    /// takes them. Plaintext taken is counted written even when the socket then fails (its
    /// records may have reached the peer): the error is kept for the next call.
    fn poll_take(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(err) = self.failed.take() {
            return Poll::Ready(Err(err));
        }
        if bufs.iter().all(|buf| buf.is_empty()) {
            return Poll::Ready(Ok(0));
        }
        let mut session = lock(&self.shared);
        // Twice at most: a session whose records the socket has not taken yet takes no more
        // plaintext, and takes it once they went.
        for _ in 0..2 {
            let taken = io::Write::write_vectored(&mut session.plaintext(), bufs)?;
            match Pin::new(&mut *session).poll_flush(cx) {
                Poll::Ready(Err(err)) if taken > 0 => {
                    self.failed = Some(err);
                    return Poll::Ready(Ok(taken));
                }
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                _ if taken > 0 => return Poll::Ready(Ok(taken)),
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) => {}
            }
        }
        Poll::Ready(Ok(0))
    }

    /// The error kept from a write whose plaintext was taken, if any.
    fn kept_failure(&mut self) -> Poll<io::Result<()>> {
        match self.failed.take() {
            Some(err) => Poll::Ready(Err(err)),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl<S: Session> AsyncWrite for TlsWriter<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_take(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_take(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.vectored
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.kept_failure())?;
        Pin::new(&mut *lock(&this.shared)).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.kept_failure())?;
        Pin::new(&mut *lock(&this.shared)).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[path = "split_tests.rs"]
pub(super) mod tests;
