//! Calls opened and waiting for their request message.
//!
//! A unary call's OPEN and MESSAGE nearly always arrive in the same read, back to back, so the
//! most recent OPEN is kept aside and a MESSAGE that follows it never touches the map. An OPEN
//! whose MESSAGE does not come is not held forever: each waits at most until its deadline or
//! the connection's frame timeout, whichever is sooner, and is then answered and forgotten.
//! The frame timeout counts from the last piece of a split message that arrived, not from the
//! OPEN: a client sends one split message at a time, so a request may wait behind other calls'
//! pieces ([`OpenCalls::restart`]).
//!
//! What the waiting calls hold is counted ([`OpenCalls::held`]): the call cap bounds how many
//! wait, but not what each holds — a path of up to 64 KiB and a 16 KiB metadata block that may
//! be 4,000 tiny entries, each far larger parsed than on the wire — so a connection refuses
//! new unary OPENs while its waiting calls hold more than [`PENDING_OPEN_BUDGET`].
//!
//! After each read batch the calls that arrived in it are settled (their wait fixed, their
//! path and metadata copied out), not every call waiting: with thousands waiting, a client
//! sending one tiny frame per read made the server walk all of them each time. The soonest
//! expiry is kept as it was computed; a call removed since may have held it, so the timer can
//! fire early once, and [`OpenCalls::expire`] computes it again from the calls left.

use foldhash::HashMap;
use sockrpc_protocol::{EncodingFields, MetadataMap, MethodPath, PathCache};
use std::time::Duration;
use tokio::time::Instant;

/// What the unary calls waiting for their request message on one connection may hold (as
/// counted by [`Opened::cost`]) before it refuses more (`RESOURCE_EXHAUSTED`). A client whose
/// request MESSAGE follows its OPEN has at most a few waiting at a time.
pub(super) const PENDING_OPEN_BUDGET: usize = 16 * 1024 * 1024;

/// What a waiting call counts beside its path and metadata bytes: the call itself.
const OPEN_COST: usize = 256;

/// What each metadata entry counts beside its key and value bytes: its place in the map and
/// its key's own allocation (an entry is 4 bytes on the wire at least, over 80 parsed).
const METADATA_ENTRY_COST: usize = 128;

/// The room [`OpenCalls`] keeps for the ids of calls to settle: a client that opens and
/// cancels calls by the thousand in one batch makes it grow for that batch, not for good.
const FRESH_KEPT: usize = 64;

/// A call whose OPEN arrived and whose request message has not.
pub(super) struct Opened {
    pub(super) path: MethodPath,
    pub(super) metadata: MetadataMap,
    pub(super) deadline: Option<Instant>,
    pub(super) timeout: Option<Duration>,
    /// The UDP call this re-issues (the OPEN's `FLAG_REISSUE` field).
    pub(super) reissue: Option<(u64, u32)>,
    /// The OPEN's encoding fields (`FLAG_ENCODING`), handed up with the request.
    pub(super) encoding: Option<EncodingFields>,
    /// The request MESSAGE carried `FLAG_COMPRESSED` (set when it arrives).
    pub(super) compressed: bool,
    /// The OPEN's `FLAG_FOLD_END`: an OK answer may fold its END into its MESSAGE.
    pub(super) fold_end: bool,
    /// When the wait for the request message ends; set once the call is still waiting at the
    /// end of a read batch (most never are: their MESSAGE arrives in the same read).
    expires: Option<Instant>,
    /// Path and metadata no longer share the connection's read buffer.
    unshared: bool,
    /// What this call counts against [`PENDING_OPEN_BUDGET`] while it waits.
    cost: usize,
}

impl Opened {
    pub(super) fn new(
        path: MethodPath,
        metadata: MetadataMap,
        timeout: Option<Duration>,
        reissue: Option<(u64, u32)>,
    ) -> Opened {
        Opened {
            path,
            metadata,
            deadline: timeout.map(|t| Instant::now() + t),
            timeout,
            reissue,
            encoding: None,
            compressed: false,
            fold_end: false,
            expires: None,
            unshared: false,
            cost: 0,
        }
    }

