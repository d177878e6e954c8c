//! tonic's `transport::server::TcpIncoming`: a TCP listener as a stream of accepted
//! connections, each given the socket options asked for, for
//! [`serve_with_incoming`](super::ServerBuilder::serve_with_incoming). tonic's tests serve
//! with it (`TcpIncoming::from(listener).with_nodelay(Some(true))`, or tonic 0.12's
//! `from_listener(listener, true, None)`), so they port unchanged; its items are `TcpStream`s,
//! which the server knows for TCP connections and keeps their addresses.

use crate::BoxError;
use futures_core::Stream;
use sockrpc_transport::socket::SocketConfig;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// A bound TCP listener whose accepted connections come out as a stream (tonic's name), with
/// `TCP_NODELAY` and TCP keepalive set on each as asked (`None`: left as the system has it).
/// A failed accept is an error item, which the server logs and goes past.
#[derive(Debug)]
pub struct TcpIncoming {
    listener: TcpListener,
    nodelay: Option<bool>,
    keepalive: Option<Duration>,
}

impl TcpIncoming {
    /// Binds `addr` (port 0 picks a free port), as tonic's `TcpIncoming::bind`. Must run
    /// inside a tokio runtime.
    pub fn bind(addr: SocketAddr) -> io::Result<TcpIncoming> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(TcpIncoming::from(TcpListener::from_std(listener)?))
    }

    /// tonic 0.12's constructor: `listener`'s connections with `TCP_NODELAY` as `nodelay` and
    /// TCP keepalive after `keepalive` idle (`None`: off as the system has it). Never fails
    /// here; the `Result` is tonic's signature.
    pub fn from_listener(
        listener: TcpListener,
        nodelay: bool,
        keepalive: Option<Duration>,
    ) -> Result<TcpIncoming, BoxError> {
        Ok(TcpIncoming::from(listener)
            .with_nodelay(Some(nodelay))
            .with_keepalive(keepalive))
    }

    /// Sets `TCP_NODELAY` on each connection (`None`: left as accepted).
    pub fn with_nodelay(mut self, nodelay: Option<bool>) -> TcpIncoming {
        self.nodelay = nodelay;
        self
    }

    /// Turns TCP keepalive on for each connection, probing after `idle` (`None`: left as
    /// accepted).
    pub fn with_keepalive(mut self, idle: Option<Duration>) -> TcpIncoming {
        self.keepalive = idle;
        self
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Sets the options asked for on `stream`.
    fn apply(&self, stream: &TcpStream) -> io::Result<()> {
        if self.nodelay.is_none() && self.keepalive.is_none() {
            return Ok(());
        }
        let nodelay = match self.nodelay {
            Some(nodelay) => nodelay,
            None => stream.nodelay()?,
        };
        SocketConfig::default()
            .nodelay(nodelay)
            .keepalive(self.keepalive)
            .apply_accepted(stream)
    }
}

impl From<TcpListener> for TcpIncoming {
    /// `listener`'s connections as accepted, no option set (tonic's `From`).
    fn from(listener: TcpListener) -> TcpIncoming {
        TcpIncoming {
            listener,
            nodelay: None,
            keepalive: None,
        }
    }
}

impl Stream for TcpIncoming {
    type Item = io::Result<TcpStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let (stream, _) = match std::task::ready!(this.listener.poll_accept(cx)) {
            Ok(accepted) => accepted,
            Err(err) => return Poll::Ready(Some(Err(err))),
        };
        if let Err(err) = this.apply(&stream) {
            tracing::debug!(error = %err, "could not set socket options");
        }
        Poll::Ready(Some(Ok(stream)))
    }
}
