//! What a connection's holder can see of it without making a call: its counts (in flight,
//! waiting, started), the server's announced limit, whether and why it closed (or a wait for
//! it to stop taking calls), and what kind of peer it met. Apart from `mod.rs` because a pool
//! and the balanced channel read these on every pick, while the calls themselves go through
//! `call.rs` and `stream.rs`.

use super::ClientConnection;
use sockrpc_protocol::Status;
use std::sync::atomic::Ordering;
use std::time::Duration;

impl ClientConnection {
    /// Calls in flight: as the server counts them, so not a stream whose end arrived (or that
    /// this side cancelled) while its receiver holds it unread.
    pub fn in_flight(&self) -> usize {
        self.handle.shared.in_flight.load(Ordering::Relaxed)
    }

    /// The most calls the server takes in flight on this connection, as its SETTINGS
    /// announced (`ServerConfig::max_concurrent_calls`); `None` before they arrive, or from a
    /// server that announced none. A unary call made while this many are in flight waits for
    /// one to end (up to its deadline) before it is sent, as an HTTP/2 client holds a stream
    /// back (a streaming call through [`room`](Self::room)); a pool fills a connection no
    /// further than this.
    pub fn max_calls(&self) -> Option<usize> {
        match self.handle.shared.max_calls.load(Ordering::Relaxed) {
            usize::MAX => None,
            limit => Some(limit),
        }
    }

    /// Calls waiting, unsent, for room under the server's limit
    /// ([`max_calls`](Self::max_calls)).
    pub fn waiting(&self) -> usize {
        self.handle.shared.waiting.load(Ordering::Relaxed)
    }

    /// Calls ever started on this connection.
    pub fn calls_started(&self) -> u64 {
        self.handle.shared.started.load(Ordering::Relaxed)
    }

    /// Whether the connection takes no new calls: it failed, closed, or the server is draining.
    pub fn is_closed(&self) -> bool {
        self.handle.shared.closed.load(Ordering::Acquire)
    }

    /// Waits until the connection takes no new calls ([`is_closed`](Self::is_closed)): it
    /// failed, this side closed it, or the server sent GOAWAY (the calls in flight may still be
    /// finishing). What a call that should not outlive its connection's useful life (a health
    /// watch) waits for, to end itself so that a draining server is not kept waiting.
    pub async fn closing(&self) {
        let shared = &self.handle.shared;
        loop {
            let notified = shared.handshake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }

    /// Why the connection takes no new calls, if it does not.
    pub fn closed_reason(&self) -> Option<Status> {
        self.handle.shared.lock().closed.clone()
    }

    /// How long no call has been in flight; zero while one is.
    pub fn idle_for(&self) -> Duration {
        let state = self.handle.shared.lock();
        if state.calls.is_empty() {
            state.idle_since.elapsed()
        } else {
            Duration::ZERO
        }
    }

    /// Whether this side closed the connection ([`close`](Self::close)), not the server.
    pub fn closed_by_client(&self) -> bool {
        self.handle.shared.lock().abandoned
    }

    /// Whether the server sent GOAWAY on this connection (draining, or closing it for idleness).
    pub fn was_sent_away(&self) -> bool {
        self.handle.shared.lock().goaway.is_some()
    }

    /// Whether the server retired the connection (a GOAWAY with FLAG_RETIRE: its idle timeout
    /// or maximum age), which refuses no new connection: a pool reconnects without backing off.
    pub fn was_retired(&self) -> bool {
        self.handle.shared.lock().retired
    }

    /// Whether the server's preface has arrived: the peer speaks sockrpc.
    pub fn is_handshaken(&self) -> bool {
        self.handle.shared.handshaken.load(Ordering::Acquire)
    }

    /// Whether the connection closed because the peer does not speak sockrpc (its first bytes
    /// were no sockrpc preface, or named another version).
    pub fn peer_is_foreign(&self) -> bool {
        self.handle.shared.foreign.load(Ordering::Acquire)
    }

    /// Whether the connection closed because the peer sent a frame that breaks the protocol.
    /// On a connection that never carried a call the peer's own state cannot explain it: the
    /// pool then takes it as a refusal another attempt would meet too.
    pub fn peer_broke_protocol(&self) -> bool {
        self.handle.shared.broken.load(Ordering::Acquire)
    }

    /// Whether the connection ended because the runtime its reader ran on shut down (a client
    /// kept across runtimes), not for anything the server did.
    pub fn lost_with_runtime(&self) -> bool {
        self.handle.shared.runtime_gone.load(Ordering::Acquire)
    }
}
