//! `Channel`: a tower `Service` over a pool of connections to one endpoint.

use super::endpoint::{Endpoint, IntoEndpoint};
use super::pool::{ConnectionStats, Pool};
use crate::{Body, BoxFuture, Call};
use bytes::Bytes;
use pin_project_lite::pin_project;
use sockrpc_protocol::{MetadataMap, MethodPath, Request, Response, Status};
use sockrpc_transport::{ClientConnection, ResponseFuture, StreamSender};
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
        // A connection was up: no allocation, no extra task. `retry` keeps the request in case
        // the server refuses it unprocessed (GOAWAY), when it is sent again on a new connection.
        Call { #[pin] inner: ResponseFuture, retry: Option<Retry> },
        // The call had to wait for a connection first, or streams.
        Boxed { inner: BoxFuture<Result<Response<Body>, Status>> },
    }
}

/// A unary request kept for one transparent retry.
struct Retry {
    pool: Pool,
    path: MethodPath,
    request: Request<Bytes>,
    started: Instant,
}

impl Retry {
    fn run(mut self) -> BoxFuture<Result<Response<Body>, Status>> {
        if let Some(timeout) = self.request.timeout() {
            self.request
                .set_timeout(timeout.saturating_sub(self.started.elapsed()));
        }
        Box::pin(unary_waiting(self.pool, self.path, self.request))
    }
}

impl std::fmt::Debug for ChannelFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChannelFuture")
    }
}

impl Future for ChannelFuture {
    type Output = Result<Response<Body>, Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut kind = self.project().kind;
        loop {
            let retry = match kind.as_mut().project() {
                KindProj::Boxed { inner } => return inner.as_mut().poll(cx),
                KindProj::Call { inner, retry } => match std::task::ready!(inner.poll(cx)) {
                    Ok(response) => return Poll::Ready(Ok(response.map(Body::once))),
                    Err(status) if status.is_not_processed() && retry.is_some() => retry.take(),
                    Err(status) => return Poll::Ready(Err(status)),
                },
            };
            if let Some(retry) = retry {
                kind.set(Kind::Boxed { inner: retry.run() });
            }
        }
    }
}

impl Service<Call> for Channel {
    type Response = Response<Body>;
    type Error = Status;
    type Future = ChannelFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> ChannelFuture {
        let streaming_response = call.streaming_response();
        let (path, request) = call.into_parts();
        let (metadata, body, mut timeout) = request.into_parts();
        if timeout.is_none() {
            timeout = self.pool.endpoint().timeout;
        }
        let pool = self.pool.clone();
        let (first, body) = match body.into_once() {
            Ok(message) if !streaming_response => {
                let request = Request::from_parts(metadata, message, timeout);
                return unary(pool, path, request);
            }
            Ok(message) => (Some(message), None),
            Err(body) => (None, Some(body)),
        };
        ChannelFuture {
            kind: Kind::Boxed {
                inner: Box::pin(open_stream(pool, path, metadata, timeout, first, body)),
            },
        }
    }
}

fn unary(pool: Pool, path: MethodPath, request: Request<Bytes>) -> ChannelFuture {
    if let Some(conn) = pool.pick() {
        let retry = Retry {
            pool,
            path: path.clone(),
            request: request.clone(),
            started: Instant::now(),
        };
        return ChannelFuture {
            kind: Kind::Call {
                inner: conn.unary(path, request),
                retry: Some(retry),
            },
        };
    }
    ChannelFuture {
        kind: Kind::Boxed {
            inner: Box::pin(unary_waiting(pool, path, request)),
        },
    }
}

/// A unary call that first waits for a connection (within its deadline).
async fn unary_waiting(
    pool: Pool,
    path: MethodPath,
    mut request: Request<Bytes>,
) -> Result<Response<Body>, Status> {
    let deadline = request.timeout().map(|t| Instant::now() + t);
    let conn = pool.get(deadline).await?;
    if let Some(deadline) = deadline {
        // The wait for a connection counts against the call's own deadline.
        request.set_timeout(deadline.saturating_duration_since(Instant::now()));
    }
    let response = conn.unary(path, request).await?;
    Ok(response.map(Body::once))
}

/// A streaming call: opens it, starts a task feeding the request stream (if any) into it, and
/// returns as soon as the response head arrives.
async fn open_stream(
    pool: Pool,
    path: MethodPath,
    metadata: MetadataMap,
    timeout: Option<std::time::Duration>,
    first: Option<Bytes>,
    body: Option<Body>,
) -> Result<Response<Body>, Status> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let conn = match pool.pick() {
        Some(conn) => conn,
        None => pool.get(deadline).await?,
    };
    let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    let (sender, mut receiver) = conn.open_stream(&path, &metadata, timeout, first)?;
    if let Some(body) = body {
        tokio::spawn(feed(sender, body));
    }
    let headers = std::future::poll_fn(|cx| receiver.poll_headers(cx)).await?;
    Ok(Response::from_parts(
        headers,
        Body::incoming(receiver),
        MetadataMap::new(),
    ))
}

/// Sends a request stream as the window allows; stops when the call ends either way.
async fn feed(mut sender: StreamSender, mut body: Body) {
    loop {
        let next = std::future::poll_fn(|cx| {
            if sender.poll_alive(cx).is_err() {
                return Poll::Ready(None);
            }
            match sender.poll_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => return Poll::Ready(None),
                Poll::Ready(Ok(())) => {}
            }
            body.poll_message(cx).map(Some)
        })
        .await;
        match next {
            // The call ended (answered, cancelled, failed): nobody reads more requests.
            None => return,
            Some(None) => {
                sender.close();
                return;
            }
            Some(Some(Ok(message))) => {
                let sent = std::future::poll_fn(|cx| Poll::Ready(sender.send(cx, &message))).await;
                if sent.is_err() {
                    sender.cancel();
                    return;
                }
            }
            Some(Some(Err(status))) => {
                tracing::debug!(error = %status, "request stream failed; cancelling the call");
                sender.cancel();
                return;
            }
        }
    }
}
