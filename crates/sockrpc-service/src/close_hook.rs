//! How a layer above a channel hears that the channel closed: a [`CloseHook`] put in a call's
//! extensions is tied by the channel to itself when the call reaches it.
//!
//! Why: a retry layer sleeping in its backoff between two attempts holds no call on the
//! channel, so a `close_now` (grpc-java's `shutdownNow`) could not reach it, and the call
//! would end only when its next attempt found the channel closed, a backoff later. With the
//! hook, the retry ends at once: `CANCELLED` after `close_now`, `UNAVAILABLE` ("channel
//! closed") after `close` (its next attempt would be a new call on a closed channel).

use sockrpc_protocol::Status;
use sockrpc_transport::pool::Pool;
use std::future::Future;
use std::sync::{Arc, OnceLock};

/// A slot, shared by every copy of a call (extensions are cloned with the call), that the
/// channel the call reaches fills in; then [`closing`](Self::closing) resolves when that
/// channel closes. A call that never reaches a channel leaves it empty, and it never resolves.
#[derive(Clone, Default)]
pub struct CloseHook(Arc<OnceLock<Pool>>);

impl CloseHook {
    /// An empty hook, to insert in a call's extensions before its first attempt.
    pub fn new() -> CloseHook {
        CloseHook::default()
    }

    /// The channel of `pool` took the call: the hook follows its close.
    pub(crate) fn attach(&self, pool: &Pool) {
        let _ = self.0.set(pool.clone());
    }

    /// Resolves once the channel the call reached is closed, with the status a call waiting
    /// to be attempted again ends with: `CANCELLED` after `close_now`, `UNAVAILABLE` after
    /// `close`. Never resolves while the call has reached no channel.
    pub fn closing(&self) -> impl Future<Output = Status> + Send + 'static {
        let pool = self.0.get().cloned();
        async move {
            match pool {
                Some(pool) => pool.closing().await,
                None => std::future::pending().await,
            }
        }
    }
}

impl std::fmt::Debug for CloseHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloseHook")
            .field("attached", &self.0.get().is_some())
            .finish()
    }
}
