//! A truncated answer's call, held with the answer until its TCP re-issue arrives.
//!
//! A server's layers (sockrpc's trace and metrics) record a call whose one-message answer
//! they passed whole when its handler's future is dropped, with the code the transport drops
//! it with (`ending.rs`). An answer too large for a datagram goes out TRUNCATED, and the
//! client fetches it over TCP, where it may yet be refused (its metadata over the limit the
//! client announced there, say), or replaced (by `ABORTED`, an answer too large to keep):
//! dropped as the TRUNCATED left, the future recorded `OK` for a call whose caller got that
//! refusal. So the UDP server keeps the future with the cached answer ([`HeldCall`]), and the
//! TCP server takes it as the re-issue arrives, before the re-issue passes its layers
//! ([`ReplyCache::take_held`](super::ReplyCache::take_held), `server/reissued.rs`), ending it
//! with the code the connection will refuse the answer with, or as answered. (Taken only once
//! the re-issue, past every layer, reached the cache, the call counted twice at once in
//! those layers: a `ConcurrencyLimitLayer::new(1)` server's re-issue waited the whole hold
//! for the permit its own UDP call held.) A re-issue that reaches the router with the call
//! still held ([`ReplyCache::wait_taking`](super::ReplyCache::wait_taking)) drops it as its
//! own answer ends. One never fetched (the client gave up) goes with its entry or when its
//! hold ends, whichever is first, as answered. Its call stays in flight for its layers until
//! then.
//!
//! What a held call costs: its handler's future (the boxed call, uncounted by the cache, whose
//! entry counts the answer, over a datagram's 1,232 bytes since it went out TRUNCATED),
//! whatever its layers keep in it, and the task that ends its hold, which stays
//! until [`HOLD`] has passed even when a re-issue took the call. So what the held calls keep
//! is bounded by the cache's entries (its bytes, each source's share) and released within
//! [`HOLD`], fetched or not.
//!
//! A held call's drop runs the layers' code, so none is dropped under the cache's lock:
//! entries removed under it leave theirs in [`Locked`], which drops them after the unlock.
//!
//! A held call keeps whatever its layers keep until it is dropped: a tower `ConcurrencyLimit`
//! keeps its permit in its future, for one. So it is held for [`HOLD`] at most (the re-issue
//! follows the TRUNCATED at once), by a task of its own ([`Holding`]), not for the entry's
//! `ttl`: held until the entry went (its expiry is only looked at when the cache is next
//! used), a call that no client re-issued kept a `ConcurrencyLimitLayer::new(1)` server's one
//! permit, and every call waited for it, with no further UDP call for ever. One let go
//! unfetched ends as answered. An answer too large to keep (`ABORTED`) holds no call: it ends
//! at once, as `ABORTED`.

use super::State;
use sockrpc_protocol::Code;
use std::any::Any;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// The longest a call is held for its re-issue (at most the cache's `ttl`): a client re-issues
/// as soon as it has the TRUNCATED, over a connection it may have to open first.
pub(super) const HOLD: Duration = Duration::from_secs(5);

/// A UDP call whose answer went out TRUNCATED: its handler's future, kept until the TCP
/// re-issue's answer ends (see the module's documentation). Dropped, it ends the call as
/// answered; [`drop_as`](Self::drop_as) ends it with the code its caller got instead.
pub struct HeldCall(Box<dyn Any + Send>);

impl HeldCall {
    /// Holds `future`, the handler's future of a call whose answer went out TRUNCATED.
    pub(crate) fn new<F: Send + 'static>(future: F) -> HeldCall {
        HeldCall(Box::new(CaughtDrop(Some(future))))
    }

    /// Ends the call with `code`, the one its caller got in place of the answer
    /// (`ending::drop_as`): its layers record that, not `OK`.
    pub fn drop_as(self, code: Code) {
        crate::ending::drop_as(code, self.0);
    }
}

impl std::fmt::Debug for HeldCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeldCall")
    }
}

/// A held call's future, a panic in its drop caught (`ending::drop_caught`): the cache lets a
/// call go on whichever task let go of its entry (the UDP server's, on a client's
/// acknowledgement; a TCP connection's), which such a panic ended (`tests/udp/drop_panics.rs`).
struct CaughtDrop<F>(Option<F>);

impl<F> Drop for CaughtDrop<F> {
    fn drop(&mut self) {
        crate::ending::drop_caught(self.0.take());
    }
}

/// A held call as a cache entry keeps it, shared with the task that lets it go after its hold:
/// whoever [takes](Holding::take) it first has it.
pub(super) struct Holding(Arc<Mutex<Option<HeldCall>>>);

impl Holding {
    /// Holds `call` for `hold` at most: a task of the current runtime lets it go then, unless a
    /// re-issue took it. Without a runtime, the call is handed back, not held.
    pub(super) fn start(call: HeldCall, hold: Duration) -> Result<Holding, HeldCall> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(call);
        };
        let holding = Holding(Arc::new(Mutex::new(Some(call))));
        let timer = Holding(Arc::clone(&holding.0));
        runtime.spawn(async move {
            tokio::time::sleep(hold).await;
            // Taken out of the mutex first: its drop runs the layers' code.
            drop(timer.take());
        });
        Ok(holding)
    }

    /// The call, unless a re-issue or the hold's end took it already.
    pub(super) fn take(&self) -> Option<HeldCall> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// The cache's state under its lock; the held calls of the entries removed meanwhile
/// (`State::released`) are dropped once the lock is released.
pub(super) struct Locked<'a> {
    // Fields drop in order: the lock is released first.
    guard: MutexGuard<'a, State>,
    released: Vec<HeldCall>,
}

impl<'a> Locked<'a> {
    pub(super) fn new(guard: MutexGuard<'a, State>) -> Locked<'a> {
        Locked {
            guard,
            released: Vec::new(),
        }
    }
}

impl Deref for Locked<'_> {
    type Target = State;

    fn deref(&self) -> &State {
        &self.guard
    }
}

impl DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.guard
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // Dropped after the guard (see the fields).
        self.released = std::mem::take(&mut self.guard.released);
    }
}
