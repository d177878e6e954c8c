//! Small stream adapters around a TLS session: the first bytes kept for diagnosis (client), and
//! TLS errors turned into clear ones. The socket below rustls is read ahead (`read_ahead.rs`).

use std::{
    io,
    pin::Pin,
    sync::atomic::{AtomicBool, Ordering},
    sync::Arc,
    task::{Context, Poll},
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The write side of a wrapper that only changes how reading works: every call goes straight
/// to `inner`.
macro_rules! write_through {
    ($wrapper:ident) => {
        impl<T: AsyncWrite + Unpin> AsyncWrite for $wrapper<T> {
            fn poll_write(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.inner).poll_write(cx, buf)
            }

            fn poll_write_vectored(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.inner.is_write_vectored()
            }

            fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut self.inner).poll_flush(cx)
            }

            fn poll_shutdown(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<io::Result<()>> {
                Pin::new(&mut self.inner).poll_shutdown(cx)
            }
        }
    };
}

pub(super) use write_through;

/// Keeps the first bytes read through it, so a failed handshake can say what the peer spoke.
pub(crate) struct Recorder<T> {
    pub(crate) first: Vec<u8>,
    inner: T,
}

/// Bytes [`Recorder`] keeps.
const RECORDED: usize = 8;

impl<T> Recorder<T> {
    pub(crate) fn new(inner: T) -> Recorder<T> {
        Recorder {
            first: Vec::new(),
            inner,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Recorder<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.first.len() < RECORDED {
            let new = &buf.filled()[before..];
            let take = new.len().min(RECORDED - self.first.len());
            let this = &mut *self;
            this.first.extend_from_slice(&new[..take]);
        }
        polled
    }
}

write_through!(Recorder);

/// One half of a client's TLS stream whose errors say what TLS refused: a rustls error (the
/// server's alert that it refused our certificate, which under TLS 1.3 arrives after the
/// handshake) becomes `PermissionDenied` with a sentence, so the call that sees it fails
/// `UNAVAILABLE` with that sentence instead of `INTERNAL` with a bare alert name.
pub(crate) struct Explained<T> {
    inner: T,
    /// Set when a TLS error went through (shared by both halves).
    seen: Arc<AtomicBool>,
}

impl<T> Explained<T> {
    pub(crate) fn new(inner: T, seen: Arc<AtomicBool>) -> Explained<T> {
        Explained { inner, seen }
    }

    fn explain(&self, err: io::Error) -> io::Error {
        let explained = err
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .map(|tls| format!("TLS: {}", super::explain_client_error(tls, None)));
        match explained {
            Some(message) => {
                self.seen.store(true, Ordering::Release);
                io::Error::new(io::ErrorKind::PermissionDenied, message)
            }
            None => err,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Explained<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        polled.map_err(|err| self.explain(err))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Explained<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        polled.map_err(|err| self.explain(err))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        polled.map_err(|err| self.explain(err))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        polled.map_err(|err| self.explain(err))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        polled.map_err(|err| self.explain(err))
    }
}
