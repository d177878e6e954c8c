//! Closing a connection from this side: gracefully ([`ClientConnection::close`]: the calls in
//! flight finish first), at once ([`ClientConnection::close_now`]: they fail), and waiting for
//! its end ([`ClientConnection::terminated`]).
//!
//! Why apart from the connection's machinery: a channel's shutdown (grpc-go's
//! `ClientConn.Close`, grpc-java's `shutdown`/`shutdownNow`/`awaitTermination`) is built from
//! these three, and they are the only way this side ends a connection it still holds.

use super::ClientConnection;
use sockrpc_protocol::Status;
use std::sync::atomic::Ordering;

impl ClientConnection {
    /// Stops taking calls; the connection closes once the calls in flight have finished,
    /// those waiting for room under the server's limit included: they were started, and are
    /// sent as room comes (`room.rs`).
    pub fn close(&self) {
        let shared = &self.handle.shared;
        let mut state = shared.lock();
        if state.closed.is_none() {
            state.room.start_draining();
            shared.close_to_new_calls(
                &mut state,
                Status::unavailable("connection closed by the client"),
            );
        }
        state.abandoned = true;
        state.outbox.wake_driver();
    }

    /// Stops taking calls and fails every call in flight, streams included, and every call
    /// waiting for room, with `status`;
    /// the connection closes at once (the server sees it end and cancels their handlers).
    pub fn close_now(&self, status: Status) {
        let shared = &self.handle.shared;
        let mut state = shared.lock();
        // Set first: the waiters `close` wakes fail with it (`room::unsent_status`).
        if state.aborted.is_none() {
            state.aborted = Some(status.clone());
        }
        shared.close(&mut state, status);
        state.abandoned = true;
        state.outbox.wake_driver();
    }

    /// Whether the connection has ended: its reader task finished and its socket is released.
    pub fn is_terminated(&self) -> bool {
        self.handle.shared.terminated.load(Ordering::Acquire)
    }

    /// Waits until the connection has ended ([`is_terminated`](Self::is_terminated)). A
    /// connection ends after [`close`](Self::close) once its calls have finished, at once after
    /// [`close_now`](Self::close_now), or when it breaks; pair with a timeout of your own.
    pub async fn terminated(&self) {
        let shared = &self.handle.shared;
        loop {
            let ended = shared.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if shared.terminated.load(Ordering::Acquire) {
                return;
            }
            ended.await;
        }
    }
}