    /// What this call holds while it waits (or, a streaming call, while it runs), counted
    /// generously (see [`METADATA_ENTRY_COST`]).
    pub(super) fn cost(&self) -> usize {
        let entries: usize = self
            .metadata
            .iter()
            .map(|(key, value)| METADATA_ENTRY_COST + key.len() + value.len())
            .sum();
        OPEN_COST + self.path.as_bytes().len() + entries
    }

    /// The call will wait across reads: copies path and metadata out of the read buffer (a
    /// 50-byte OPEN must not keep a multi-megabyte buffer alive while it waits), and fixes when
    /// the wait ends. Returns that instant.
    fn settle(&mut self, now: Instant, frame_timeout: Duration) -> Instant {
        self.unshare();
        *self.expires.get_or_insert_with(|| {
            let patience = now + frame_timeout;
            self.deadline.map_or(patience, |d| d.min(patience))
        })
    }

    /// Copies path and metadata out of the read buffer, once: what holds them for long (a call
    /// waiting across reads, a streaming call's handler) must not keep a buffer alive that grew
    /// for a large frame read together with the OPEN.
    pub(super) fn unshare(&mut self) {
        if !self.unshared {
            // The decoder's `PathCache` hands out paths of up to `MAX_PATH` bytes in storage of
            // their own already; only a longer one is a slice of the read buffer.
            if self.path.as_bytes().len() > PathCache::MAX_PATH {
                self.path = self.path.unshared();
            }
            self.metadata.unshare();
            self.unshared = true;
        }
    }

    fn expired(&self, now: Instant) -> bool {
        self.expires.is_some_and(|at| at <= now)
    }
}

