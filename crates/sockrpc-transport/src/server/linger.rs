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
//!
//! A connection evicted at the connection cap before its preface (`evict.rs`) is told with a
//! GOAWAY too, and its client's preface and calls may sit unread in the socket: closed at once,
//! the kernel would answer them with a RST that can destroy the GOAWAY. It cannot linger on its
//! own task, which holds the `max_connections` slot eviction exists to free; so its socket is
//! handed over ([`linger_handed_off`]) to a task of its own that holds one of the server's
//! lingering slots instead (shared with the clients refused at the cap, `listener.rs`): at most
//! [`LINGERING`] at once, each for at most [`HANDED_OFF_LINGER`] and [`HANDED_OFF_DRAIN`] bytes.
//! With no lingering slot free it closes at once, as a refused client past those does.

use super::conn::Connection;
use crate::codec::FrameDecoder;
use crate::dispatch::Dispatch;
use crate::outbox::Outbox;
use crate::reader::FrameReader;
use sockrpc_protocol::{frame, Code};
use std::sync::Arc;
use std::{
    future::Future,
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Sleep;

/// Sockets lingering at once off their connection's task: clients refused at the connection cap
/// and connections evicted there (`listener.rs` says why 64).
pub(super) const LINGERING: usize = 64;

/// The longest a socket handed off to linger is kept: a client that reads its GOAWAY closes
/// within a round trip.
pub(super) const HANDED_OFF_LINGER: Duration = Duration::from_secs(1);

/// Bytes read (and dropped) from a socket handed off to linger while its GOAWAY is delivered.
pub(super) const HANDED_OFF_DRAIN: usize = 64 * 1024;

/// Lingers on a socket handed off by its connection (evicted at the cap, `conn.rs`), on a task
/// that holds `slot` (one of [`LINGERING`]) and no connection slot: what `outbox` holds (the
/// GOAWAY) goes out, then the FIN, then what the client sends is read and dropped until it
/// closes too, for at most [`HANDED_OFF_LINGER`] and [`HANDED_OFF_DRAIN`] bytes.
pub(super) async fn linger_handed_off(
    mut outbox: Outbox,
    mut reader: FrameReader,
    slot: OwnedSemaphorePermit,
) {
    let _ = tokio::time::timeout(HANDED_OFF_LINGER, async {
        std::future::poll_fn(|cx| outbox.poll_flush(cx)).await?;
        // Already shut (it was lingering on its own task when evicted) or not: either way the
        // client's bytes are still read below.
        let _ = std::future::poll_fn(|cx| outbox.poll_shutdown(cx)).await;
        let mut drained = 0;
        while drained < HANDED_OFF_DRAIN {
            match std::future::poll_fn(|cx| reader.poll_fill(cx)).await? {
                0 => break,
                n => {
                    drained += n;
                    reader.discard();
                }
            }
        }
        io::Result::Ok(())
    })
    .await;
    drop(slot);
}

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

    /// Hands the socket, after a GOAWAY (`Some(reason)`, UNAVAILABLE, the last call id) or with
    /// what the write buffer holds, to a task that lingers on it off this connection's task
    /// (`linger.rs`), when one of the server's lingering slots is free. `false`: none is; the
    /// connection still has its socket.
    pub(super) fn hand_off(&mut self, goaway: Option<&str>) -> bool {
        let Ok(slot) = Arc::clone(&self.config.lingering).try_acquire_owned() else {
            return false;
        };
        self.abort_all();
        let outbox = {
            let mut state = self.shared.lock();
            if let Some(reason) = goaway {
                frame::encode_goaway(
                    state.outbox.buf_mut(),
                    self.last_call_id,
                    Code::Unavailable,
                    reason,
                );
            }
            std::mem::replace(&mut state.outbox, Outbox::new(Box::pin(tokio::io::sink())))
        };
        let decoder = FrameDecoder::new(self.config.limits);
        let reader = std::mem::replace(
            &mut self.reader,
            FrameReader::new(Box::pin(tokio::io::empty()), decoder),
        );
        tokio::spawn(super::linger::linger_handed_off(outbox, reader, slot));
        true
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
