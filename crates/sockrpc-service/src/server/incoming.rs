//! tonic's `serve_with_incoming`: a server fed by a stream of connections the caller accepts
//! (tonic's tests pass `TcpListenerStream::new(listener)`, `TcpIncoming::from(listener)`,
//! `tokio_stream::once(Ok(io))`), not a listener it binds. Each item is served like an
//! accepted socket. A `TcpStream` or `UnixStream` item is known for what it is (as tonic's
//! `Connected` impls know it), so calls on a TCP one see both addresses (`remote_addr()`,
//! `local_addr()`) and transport `Tcp`, on a Unix one transport `Unix`; any other byte stream's
//! addresses are not known here, so its calls see none and its transport is `Other`.

use super::{Finish, ServerBuilder};
use crate::BoxError;
use futures_core::Stream;
use sockrpc_protocol::TransportKind;
use sockrpc_transport::server::{Accept, Accepted};
use sockrpc_transport::socket::SocketConfig;
use std::any::Any;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::Mutex;

/// A stream of connections, served as a listener: the next item is the next connection; an
/// error item is an accept that failed (logged, and serving goes on); once the stream ends,
/// no connection comes any more ([`Accept::is_exhausted`]): the server serves those it has
/// until they end, and returns, as tonic's returns when its stream ends. After an error item
/// the next is read only after a wait ([`after_failures`]), so that a stream that fails for
/// ever does not spin the loop.
struct Incoming<S> {
    stream: Mutex<Pin<Box<S>>>,
    ended: AtomicBool,
    /// Error items since the last connection.
    failures: AtomicU32,
}

/// How long to wait before reading the next item after `failures` error items in a row:
/// grpc-go's `Serve` waits so after a failed accept (5 ms, twice as long each time, at most
/// 1 s); none after a connection.
fn after_failures(failures: u32) -> Duration {
    match failures {
        0 => Duration::ZERO,
        n => Duration::from_millis(5u64 << (n - 1).min(8)).min(Duration::from_secs(1)),
    }
}

impl<S, IO, E> Accept for Incoming<S>
where
    S: Stream<Item = Result<IO, E>> + Send + 'static,
    IO: AsyncRead + AsyncWrite + Send + Sync + 'static,
    E: Into<BoxError>,
{
    async fn accept(&self, _socket: &SocketConfig) -> io::Result<Accepted> {
        let next = {
            let mut stream = self.stream.lock().await;
            let wait = after_failures(self.failures.load(Ordering::Relaxed));
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await
        };
        // The error as an `io::Error` at once: the item's own error type need not be `Send`.
        let next = next.map(|item| item.map_err(accept_error));
        match next {
            Some(Ok(io)) => {
                self.failures.store(0, Ordering::Relaxed);
                accepted(io)
            }
            Some(Err(err)) => {
                let _ = self
                    .failures
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        Some(n.saturating_add(1))
                    });
                Err(err)
            }
            None => {
                self.ended.store(true, Ordering::Relaxed);
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the stream of connections ended",
                ))
            }
        }
    }

    fn is_exhausted(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }
}

/// A failed accept's error as the accept loop reads it: an `io::Error` item (`TcpIncoming`,
/// `TcpListenerStream`) as it is, so that the loop knows it for what it is (out of
/// descriptors: it pauses, rather than spin on the same error); any other wrapped in one.
fn accept_error(err: impl Into<BoxError>) -> io::Error {
    match err.into().downcast::<io::Error>() {
        Ok(err) => *err,
        Err(other) => io::Error::other(other),
    }
}

/// `io` served as an accepted connection: a TCP or Unix stream as the listeners take theirs,
/// with what they know of it; any other stream split as it is, knowing nothing.
fn accepted<IO>(io: IO) -> io::Result<Accepted>
where
    IO: AsyncRead + AsyncWrite + Send + Sync + 'static,
{
    let mut slot = Some(io);
    let any: &mut dyn Any = &mut slot;
    if let Some(tcp) = any
        .downcast_mut::<Option<TcpStream>>()
        .and_then(Option::take)
    {
        return Ok(Accepted::tcp(tcp));
    }
    if let Some(unix) = any
        .downcast_mut::<Option<UnixStream>>()
        .and_then(Option::take)
    {
        return Accepted::unix(unix);
    }
    let Some(io) = slot else {
        // Only a TCP or Unix stream is taken out of the slot, and those returned above.
        return Err(io::Error::other("connection taken twice"));
    };
    let (reader, writer) = tokio::io::split(io);
    Ok(Accepted {
        reader: Box::pin(reader),
        writer: Box::pin(writer),
        peer: None,
        local: None,
        transport: TransportKind::Other,
        tls: None,
        peer_cred: None,
    })
}

impl<L: Finish> ServerBuilder<L> {
    /// Serves the connections `incoming` yields (tonic's `serve_with_incoming`): see
    /// [`serve_with_incoming_shutdown`](Self::serve_with_incoming_shutdown). Returns once the
    /// stream has ended and the connections it gave have ended too (tonic returns as its
    /// stream ends, leaving them served on tasks of their own; here this future serves them,
    /// so that dropping it still stops them).
    pub async fn serve_with_incoming<S, IO, E>(self, incoming: S) -> io::Result<()>
    where
        S: Stream<Item = Result<IO, E>> + Send + 'static,
        IO: AsyncRead + AsyncWrite + Send + Sync + 'static,
        E: Into<BoxError>,
    {
        self.serve_with_incoming_shutdown(incoming, std::future::pending())
            .await
    }

    /// Serves the connections `incoming` yields until `signal` completes, then shuts down as
    /// [`serve_with_listener_and_shutdown`](Self::serve_with_listener_and_shutdown) does
    /// (tonic's `serve_with_incoming_shutdown`). Once the stream ends, the connections it gave
    /// are served until they end (or the signal), and this returns. Calls on a `TcpStream` know
    /// its addresses; calls on a byte stream of another kind know none.
    pub async fn serve_with_incoming_shutdown<S, IO, E>(
        self,
        incoming: S,
        signal: impl Future<Output = ()>,
    ) -> io::Result<()>
    where
        S: Stream<Item = Result<IO, E>> + Send + 'static,
        IO: AsyncRead + AsyncWrite + Send + Sync + 'static,
        E: Into<BoxError>,
    {
        let incoming = Incoming {
            stream: Mutex::new(Box::pin(incoming)),
            ended: AtomicBool::new(false),
            failures: AtomicU32::new(0),
        };
        self.serve_incoming(incoming, signal).await
    }
}
