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

    /// The call held with the TRUNCATED answer of `(instance, call_id)`, a call of `path` made
    /// from `peer`'s address (as [`lookup`](Self::lookup) finds it), taken out with a copy of
    /// that answer: the TCP server lets it go as the call's re-issue arrives, before the
    /// re-issue passes the server's layers (`server/reissued.rs`). `None` when no call is held.
    pub(crate) fn take_held(
        &self,
        peer: Option<IpAddr>,
        instance: u64,
        call_id: u32,
        path: &[u8],
    ) -> Option<(
        HeldCall,
        Result<sockrpc_protocol::Response<bytes::Bytes>, sockrpc_protocol::Status>,
    )> {
        match self.fetch(peer, instance, call_id, path, true) {
            (Lookup::Done(answer), Some(held)) => Some((held, answer)),
            _ => None,
        }
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
        match self.watch(peer, instance, call_id, path, take, false) {
            Ok(found) => found,
            Err(_) => (Lookup::InProgress, None),
        }
    }

    /// [`fetch`](Self::fetch), under the same lock: `Err` with the notifier of the call while
    /// it runs (made now when `make` and no re-issue waits for it yet; `None` otherwise).
    fn watch(
        &self,
        peer: Option<IpAddr>,
        instance: u64,
        call_id: u32,
        path: &[u8],
        take: bool,
        make: bool,
    ) -> Result<(Lookup, Option<HeldCall>), Option<Arc<Notify>>> {
        let mut state = self.lock();
        let now = Instant::now();
        self.expire(&mut state, now);
        let peer = peer.map(canonical);
        let ttl = self.config.ttl;
        Ok(match state.map.get_mut(&(instance, call_id)) {
            Some(slot) if !may_fetch(slot.src(), peer) => (Lookup::Missing, None),
            Some(slot) if slot.path().as_ref() != path => (Lookup::OtherMethod, None),
            Some(Slot::Running { ended, .. }) => {
                return Err(make.then(|| Arc::clone(ended.get_or_insert_default())));
            }
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
        })
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
            let ended = match self.watch(peer, instance, call_id, path, take, true) {
                Ok(found) => return found,
                Err(Some(ended)) => ended,
                Err(None) => continue, // Not when making one.
            };
            #[cfg(test)]
            super::reissue_tests::between_looks();
            let notified = ended.notified();
            tokio::pin!(notified);
            // Registered, then a second look: a call that ended before the registration is
            // seen now; one that ends after it wakes this wait.
            notified.as_mut().enable();
            match self.watch(peer, instance, call_id, path, take, true) {
                Ok(found) => return found,
                // Still the call this wait registered with.
                Err(Some(now)) if Arc::ptr_eq(&now, &ended) => {}
                // Another run under the same key (the first forgotten unrun, or ended and
                // gone, then begun again): its notifier is not the one registered with, and
                // the one registered with will never be notified again.
                Err(_) => continue,
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
