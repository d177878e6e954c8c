//! A Unix stream socket registered with the runtime for read readiness only (`readiness.rs`).
//!
//! Why: a Unix stream socket wakes every epoll waiter that asked for `EPOLLOUT` each time its
//! peer reads from it (the kernel's `unix_write_space` runs whenever a sent buffer is freed, and
//! unlike TCP's it does not first check that the sender ever found its buffer full). tokio
//! registers a `UnixStream` for both directions, so each unary call woke the waiting side once
//! more than it needed: the client when the server read the request, the server when the client
//! read the answer. With cheap cross-CPU wake-ups that extra wake-up landed on the CPU of the
//! side still working and preempted it (1.5 voluntary context switches per call on the server
//! instead of 1), and Unix sockets measured slower than TCP.
//!
//! So the socket is registered for `EPOLLIN` alone, and writes go straight to it. Only a write
//! that finds the socket's buffer full waits for room (`readiness.rs`: a duplicate of the
//! descriptor registered for `EPOLLOUT` on the socket's own runtime, dropped once the write went
//! through; a timer when no descriptor is left): the extra wake-ups then come only while a writer
//! is really blocked. Reads go through a per-thread scratch buffer: a read cannot fill tokio's
//! uninitialised `ReadBuf` without `unsafe`, and zeroing the up to 256 KiB a read may be offered
//! costs more than copying the few bytes an RPC's read returns (for bulk transfers the copy is
//! one more pass over the bytes, as the zeroing would be).

use crate::readiness::ReadRegistered;
use std::cell::RefCell;
use std::future::Future;
use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes one read asks for at most: the most a connection's read buffer offers a read
/// (`MAX_RESERVE` in `reader.rs`).
const SCRATCH: usize = 256 * 1024;

thread_local! {
    /// Where reads land before they are copied into the caller's buffer: one per thread, so an
    /// idle connection holds none of it.
    static SCRATCH_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; SCRATCH].into_boxed_slice());
}

/// A connected Unix stream, registered for read readiness only; see the module docs.
#[derive(Debug)]
pub struct UnixIo {
    reader: UnixReader,
    writer: UnixWriter,
}

/// The read half of a [`UnixIo`].
#[derive(Debug)]
pub struct UnixReader {
    fd: Arc<ReadRegistered<StdUnixStream>>,
}

/// The write half of a [`UnixIo`].
#[derive(Debug)]
pub struct UnixWriter {
    fd: Arc<ReadRegistered<StdUnixStream>>,
    /// How a write that found the socket's buffer full waits for room, only while it does.
    blocked: Option<Blocked>,
    /// How many times a write found the socket's buffer full and had to wait.
    waits: u64,
}

/// How a blocked writer waits.
#[derive(Debug)]
enum Blocked {
    /// On a duplicate of the descriptor registered for `EPOLLOUT`.
    Room(Arc<AsyncFd<StdUnixStream>>),
    /// On a timer: no duplicate could be made (out of descriptors).
    Retry(Pin<Box<tokio::time::Sleep>>),
}

impl UnixIo {
    /// Takes over a connected socket (made non-blocking here) and registers it for reads.
    pub fn new(stream: StdUnixStream) -> io::Result<UnixIo> {
        stream.set_nonblocking(true)?;
        let fd = Arc::new(ReadRegistered::new(stream)?);
        Ok(UnixIo {
            reader: UnixReader {
                fd: Arc::clone(&fd),
            },
            writer: UnixWriter {
                fd,
                blocked: None,
                waits: 0,
            },
        })
    }

    /// Takes over a tokio stream (it leaves tokio's registration for ours).
    pub fn from_tokio(stream: tokio::net::UnixStream) -> io::Result<UnixIo> {
        UnixIo::new(stream.into_std()?)
    }

    /// The two halves, for a reader task and a writer that run apart.
    pub fn into_split(self) -> (UnixReader, UnixWriter) {
        (self.reader, self.writer)
    }
}

impl AsyncRead for UnixReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            let mut guard = ready!(self.fd.fd.poll_read_ready(cx))?;
            let read = guard.try_io(|fd| {
                SCRATCH_BUF.with_borrow_mut(|scratch| {
                    let want = buf.remaining().min(scratch.len());
                    let n = fd.get_ref().read(&mut scratch[..want])?;
                    buf.put_slice(&scratch[..n]);
                    Ok((n, want))
                })
            });
            match read {
                Ok(Ok((n, want))) => {
                    if n > 0 && n < want {
                        // A short read emptied the socket (as tokio's own streams assume): the
                        // next read waits for the next event instead of finding it empty.
                        guard.clear_ready();
                    }
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(err)) if err.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(err)) => return Poll::Ready(Err(err)),
                // Nothing there after all: readiness was cleared, wait again.
                Err(_would_block) => continue,
            }
        }
    }
}

