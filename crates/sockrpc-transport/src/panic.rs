//! Handler panics fail their own call, on every transport.
//!
//! A handler runs inside the transport's tasks (polled inline on a connection, or in a task of
//! its own); a panic that escaped would take the connection, or the UDP server's task, and
//! every other call with it. Both transports poll handler futures through [`poll_caught`].

use sockrpc_protocol::Status;
use std::{
    future::Future,
    panic::{catch_unwind, AssertUnwindSafe},
    pin::Pin,
    task::{Context, Poll},
};

/// A handler panicked while being polled.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Panicked;

/// Polls `future`, catching a panic.
pub(crate) fn poll_caught<F>(
    future: Pin<&mut F>,
    cx: &mut Context<'_>,
) -> Poll<Result<F::Output, Panicked>>
where
    F: Future + ?Sized,
{
    match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
        Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
        Ok(Poll::Pending) => Poll::Pending,
        Err(_) => Poll::Ready(Err(Panicked)),
    }
}

/// The status of a call whose handler panicked; logs it.
pub(crate) fn panicked() -> Status {
    tracing::error!("handler panicked; failing its call");
    Status::internal("handler panicked")
}
