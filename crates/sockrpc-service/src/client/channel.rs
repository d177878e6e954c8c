//! `Channel`: a tower `Service` over one server connection, reconnecting when it breaks.

use super::endpoint::{Endpoint, IntoEndpoint};
use crate::{BoxFuture, Call};
use bytes::Bytes;
use pin_project_lite::pin_project;
use sockrpc_protocol::{Response, Status};
use sockrpc_transport::{connect_tcp, ClientConnection, ResponseFuture};
use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};
use tower_service::Service;

struct Inner {
    endpoint: Endpoint,
    conn: Mutex<Option<ClientConnection>>,
    /// One reconnect at a time: calls that find the connection broken wait for the same attempt.
    connecting: tokio::sync::Mutex<()>,
}

/// A client channel: clone it freely, every clone shares the connection. Implements
/// `tower::Service<Call>`, so any tower layer wraps it.
///
/// A call on a broken or draining connection opens a new one (waiting no longer than the call's
/// own timeout); calls that were in flight on the broken one fail with `Unavailable`.
#[derive(Clone)]
pub struct Channel {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("endpoint", &self.inner.endpoint.to_string())
            .finish()
    }
}

impl Channel {
    /// Connects now; fails with `Unavailable` when the server cannot be reached.
    pub async fn connect(dst: impl IntoEndpoint) -> Result<Channel, Status> {
        let channel = Channel::lazy(dst)?;
        channel.inner.connection(None).await?;
        Ok(channel)
    }

    /// A channel that connects on its first call.
    pub fn lazy(dst: impl IntoEndpoint) -> Result<Channel, Status> {
        Ok(Channel {
            inner: Arc::new(Inner {
                endpoint: dst.into_endpoint()?,
                conn: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// A channel over a connection made elsewhere (a Unix socket, an in-memory duplex). It does
    /// not reconnect to `endpoint`'s address unless that connection breaks.
    pub fn from_connection(endpoint: Endpoint, conn: ClientConnection) -> Channel {
        Channel {
            inner: Arc::new(Inner {
                endpoint,
                conn: Mutex::new(Some(conn)),
                connecting: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }
}

impl Inner {
    fn current(&self) -> Option<ClientConnection> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.as_ref().filter(|c| !c.is_closed()).cloned()
    }

    async fn connection(&self, budget: Option<Duration>) -> Result<ClientConnection, Status> {
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        let _guard = self.connecting.lock().await;
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        let timeout = budget.map_or(self.endpoint.connect_timeout, |b| {
            b.min(self.endpoint.connect_timeout)
        });
        if let Some(path) = &self.endpoint.unix_path {
            let stream = tokio::time::timeout(timeout, sockrpc_transport::connect_unix(path))
                .await
                .map_err(|_| {
                    Status::unavailable(format!(
                        "cannot connect to {} within {timeout:?}",
                        self.endpoint
                    ))
                })?
                .map_err(|err| {
                    Status::unavailable(format!("cannot connect to {}: {err}", self.endpoint))
                })?;
            let (reader, writer) = stream.into_split();
            let conn = ClientConnection::spawn(reader, writer, self.endpoint.limits, None);
            *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn.clone());
            return Ok(conn);
        }
        let started = tokio::time::Instant::now();
        let mut last_err = None;
        for addr in self.endpoint.resolve().await? {
            let left = timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                break;
            }
            match connect_tcp(addr, &self.endpoint.socket, left).await {
                Ok(stream) => {
                    let conn = ClientConnection::spawn_tcp(stream, self.endpoint.limits);
                    *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn.clone());
                    return Ok(conn);
                }
                Err(err) => last_err = Some((addr, err)),
            }
        }
        Err(match last_err {
            Some((addr, err)) => Status::unavailable(format!("cannot connect to {addr}: {err}")),
            None => Status::unavailable(format!(
                "cannot connect to {} within {timeout:?}",
                self.endpoint
            )),
        })
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
        // The connection was up: no allocation, no extra task.
        Call { #[pin] inner: ResponseFuture },
        // The connection had to be (re)made first.
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
            if let Some(timeout) = self.inner.endpoint.timeout {
                request.set_timeout(timeout);
            }
        }
        if let Some(conn) = self.inner.current() {
            return ChannelFuture {
                kind: Kind::Call {
                    inner: conn.unary(path, request),
                },
            };
        }
        let inner = Arc::clone(&self.inner);
        ChannelFuture {
            kind: Kind::Connect {
                inner: Box::pin(async move {
                    let budget = request.timeout();
                    let started = tokio::time::Instant::now();
                    let conn = match inner.connection(budget).await {
                        Ok(conn) => conn,
                        Err(status) if budget.is_some_and(|b| started.elapsed() >= b) => {
                            return Err(Status::deadline_exceeded(format!(
                                "deadline exceeded while connecting: {}",
                                status.message()
                            )))
                        }
                        Err(status) => return Err(status),
                    };
                    if let Some(budget) = budget {
                        request.set_timeout(budget.saturating_sub(started.elapsed()));
                    }
                    conn.unary(path, request).await
                }),
            },
        }
    }
}
