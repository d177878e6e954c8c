//! A polite close: after its GOAWAY, the server sends its FIN and reads (and drops) what the
//! client still sends, until the client closes too or [`LINGER`] passes.
//!
//! ```text
//!  draining, last call answered ─┐
//!  idle timeout ─────────────────┼─▶ flush (GOAWAY) ─▶ FIN ─▶ read and drop ─▶ client's FIN: done
//!                                                                           └▶ LINGER: done
//! ```
//!
//! Why: a socket closed with bytes unread makes the kernel answer with a RST, and the client
//! may still be sending calls it made before the GOAWAY reached it. The RST then fails the
//! client's next write, and its read side may not have taken the GOAWAY in yet: the calls the
//! GOAWAY would have named as never started fail as "connection reset" instead of going again
//! on a new connection. Lingering keeps the socket open until the client has read the GOAWAY
//! and the FIN and closed its end, so its calls above the GOAWAY's last call id are retried.
//!
//! Only the polite closes linger (a drained connection, an idle one): a peer that broke the
//! protocol or timed out is closed at once.

use super::conn::Connection;
use crate::dispatch::Dispatch;
use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};
use tokio::time::Sleep;

/// The longest a closing connection waits for the client's FIN. A client that has read the
/// GOAWAY and the FIN closes within a round trip; one that does not is not waited for long.
pub(super) const LINGER: Duration = Duration::from_secs(1);

/// Reads per wake-up while lingering, so a client that keeps sending cannot hold the thread.
const READS_PER_POLL: usize = 16;

/// A connection closing politely.
pub(super) struct Linger {
    /// When it stops waiting for the client.
    until: Pin<Box<Sleep>>,
    /// The FIN has gone (everything before it was written).
    shut: bool,
}

impl<D: Dispatch> Connection<D> {
    /// Closes politely: what the write buffer holds (the GOAWAY) goes out, then the FIN, then
    /// the connection lingers (see the module's docs).
    pub(super) fn linger(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.linger = Some(Linger {
            until: Box::pin(tokio::time::sleep(LINGER)),
            shut: false,
        });
        self.poll_linger(cx)
    }

    /// One wake-up of a lingering connection: `Ready` when it is done.
    pub(super) fn poll_linger(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(linger) = self.linger.as_mut() else {
            return Poll::Ready(());
        };
        if linger.until.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        if !linger.shut {
            let mut state = self.shared.lock();
            match state.outbox.poll_flush(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
            match state.outbox.poll_shutdown(cx) {
                Poll::Ready(Ok(())) => linger.shut = true,
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
        for _ in 0..READS_PER_POLL {
            match self.reader.poll_fill(cx) {
                // The client closed too (or the connection failed): done.
                Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(_)) => self.reader.discard(),
                Poll::Pending => return Poll::Pending,
            }
        }
        // Still sending: come back after other tasks ran.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
