//! Handler panics fail their own call, on every transport.
//!
//! A handler runs inside the transport's tasks (polled inline on a connection, or in a task of
//! its own); a panic that escaped would take the connection, or the UDP server's task, and
//! every other call with it. Both transports poll handler futures through [`poll_caught`].
//!
//! Each panic is logged at ERROR, but within a budget ([`PANICS`]): a client that found a
//! request that makes a handler panic can send it at will, thousands a second over UDP, and one
//! ERROR line each flooded the log (50 calls, 50 lines: `tests/hostile/panic_log.rs`). At most
//! one goes out per `log_limit::EVERY`; the rest go to DEBUG, counted, and the next
//! ERROR says how many. The budget is the process's, not each server's, as the panic hook that
//! prints every panic is: a panic is the program's bug, wherever it was served.

use crate::log_limit::{Kind, LogLimit, EVERY};
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

/// The ERROR budget of handler panics, for the whole process.
static PANICS: LogLimit = LogLimit::new(EVERY);

/// Logs a panic (`what`: "handler panicked", say) at ERROR within [`PANICS`], else at DEBUG.
pub(crate) fn log_panic(what: &str, call_id: Option<u32>) {
    match PANICS.admit(Kind::Panicked) {
        Some(0) => tracing::error!(?call_id, "{what}; failing its call"),
        Some(suppressed) => tracing::error!(
            ?call_id,
            suppressed,
            "{what}; failing its call ({suppressed} more panics since the last one logged, \
             logged at DEBUG only: at most one every {}s)",
            PANICS.every_secs()
        ),
        None => tracing::debug!(?call_id, "{what}; failing its call"),
    }
}

/// The status of a call whose handler panicked; logs it (within [`PANICS`]).
pub(crate) fn panicked() -> Status {
    log_panic("handler panicked", None);
    Status::internal("handler panicked")
}