impl UnixWriter {
    /// Runs `write` on the socket; when its buffer is full, waits for room (`readiness.rs`:
    /// the socket's shared `EPOLLOUT` registration, or a timer), until the next success.
    fn poll_write_with(
        &mut self,
        cx: &mut Context<'_>,
        write: impl Fn(&StdUnixStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            let result = match &mut self.blocked {
                None => write(self.fd.get_ref()),
                Some(Blocked::Room(room)) => {
                    let mut guard = ready!(room.poll_write_ready(cx))?;
                    match guard.try_io(|_| write(self.fd.get_ref())) {
                        Ok(result) => result,
                        Err(_would_block) => continue,
                    }
                }
                Some(Blocked::Retry(timer)) => {
                    ready!(timer.as_mut().poll(cx));
                    self.blocked = None;
                    write(self.fd.get_ref())
                }
            };
            match result {
                Ok(n) => {
                    // Room again: stop asking for EPOLLOUT, so the peer's reads wake no one.
                    self.blocked = None;
                    return Poll::Ready(Ok(n));
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    if self.blocked.is_none() {
                        self.waits += 1;
                        // Registering reports the socket's state at once, so room made between
                        // the failed write and here is not missed.
                        self.blocked = Some(match self.fd.room(StdUnixStream::try_clone) {
                            Some(room) => Blocked::Room(room),
                            None => Blocked::Retry(Box::pin(self.fd.retry_timer())),
                        });
                    }
                }
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
    }
}

impl AsyncWrite for UnixWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_with(cx, |mut socket| socket.write(data))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_with(cx, |mut socket| socket.write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(match self.fd.get_ref().shutdown(Shutdown::Write) {
            Err(err) if err.kind() == io::ErrorKind::NotConnected => Ok(()),
            other => other,
        })
    }
}

impl AsyncRead for UnixIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().reader).poll_read(cx, buf)
    }
}

impl AsyncWrite for UnixIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().writer).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().writer).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().writer).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().writer).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn pair() -> (UnixIo, UnixIo) {
        let (a, b) = StdUnixStream::pair().expect("socketpair");
        (
            UnixIo::new(a).expect("register"),
            UnixIo::new(b).expect("register"),
        )
    }

    #[tokio::test]
    async fn bytes_cross_both_ways_and_shutdown_reads_as_eof() {
        let (mut a, mut b) = pair();
        a.write_all(b"ping").await.expect("write");
        let mut got = [0u8; 4];
        b.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"ping");
        b.write_all(b"pong").await.expect("write");
        a.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"pong");
        a.shutdown().await.expect("shutdown");
        let mut rest = Vec::new();
        b.read_to_end(&mut rest).await.expect("read to end");
        assert!(rest.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_that_fills_the_socket_waits_for_room_and_loses_nothing() {
        // Far more than a Unix socket buffers, written while the reader starts late and reads in
        // small pieces: the writer must block on a full buffer, wait, and go on, more than once.
        const LEN: usize = 8 * 1024 * 1024;
        let (a, b) = pair();
        let (mut reader, _) = b.into_split();
        let (_, mut writer) = a.into_split();
        let data: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
        let expected = data.clone();
        let write = tokio::spawn(async move {
            for piece in data.chunks(100_000) {
                writer.write_all(piece).await.expect("write");
            }
            assert!(
                writer.blocked.is_none(),
                "no EPOLLOUT registration left behind"
            );
            assert!(writer.waits > 0, "the writer never found the buffer full");
            writer.shutdown().await.expect("shutdown");
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let mut got = Vec::with_capacity(LEN);
        let mut piece = [0u8; 1000];
        let read = async {
            loop {
                let n = reader.read(&mut piece).await.expect("read");
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&piece[..n]);
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(20), read)
            .await
            .expect("all data within 20 s");
        tokio::time::timeout(std::time::Duration::from_secs(5), write)
            .await
            .expect("writer done")
            .expect("writer task");
        assert_eq!(got.len(), LEN);
        assert!(got == expected, "bytes arrived changed or out of order");
    }

    #[tokio::test]
    async fn vectored_writes_send_every_slice_in_order() {
        let (mut a, mut b) = pair();
        let slices = [IoSlice::new(b"ab"), IoSlice::new(b""), IoSlice::new(b"cde")];
        let n = a.write_vectored(&slices).await.expect("write");
        assert_eq!(n, 5);
        let mut got = [0u8; 5];
        b.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"abcde");
    }
}
