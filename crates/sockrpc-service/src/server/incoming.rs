//! tonic's `serve_with_incoming`: a server fed by a stream of connections the caller accepts
//! (tonic's tests pass `TcpListenerStream::new(listener)`, `tokio_stream::once(Ok(io))`), not
//! a listener it binds. Each item is served like an accepted socket; the stream's addresses
//! are not known here, so calls on such a connection see none (`remote_addr()` is `None`) and
//! its transport is `Other`: `serve_with_listener` keeps them.

use super::{Finish, ServerBuilder};
use crate::BoxError;
use futures_core::Stream;
use sockrpc_protocol::TransportKind;
use sockrpc_transport::server::{Accept, Accepted};
use sockrpc_transport::socket::SocketConfig;
use std::future::Future;
use std::io;
use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Mutex;

/// A stream of connections, served as a listener: the next item is the next connection; an
/// error item is an accept that failed (logged, and serving goes on); once the stream ends,
/// no connection comes any more and the server serves those it has until its signal.
struct Incoming<S> {
    stream: Mutex<Pin<Box<S>>>,
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
            std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await
        };
        // The error as an `io::Error` at once: the item's own error type need not be `Send`.
        let next = next.map(|item| item.map_err(|err| io::Error::other(err.into())));
        match next {
            Some(Ok(io)) => {
                let (reader, writer) = tokio::io::split(io);
                Ok(Accepted {
                    reader: Box::pin(reader),
                    writer: Box::pin(writer),
                    peer: None,
                    local: None,
                    transport: TransportKind::Other,
                    tls: None,
                })
            }
            Some(Err(err)) => Err(err),
            None => std::future::pending().await,
        }
    }
}

impl<L: Finish> ServerBuilder<L> {
    /// Serves the connections `incoming` yields (tonic's `serve_with_incoming`) until the
    /// process ends: see [`serve_with_incoming_shutdown`](Self::serve_with_incoming_shutdown).
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
    /// (tonic's `serve_with_incoming_shutdown`). Calls on them know no addresses.
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
        };
        self.serve_incoming(incoming, signal).await
    }
}
