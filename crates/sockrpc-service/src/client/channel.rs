//! `Channel`: a tower `Service` over a pool of connections to one endpoint.

use super::endpoint::{Endpoint, IntoEndpoint};
use super::pool::{ConnectionStats, Pool};
use crate::{BoxFuture, Call};
use bytes::Bytes;
use pin_project_lite::pin_project;
use sockrpc_protocol::{Response, Status};
use sockrpc_transport::{ClientConnection, ResponseFuture};
use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};
use tokio::time::Instant;
use tower_service::Service;

/// A client channel: clone it freely, every clone shares the pool. Implements
/// `tower::Service<Call>`, so any tower layer wraps it.
///
/// Calls go to the pooled connection with the fewest calls in flight. A connection that breaks
/// fails only its own calls (`Unavailable`) and is replaced in the background with backoff;
/// while none is up, calls wait for one up to their deadline.
#[derive(Clone)]
pub struct Channel {
    pool: Pool,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("endpoint", &self.pool.endpoint().to_string())
            .finish()
    }
}

impl Channel {
    /// Connects now — every pooled connection, within the connect timeout — and fails with
    /// `Unavailable` when not even one comes up.
    pub async fn connect(dst: impl IntoEndpoint) -> Result<Channel, Status> {
        let channel = Channel::lazy(dst)?;
        let deadline = Instant::now() + channel.pool.endpoint().connect_timeout;
        channel.pool.fill(deadline).await?;
        Ok(channel)
    }

    /// A channel that connects on its first call.
    pub fn lazy(dst: impl IntoEndpoint) -> Result<Channel, Status> {
        Ok(Channel {
            pool: Pool::new(dst.into_endpoint()?),
        })
    }

    /// A channel over a connection made elsewhere (a Unix socket, an in-memory duplex). If it
    /// breaks, replacements connect to `endpoint`'s address.
    pub fn from_connection(endpoint: Endpoint, conn: ClientConnection) -> Channel {
        Channel {
            pool: Pool::with_connection(endpoint, conn),
        }
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        self.pool.endpoint()
    }

    /// What each live pooled connection has carried.
    pub fn connection_stats(&self) -> Vec<ConnectionStats> {
        self.pool.stats()
    }

    /// The live pooled connections (to inspect, or to break one on purpose in a test).
    pub fn connections(&self) -> Vec<ClientConnection> {
        self.pool.connections()
    }
}

pin_project! {
    /// The future of a call on a [`Channel`].
    pub struct ChannelFuture {
        #[pin]
        kind: Kind,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind {
        // A connection was up: no allocation, no extra task.
        Call { #[pin] inner: ResponseFuture },
        // The call had to wait for a connection first.
        Connect { inner: BoxFuture<Result<Response<Bytes>, Status>> },
    }
}

impl std::fmt::Debug for ChannelFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChannelFuture")
    }
}

impl Future for ChannelFuture {
    type Output = Result<Response<Bytes>, Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Call { inner } => inner.poll(cx),
            KindProj::Connect { inner } => inner.as_mut().poll(cx),
        }
    }
}

impl Service<Call> for Channel {
    type Response = Response<Bytes>;
    type Error = Status;
    type Future = ChannelFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> ChannelFuture {
        let (path, mut request) = call.into_parts();
        if request.timeout().is_none() {
            if let Some(timeout) = self.pool.endpoint().timeout {
                request.set_timeout(timeout);
            }
        }
        if let Some(conn) = self.pool.pick() {
            return ChannelFuture {
                kind: Kind::Call {
                    inner: conn.unary(path, request),
                },
            };
        }
        let pool = self.pool.clone();
        ChannelFuture {
            kind: Kind::Connect {
                inner: Box::pin(async move {
                    let started = Instant::now();
                    let deadline = request.timeout().map(|t| started + t);
                    let conn = pool.get(deadline).await?;
                    if let Some(deadline) = deadline {
                        // The wait for a connection counts against the call's own deadline.
                        request.set_timeout(deadline.saturating_duration_since(Instant::now()));
                    }
                    conn.unary(path, request).await
                }),
            },
        }
    }
}
