//! What a TCP re-issue of a UDP call finds in the cache: the call's answer, at once or once the
//! call ends, and, for the re-issue that takes it, the call held with an answer that went out
//! TRUNCATED (`held.rs`). Apart from `mod.rs`, which keeps the entries, because this is the
//! TCP side's view of them.

use super::{canonical, may_fetch, HeldCall, Lookup, ReplyCache, Slot};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Notify;

impl ReplyCache {
    /// What the cache knows about `(instance, call_id)`, a call of `path`, for a caller at
    /// `peer`'s IP address, now. A call made from another address is [`Lookup::Missing`]: the
    /// instance is plain text in every datagram, the address is what ties an answer to its
    /// client. A peer without one (`None`: a Unix socket) is a process on this host, and gets
    /// only calls made from a loopback address (`cache/source.rs`).
    pub fn lookup(&self, peer: Option<IpAddr>, instance: u64, call_id: u32, path: &[u8]) -> Lookup {
        self.fetch(peer, instance, call_id, path, false).0
    }

    /// [`lookup`](Self::lookup), and when `take`, the call held with a TRUNCATED answer.
    fn fetch(
        &self,
        peer: Option<IpAddr>,
        instance: u64,
        call_id: u32,
        path: &[u8],
        take: bool,
    ) -> (Lookup, Option<HeldCall>) {
        let mut state = self.lock();
        let now = Instant::now();
        self.expire(&mut state, now);
        let peer = peer.map(canonical);
        let ttl = self.config.ttl;
        match state.map.get_mut(&(instance, call_id)) {
            Some(slot) if !may_fetch(slot.src(), peer) => (Lookup::Missing, None),
            Some(slot) if slot.path().as_ref() != path => (Lookup::OtherMethod, None),
            Some(Slot::Running { .. }) => (Lookup::InProgress, None),
            Some(Slot::Done {
                answer,
                finished,
                held,
                ..
            }) if now.saturating_duration_since(*finished) < ttl => {
                let held = match take {
                    true => held.take().and_then(|held| held.take()),
                    false => None,
                };
                (Lookup::Done(answer.clone()), held)
            }
            _ => (Lookup::Missing, None),
        }
    }

    /// What call `(instance, call_id)` notifies when it ends or is forgotten, made now if no
    /// re-issue waits for it yet; `None` when it is not running.
    fn ending(&self, instance: u64, call_id: u32) -> Option<Arc<Notify>> {
        match self.lock().map.get_mut(&(instance, call_id)) {
            Some(Slot::Running { ended, .. }) => Some(Arc::clone(ended.get_or_insert_default())),
            _ => None,
        }
    }

    /// Like [`lookup`](Self::lookup), but waits while the call is still running, until
    /// `deadline` (`None`: as long as it runs). Never returns `InProgress` unless the deadline
    /// passed.
    pub async fn wait(
        &self,
        peer: Option<IpAddr>,
        instance: u64,
        call_id: u32,
        path: &[u8],
        deadline: Option<tokio::time::Instant>,
    ) -> Lookup {
        let call = (peer, instance, call_id, path);
        self.wait_for(call, deadline, false).await.0
    }

    /// [`wait`](Self::wait), which the service layer calls for a re-issued call (with the TCP
    /// peer's address as `peer`), and the call held with its answer, if that answer went out
    /// TRUNCATED and no re-issue took it yet. The caller drops the call as its own answer ends
    /// ([`HeldCall`]), so that the UDP side's layers record what the caller got.
    pub async fn wait_taking(
        &self,
        peer: Option<IpAddr>,
        instance: u64,
        call_id: u32,
        path: &[u8],
        deadline: Option<tokio::time::Instant>,
    ) -> (Lookup, Option<HeldCall>) {
        let call = (peer, instance, call_id, path);
        self.wait_for(call, deadline, true).await
    }

    /// Waits on the call's own notifier (`Slot::Running`), so that a re-issue wakes when
    /// its call ends, not whenever any UDP call on the server ends: with one notifier for all,
    /// a client's few hundred re-issues of its own slow call made every other client's UDP
    /// call wake them all, each to take this cache's lock (`tests/hostile/reissue_wakes.rs`).
    async fn wait_for(
        &self,
        (peer, instance, call_id, path): (Option<IpAddr>, u64, u32, &[u8]),
        deadline: Option<tokio::time::Instant>,
        take: bool,
    ) -> (Lookup, Option<HeldCall>) {
        loop {
            match self.fetch(peer, instance, call_id, path, take) {
                (Lookup::InProgress, _) => {}
                other => return other,
            }
            let Some(ended) = self.ending(instance, call_id) else {
                // It ended since the look: look again.
                continue;
            };
            let notified = ended.notified();
            tokio::pin!(notified);
            // Registered, then a second look: a call that ended before the registration is
            // seen now; one that ends after it wakes this wait.
            notified.as_mut().enable();
            match self.fetch(peer, instance, call_id, path, take) {
                (Lookup::InProgress, _) => {}
                other => return other,
            }
            match deadline {
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline, notified).await.is_err() {
                        return self.fetch(peer, instance, call_id, path, take);
                    }
                }
                None => notified.await,
            }
        }
    }
}
