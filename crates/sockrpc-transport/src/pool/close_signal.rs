//! [`CloseSignal`]: a channel's close as a layer above the channel sees it.
//!
//! Why: a layer that waits on its own, holding no call on the channel (a retry between two
//! attempts), is reached by no close; it learns of one only when it next calls. A signal made
//! once with the channel (a plain channel's pool, or a balanced channel as a whole, never one
//! of its members) and handed to the layer when it is built lets such a wait end at the close,
//! with nothing allocated per call: cloning it, and waiting on it, allocate nothing.
//!
//! Only the channel raises it: it keeps the [`CloseTrigger`] and hands out [`CloseSignal`]s,
//! which can wait and look but not raise, so a layer holding a signal cannot end the retries of
//! a channel that is still open.

use super::shutdown::{closed_status, closing_now_status};
use pin_project_lite::pin_project;
use sockrpc_protocol::Status;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// A channel's close, for the layers above it: [`status`](Self::status) says whether it was
/// closed (and how), [`closing`](Self::closing) waits for that. `Channel::close_signal` and
/// `Balanced::close_signal` hand theirs out. Cloning shares it; only its [`CloseTrigger`]
/// raises it. A default one is never raised.
#[derive(Debug, Clone, Default)]
pub struct CloseSignal {
    /// Cancelled at either close.
    closed: CancellationToken,
    /// Cancelled at a close at once (before `closed`).
    now: CancellationToken,
}

/// What raises a [`CloseSignal`]: kept by the channel whose close it is (a pool, a balanced
/// channel), never handed out.
#[derive(Debug, Default)]
pub struct CloseTrigger {
    signal: CloseSignal,
}

impl CloseTrigger {
    /// A trigger with its signal, open (for a channel type that raises it as it closes).
    pub fn new() -> CloseTrigger {
        CloseTrigger::default()
    }

    /// The signal to hand to the layers above: it waits for [`raise`](Self::raise).
    pub fn signal(&self) -> CloseSignal {
        self.signal.clone()
    }

    /// Raises the signal: `now` for a close at once (`close_now`), else graceful. Only rises.
    pub fn raise(&self, now: bool) {
        if now {
            self.signal.now.cancel();
        }
        self.signal.closed.cancel();
    }
}

impl CloseSignal {
    /// `None` while open; else what a call the close reached ends with: `UNAVAILABLE`
    /// ([`closed_status`]) after a graceful close, `CANCELLED` ([`closing_now_status`]) after
    /// a close at once.
    pub fn status(&self) -> Option<Status> {
        if self.now.is_cancelled() {
            Some(closing_now_status())
        } else if self.closed.is_cancelled() {
            Some(closed_status())
        } else {
            None
        }
    }

    /// Resolves once the channel is closed (either way), with [`status`](Self::status)'s
    /// answer; at once if it already is.
    pub fn closing(&self) -> Closing {
        Closing {
            wait: self.closed.clone().cancelled_owned(),
            now: self.now.clone(),
        }
    }
}

pin_project! {
    /// The future of [`CloseSignal::closing`].
    #[derive(Debug)]
    pub struct Closing {
        #[pin]
        wait: WaitForCancellationFutureOwned,
        now: CancellationToken,
    }
}

impl Future for Closing {
    type Output = Status;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Status> {
        let this = self.project();
        std::task::ready!(this.wait.poll(cx));
        // `now` is cancelled before `closed`: a close at once shows here.
        Poll::Ready(if this.now.is_cancelled() {
            closing_now_status()
        } else {
            closed_status()
        })
    }
}
