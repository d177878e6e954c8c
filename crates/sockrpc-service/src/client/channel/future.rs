//! `ChannelFuture`: the future of a call on a [`Channel`](super::Channel), and how a unary call
//! starts.
//!
//! Kept apart from `channel.rs` (which turns a `Call` into a request on the wire) because its
//! concern is the connection a call goes out on: the one up now (no allocation, no extra
//! task), one waited for, or, for a caller that picks among endpoints itself (a balanced
//! channel), none waited for: that caller would rather send the call to an endpoint that is
//! connected now than wait on this one's connect timeout
//! ([`Channel::call_now`](super::Channel::call_now)).

use super::{unary_waiting, wire_response};
use crate::{Body, BoxFuture};
use bytes::Bytes;
use pin_project_lite::pin_project;
use sockrpc_protocol::{MethodPath, Request, Response, Status};
use sockrpc_transport::pool::Pool;
use sockrpc_transport::ResponseFuture;
use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};
use tokio::time::Instant;

pin_project! {
    /// The future of a call on a [`Channel`](super::Channel).
    pub struct ChannelFuture {
        #[pin]
        kind: Kind,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind {
        // A connection was up: no allocation, no extra task. If the server refuses the call
        // unstarted (a GOAWAY race), the request comes back and goes out once more on another
        // connection.
        Call { #[pin] inner: ResponseFuture, retry: Option<Retry> },
        // The call had to wait for a connection first, or streams.
        Boxed { inner: BoxFuture<Result<Response<Body>, Status>> },
    }
}

/// What a unary call needs for one transparent retry (the request itself comes back from the
/// connection, so nothing is copied up front; its deadline is the first attempt's).
struct Retry {
    pool: Pool,
}

impl Retry {
    fn run(
        self,
        path: MethodPath,
        mut request: Request<Bytes>,
        deadline: Option<Instant>,
    ) -> BoxFuture<Result<Response<Body>, Status>> {
        if let Some(deadline) = deadline {
            // The first attempt's deadline, not a new one: the transport tells the server
            // what is left of it when it sends.
            request.set_deadline(deadline);
        }
        Box::pin(unary_waiting(self.pool, path, request, None))
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
            let next = match kind.as_mut().project() {
                KindProj::Boxed { inner } => return inner.as_mut().poll(cx),
                KindProj::Call { mut inner, retry } => {
                    match std::task::ready!(inner.as_mut().poll(cx)) {
                        Ok(response) => return Poll::Ready(Ok(wire_response(response))),
                        Err(status) if status.is_not_processed() => {
                            let deadline = inner.deadline();
                            match (retry.take(), inner.take_unsent()) {
                                (Some(retry), Some((path, request))) => {
                                    retry.run(path, request, deadline)
                                }
                                _ => return Poll::Ready(Err(status)),
                            }
                        }
                        Err(status) => return Poll::Ready(Err(status)),
                    }
                }
            };
            kind.set(Kind::Boxed { inner: next });
        }
    }
}

/// A call that needs a future of its own (a stream, a UDP call).
pub(super) fn boxed(inner: BoxFuture<Result<Response<Body>, Status>>) -> ChannelFuture {
    ChannelFuture {
        kind: Kind::Boxed { inner },
    }
}

/// A call that failed before anything was sent.
pub(super) fn failed(status: Status) -> ChannelFuture {
    ChannelFuture {
        kind: Kind::Boxed {
            inner: Box::pin(std::future::ready(Err(status))),
        },
    }
}

/// A unary call on `pool`: on the connection up now; else, when `waits`, once one comes up
/// (`Pool::get`), or else failing at once, never sent ([`Pool::no_connection`]). Only a call
/// that waits is sent again on this pool after a connection refused it unstarted: one that does
/// not returns the refusal, for its caller to send elsewhere.
pub(super) fn unary(
    pool: Pool,
    path: MethodPath,
    request: Request<Bytes>,
    waits: bool,
) -> ChannelFuture {
    if let Some(conn) = pool.pick() {
        let retry = waits.then_some(Retry { pool });
        return ChannelFuture {
            kind: Kind::Call {
                inner: conn.into_unary(path, request),
                retry,
            },
        };
    }
    if !waits {
        return failed(pool.no_connection());
    }
    ChannelFuture {
        kind: Kind::Boxed {
            inner: Box::pin(unary_waiting(pool, path, request, None)),
        },
    }
}
