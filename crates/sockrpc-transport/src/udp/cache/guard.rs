//! `CompletionGuard`: a started call's entry never stays "running" for ever, whatever ends
//! the call (its answer, a panic in its handler, its task aborted at shutdown).

use super::{HeldCall, ReplyCache};
use bytes::Bytes;
use sockrpc_protocol::{Response, Status};
use std::sync::Arc;

/// Completes a started call when dropped unfinished (handler panicked, task aborted at
/// shutdown), so its entry never stays `InProgress` forever and a retransmission is told the
/// call was interrupted instead of running it again.
pub(crate) struct CompletionGuard {
    pub(crate) cache: Arc<ReplyCache>,
    pub(crate) key: Option<(u64, u32)>,
}

impl CompletionGuard {
    /// Stores the answer, with its call `held` when it went out TRUNCATED (`held.rs`), and
    /// disarms the guard. A call whose answer is not kept (its method skips the cache) goes now.
    pub(crate) fn complete(
        mut self,
        answer: Result<Response<Bytes>, Status>,
        held: Option<HeldCall>,
    ) {
        if let Some((instance, call_id)) = self.key.take() {
            self.cache.complete_holding(instance, call_id, answer, held);
        }
    }
}

impl Drop for CompletionGuard {
    fn drop(&mut self) {
        if let Some((instance, call_id)) = self.key.take() {
            self.cache.complete(
                instance,
                call_id,
                Err(Status::aborted(
                    "the call was interrupted before it finished; it may or may not have taken effect",
                )),
            );
        }
    }
}