/// The sooner of two expiries, either of which may be unknown.
fn sooner(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Calls opened whose request message has not arrived yet.
#[derive(Default)]
pub(super) struct OpenCalls {
    last: Option<(u32, Opened)>,
    /// Keyed by the peer's call ids: a seeded hash, so a client cannot choose colliding ids.
    rest: HashMap<u32, Opened>,
    /// The sum of the waiting calls' costs.
    held: usize,
    /// Calls inserted since the last [`settle`](Self::settle) (some may be gone already).
    fresh: Vec<u32>,
    /// Every waiting call's wait starts again at the next settle ([`restart`](Self::restart)).
    restarted: bool,
    /// Calls that stopped waiting (removed or expired), for the idle timer's look at the
    /// connection's activity.
    departed: u64,
    /// The soonest expiry of the settled calls, as last computed: never later than the true
    /// one (a call removed since may have held it).
    soonest: Option<Instant>,
    /// Calls settled, for the tests: a settle visits the fresh calls only.
    #[cfg(test)]
    visits: usize,
}

impl OpenCalls {
    pub(super) fn insert(&mut self, id: u32, mut opened: Opened) {
        opened.cost = opened.cost();
        self.held += opened.cost;
        if let Some((previous, earlier)) = self.last.replace((id, opened)) {
            self.rest.insert(previous, earlier);
        }
        self.fresh.push(id);
    }

    pub(super) fn remove(&mut self, id: &u32) -> Option<Opened> {
        let removed = match &self.last {
            Some((last, _)) if last == id => self.last.take().map(|(_, opened)| opened),
            _ => self.rest.remove(id),
        };
        if let Some(opened) = &removed {
            self.held -= opened.cost;
            self.departed += 1;
            if self.is_empty() {
                // Nothing waits: nothing to settle (a call whose MESSAGE followed its OPEN in
                // the same read never reaches `settle`).
                self.forget_settled();
            }
        }
        removed
    }

    /// How many calls stopped waiting so far (their message came, or they were removed or
    /// expired).
    pub(super) fn departed(&self) -> u64 {
        self.departed
    }

    /// What the waiting calls hold, as counted against [`PENDING_OPEN_BUDGET`].
    pub(super) fn held(&self) -> usize {
        self.held
    }

    pub(super) fn len(&self) -> usize {
        self.rest.len() + usize::from(self.last.is_some())
    }

    pub(super) fn is_empty(&self) -> bool {
        self.last.is_none() && self.rest.is_empty()
    }

    pub(super) fn clear(&mut self) {
        self.last = None;
        self.rest.clear();
        self.held = 0;
        self.forget_settled();
    }

    fn forget_settled(&mut self) {
        self.fresh.clear();
        self.fresh.shrink_to(FRESH_KEPT);
        self.restarted = false;
        self.soonest = None;
    }

    /// Called after each read batch: the calls still waiting will be held across reads (see
    /// [`Opened::settle`]). Settles those inserted since the last call (all of them after a
    /// [`restart`](Self::restart)); returns the soonest expiry (`None`: none waits).
    pub(super) fn settle(&mut self, now: Instant, frame_timeout: Duration) -> Option<Instant> {
        if self.is_empty() {
            self.forget_settled();
            return None;
        }
        let OpenCalls {
            last,
            rest,
            fresh,
            soonest,
            ..
        } = self;
        if std::mem::take(&mut self.restarted) {
            fresh.clear();
            fresh.shrink_to(FRESH_KEPT);
            let all = last
                .iter_mut()
                .map(|(_, opened)| opened)
                .chain(rest.values_mut());
            *soonest = all
                .map(|opened| {
                    opened.expires = None;
                    opened.settle(now, frame_timeout)
                })
                .min();
            #[cfg(test)]
            {
                self.visits += self.len();
            }
            return self.soonest;
        }
        for id in fresh.drain(..) {
            let opened = match last {
                Some((last_id, opened)) if *last_id == id => Some(opened),
                _ => rest.get_mut(&id),
            };
            if let Some(opened) = opened {
                *soonest = sooner(*soonest, Some(opened.settle(now, frame_timeout)));
                #[cfg(test)]
                {
                    self.visits += 1;
                }
            }
        }
        fresh.shrink_to(FRESH_KEPT);
        self.soonest
    }

    /// Split messages' pieces arrived since the last look: every waiting call's wait starts
    /// again at the next [`settle`](Self::settle) (its deadline still bounds it). A client
    /// sends one split message at a time, so a request may wait behind other calls' pieces
    /// after its OPEN arrived; it is late only once the connection stops bringing them.
    pub(super) fn restart(&mut self) {
        self.restarted = true;
    }

    /// Removes and returns every call whose wait has ended by `now`.
    pub(super) fn expire(&mut self, now: Instant) -> Vec<(u32, Opened)> {
        let mut expired = Vec::new();
        if self.last.as_ref().is_some_and(|(_, o)| o.expired(now)) {
            expired.extend(self.last.take());
        }
        let ids: Vec<u32> = self
            .rest
            .iter()
            .filter(|(_, o)| o.expired(now))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(opened) = self.rest.remove(&id) {
                expired.push((id, opened));
            }
        }
        self.held -= expired.iter().map(|(_, opened)| opened.cost).sum::<usize>();
        self.departed += expired.len() as u64;
        if self.is_empty() {
            self.forget_settled();
            return expired;
        }
        // The soonest of those left, now exactly (calls not settled yet are the next settle's).
        let last = self.last.iter().map(|(_, opened)| opened);
        self.soonest = last
            .chain(self.rest.values())
            .filter_map(|opened| opened.expires)
            .min();
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME_TIMEOUT: Duration = Duration::from_secs(30);

    fn opened(timeout: Option<Duration>) -> Opened {
        let path =
            MethodPath::try_from_bytes(bytes::Bytes::from_static(b"/svc.S/M")).expect("path");
        Opened::new(path, MetadataMap::new(), timeout, None)
    }

    #[tokio::test(start_paused = true)]
    async fn a_settle_visits_only_the_calls_that_arrived_since_the_last() {
        let mut calls = OpenCalls::default();
        for id in 0..1_000 {
            calls.insert(id, opened(None));
        }
        let first = Instant::now();
        assert_eq!(
            calls.settle(first, FRAME_TIMEOUT),
            Some(first + FRAME_TIMEOUT)
        );
        assert_eq!(calls.visits, 1_000);

        // One more call, a second later, with a deadline sooner than the others' wait: one visit.
        tokio::time::advance(Duration::from_secs(1)).await;
        let later = Instant::now();
        calls.insert(1_000, opened(Some(Duration::from_secs(5))));
        let soonest = calls.settle(later, FRAME_TIMEOUT);
        assert_eq!(soonest, Some(later + Duration::from_secs(5)));
        assert_eq!(calls.visits, 1_001, "only the new call was settled");
        // Nothing new: nothing visited.
        assert_eq!(calls.settle(later, FRAME_TIMEOUT), soonest);
        assert_eq!(calls.visits, 1_001);

        // A restart settles every call again, from now.
        calls.restart();
        tokio::time::advance(Duration::from_secs(1)).await;
        let restarted = Instant::now();
        assert_eq!(
            calls.settle(restarted, FRAME_TIMEOUT),
            Some(later + Duration::from_secs(5)),
            "a deadline still bounds a restarted wait"
        );
        assert_eq!(calls.visits, 2_002);
    }

    #[tokio::test(start_paused = true)]
    async fn the_soonest_expiry_survives_removals_and_expiries() {
        let mut calls = OpenCalls::default();
        let start = Instant::now();
        calls.insert(1, opened(Some(Duration::from_secs(1))));
        calls.insert(2, opened(Some(Duration::from_secs(2))));
        calls.insert(3, opened(Some(Duration::from_secs(3))));
        assert_eq!(
            calls.settle(start, FRAME_TIMEOUT),
            Some(start + Duration::from_secs(1))
        );
        // The soonest call's MESSAGE came: the kept expiry may be early, never late.
        assert!(calls.remove(&1).is_some());
        let kept = calls.settle(start, FRAME_TIMEOUT).expect("calls wait");
        assert!(kept <= start + Duration::from_secs(2));
        // The timer fires there: nothing expired yet, and the soonest is exact again.
        assert!(calls.expire(kept).is_empty());
        assert_eq!(
            calls.settle(kept, FRAME_TIMEOUT),
            Some(start + Duration::from_secs(2))
        );
        let expired = calls.expire(start + Duration::from_secs(2));
        assert_eq!(expired.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [2]);
        assert_eq!(
            calls.settle(start + Duration::from_secs(2), FRAME_TIMEOUT),
            Some(start + Duration::from_secs(3))
        );
        // The last one goes: nothing waits, nothing is kept.
        assert!(calls.remove(&3).is_some());
        assert!(calls.fresh.is_empty());
        assert_eq!(calls.settle(start, FRAME_TIMEOUT), None);
    }

    #[tokio::test(start_paused = true)]
    async fn calls_answered_in_their_read_leave_nothing_to_settle() {
        let mut calls = OpenCalls::default();
        for id in 0..10_000 {
            calls.insert(id, opened(None));
            assert!(calls.remove(&id).is_some());
        }
        assert!(calls.fresh.is_empty(), "no id kept for calls gone");
        assert_eq!(calls.held(), 0);

        // One call waits while thousands come and go in one batch: their ids are kept for
        // that batch only.
        calls.insert(0, opened(None));
        for id in 1..10_000 {
            calls.insert(id, opened(None));
            assert!(calls.remove(&id).is_some());
        }
        assert!(calls.settle(Instant::now(), FRAME_TIMEOUT).is_some());
        assert!(
            calls.fresh.capacity() <= FRESH_KEPT,
            "the batch's room is given back"
        );
    }
}
