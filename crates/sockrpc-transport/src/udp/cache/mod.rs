//! `ReplyCache`: at-most-once execution for calls that may arrive more than once.
//!
//! A UDP client retransmits with the same `(client_instance, call_id)`, and re-issues a
//! truncated call over TCP with that identity. The server records each call here when it
//! starts, and its full answer when it ends:
//!
//! ```text
//!   REQUEST (instance, id) ──▶ begin ──New──────────▶ run handler ──▶ complete(answer)
//!                                    ├─InProgress──▶ drop (the answer goes out when done)
//!                                    └─Done(answer)─▶ resend it, never run again
//!   TCP re-issue (instance, id) ──▶ wait ──▶ Done(answer) | Missing
//! ```
//!
//! An entry is only ever evicted once it is older than `ttl` (longer than any client keeps
//! retransmitting): evicting a younger one would let a late retransmission run the call a
//! second time, which is exactly what the cache exists to prevent. Memory is bounded all the
//! same: when `max_entries` or `max_bytes` is reached, [`begin`](ReplyCache::begin) refuses new
//! calls (the server drops them; the client retransmits later or falls back to TCP), and an
//! answer too large to keep is replaced by an `ABORTED` status that says so. Calls still running
//! are never evicted either, and are bounded by the server's in-flight limit. Each entry also
//! keeps its method path, so a re-issue naming another method is refused.
//!
//! No source (an IPv4 address, an IPv6 /64) holds more than its share of the entries and bytes
//! (`quota.rs`): one host flooding calls under fresh client instances has its own calls refused
//! once it holds its share, not everyone's. Sources without a valid cookie (perhaps forged)
//! have no share each: together they hold at most a small pool of their own
//! (`max_unverified_entries`, `max_unverified_bytes`), so a flood of forged addresses cannot take
//! what verified clients need.
//!
//! A client that says which calls it is done with (`FLAG_DONE_BELOW`, see `watermark.rs`) gets
//! their answers dropped at once, and its late duplicates refused: with such clients the cache
//! holds about the calls in flight, not `ttl` × the call rate, and never fills.
//!
//! The client instance travels in plain text in every datagram, so it proves nothing. Each entry
//! keeps the IP address of the datagram that made it, and only that address gets its answer:
//! a retransmission from another address is dropped unanswered ([`Begin::OtherSource`]), a TCP
//! re-issue from another peer (or from a Unix socket, which has no address) finds nothing
//! ([`Lookup::Missing`]). An instance whose watermark another address owns takes no new calls
//! from this one ([`Begin::Foreign`]), so no one who learns an instance can take its ids.

mod config;
mod guard;
mod held;
mod paths;
mod quota;
mod reissue;
mod size;
mod source;

pub use config::ReplyCacheConfig;
pub(crate) use guard::CompletionGuard;
pub use held::HeldCall;
use held::{Holding, Locked, HOLD};

use super::watermark::{canonical, serial_before, Foreign, Watermarks};
use paths::{intern, own_path_size};
pub(crate) use quota::Owner;
use quota::Quotas;
use size::{answer_size, owned};
use source::may_fetch;
pub(crate) use source::Source;
// Seeded fast hashing (keys come from clients): a few lookups per call, each a SipHash before.
use bytes::Bytes;
use foldhash::{HashMap, HashSet};
use sockrpc_protocol::{Response, Status};
use std::collections::hash_map::Entry;
use std::net::IpAddr;
use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Instant,
};
use tokio::sync::Notify;

/// The cache's key: the client's random instance and its call id.
type Key = (u64, u32);

/// What the cache knows about a call.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// The call finished; this is its answer, exactly as the handler produced it.
    Done(Result<Response<Bytes>, Status>),
    /// The call is still running.
    InProgress,
    /// Never seen, already evicted, or a method that skips the cache.
    Missing,
    /// The call is known, under another method path than the one asked for.
    OtherMethod,
}

/// What [`ReplyCache::begin`] found.
pub(crate) enum Begin {
    /// First sight: the caller runs the call and must call `complete`.
    New,
    /// Already running.
    InProgress,
    /// Already answered.
    Done(Result<Response<Bytes>, Status>),
    /// The cache is full of answers too young to evict: the call must not run now.
    Full,
    /// The call's source holds its share of the cache (`quota.rs`): it must not run now.
    OverShare,
    /// The call's source is unverified, and unverified sources hold their pool of the cache
    /// (`quota.rs`): it must not run now.
    UnverifiedFull,
    /// The key is known under another method path: not a retransmission of that call.
    OtherMethod,
    /// Below the client's watermark: a late duplicate of a call it is done with.
    Stale,
    /// The key is a call from another IP address: never answered here, never run again.
    OtherSource,
    /// Another IP address owns the client's watermark (`watermark.rs`): the call must not run
    /// under that client's identity from here.
    Foreign,
}

enum Slot {
    Running {
        path: Bytes,
        /// Who started it (its share's key, or the unverified pool: see `quota.rs`).
        owner: Owner,
        /// The address of the datagram that started it: the only one its answer goes to.
        src: IpAddr,
        /// Made by the first TCP re-issue that waits for this call (`reissue.rs`), notified
        /// when the call ends or is forgotten: a re-issue wakes for its own call only.
        ended: Option<Arc<Notify>>,
    },
    Done {
        path: Bytes,
        owner: Owner,
        src: IpAddr,
        answer: Result<Response<Bytes>, Status>,
        size: usize,
        finished: Instant,
        /// Its call, when the answer went out TRUNCATED (`held.rs`), until a re-issue takes it
        /// or its hold ends.
        held: Option<Holding>,
    },
}

impl Slot {
    fn path(&self) -> &Bytes {
        match self {
            Slot::Running { path, .. } | Slot::Done { path, .. } => path,
        }
    }

    fn src(&self) -> IpAddr {
        match self {
            Slot::Running { src, .. } | Slot::Done { src, .. } => *src,
        }
    }
}

/// Wakes the re-issues waiting for a call that ended or was forgotten (its slot's `ended`):
/// called once the cache's lock is released, so that they find the new state at once.
fn wake_waiting(ended: Option<Arc<Notify>>) {
    if let Some(ended) = ended {
        ended.notify_waiters();
    }
}

struct State {
    map: HashMap<Key, Slot>,
    /// Finished calls, oldest first: eviction order for all three bounds. Entries a watermark
    /// removed early stay here until passed over (or compacted away).
    order: VecDeque<(Key, Instant)>,
    /// Finished calls in `map`.
    done: usize,
    bytes: usize,
    marks: Watermarks,
    /// Method paths seen, each an allocation of its own (see [`intern`]).
    paths: HashSet<Bytes>,
    /// The path [`intern`] gave out last.
    last_path: Bytes,
    /// What each source holds, against its share.
    quotas: Quotas,
    /// Held calls of entries removed, dropped once the lock is released ([`Locked`]).
    released: Vec<HeldCall>,
}

/// Clients whose watermark is kept.
const MAX_CLIENTS: usize = 64 * 1024;

impl State {
    /// Removes a finished entry; `None` when `key` is not a finished call (finished at
    /// `finished`, when given).
    fn remove_done(&mut self, key: &Key, finished: Option<Instant>) -> Option<()> {
        // One lookup: the entry found is the one removed.
        let Entry::Occupied(entry) = self.map.entry(*key) else {
            return None;
        };
        match entry.get() {
            Slot::Done {
                size,
                finished: at,
                owner,
                ..
            } if finished.is_none_or(|f| f == *at) => {
                let at = *at;
                self.bytes = self.bytes.saturating_sub(*size);
                self.done -= 1;
                self.quotas.remove(owner, *size);
                if let Slot::Done {
                    held: Some(held), ..
                } = entry.remove()
                {
                    self.released.extend(held.take());
                }
                // Its record in `order` goes too when it is the newest (a client with one call
                // in flight acks the call before): otherwise it waits to be passed over.
                if self.order.back() == Some(&(*key, at)) {
                    self.order.pop_back();
                }
                Some(())
            }
            _ => None,
        }
    }
}

/// Recent answers keyed by `(client_instance, call_id)`; shared (in an `Arc`) by the UDP server
/// and the TCP server, which looks up re-issued calls with [`ReplyCache::wait`].
pub struct ReplyCache {
    config: ReplyCacheConfig,
    state: Mutex<State>,
    /// Methods that skip the cache on the UDP side (may run more than once): a TCP re-issue of
    /// one finds no answer here and runs it again.
    idempotent: HashSet<String>,
}

impl std::fmt::Debug for ReplyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("ReplyCache")
            .field("entries", &state.map.len())
            .field("bytes", &state.bytes)
            .finish()
    }
}

impl Default for ReplyCache {
    fn default() -> ReplyCache {
        ReplyCache::new(ReplyCacheConfig::default())
    }
}

impl ReplyCache {
    /// An empty cache.
    pub fn new(config: ReplyCacheConfig) -> ReplyCache {
        ReplyCache {
            config,
            state: Mutex::new(State {
                map: HashMap::default(),
                order: VecDeque::new(),
                done: 0,
                bytes: 0,
                marks: Watermarks::new(MAX_CLIENTS, config.ttl),
                paths: HashSet::default(),
                last_path: Bytes::new(),
                quotas: Quotas::new(
                    config.max_entries_per_source,
                    config.max_bytes_per_source,
                    (config.max_unverified_entries, config.max_unverified_bytes),
                ),
                released: Vec::new(),
            }),
            idempotent: HashSet::default(),
        }
    }

    /// The same cache, told which methods the UDP server runs without it (its
    /// `UdpServerConfig::idempotent_methods`), so that a re-issue of one runs it again.
    pub fn with_idempotent(mut self, methods: impl IntoIterator<Item = String>) -> ReplyCache {
        self.idempotent.extend(methods);
        self
    }

    /// Whether `path` (`/package.Service/Method`) skips the cache.
    pub fn is_idempotent(&self, path: &str) -> bool {
        self.idempotent.contains(path)
    }

    /// The settings.
    pub fn config(&self) -> &ReplyCacheConfig {
        &self.config
    }

    fn lock(&self) -> Locked<'_> {
        Locked::new(self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Drops finished entries past their time, oldest first; never a younger one.
    fn expire(&self, state: &mut State, now: Instant) {
        // Entries that finished at or before this are past their time (none can be, this
        // early after the clock's origin). One subtraction, then a comparison per entry.
        let Some(cutoff) = now.checked_sub(self.config.ttl) else {
            return;
        };
        while let Some(&(key, finished)) = state.order.front() {
            if finished > cutoff {
                break;
            }
            state.order.pop_front();
            state.remove_done(&key, Some(finished));
        }
    }

    /// Client `instance` is done with every call before `below`: forgets their answers, and
    /// refuses their duplicates from now on. Only for a REQUEST from a verified source, `src`;
    /// nothing happens when another address owns the instance's mark.
    pub(crate) fn ack(&self, src: IpAddr, instance: u64, below: u32) {
        let _ = self.ack_locked(
            &mut self.lock(),
            canonical(src),
            instance,
            below,
            Instant::now(),
        );
    }

    /// [`ack`](Self::ack) under the lock; returns the client's mark after it (see
    /// [`Watermarks::advance_from`]). Sweeps only entries `src` made: a mark's owner and an
    /// entry's source differ only after the mark changed hands, and then the entry stays for
    /// the address that made it, until its ttl.
    fn ack_locked(
        &self,
        state: &mut State,
        src: IpAddr,
        instance: u64,
        below: u32,
        now: Instant,
    ) -> Result<Option<u32>, Foreign> {
        let ((first, count), mark) = state.marks.advance_from(instance, src, below, now)?;
        for i in 0..count {
            let key = (instance, first.wrapping_add(i));
            if state.map.get(&key).is_some_and(|slot| slot.src() == src) {
                state.remove_done(&key, None);
            }
        }
        if state.order.len() > 2 * state.done + 1024 {
            let State { order, map, .. } = state;
            order.retain(|(key, at)| {
                matches!(map.get(key), Some(Slot::Done { finished, .. }) if finished == at)
            });
        }
        Ok(mark)
    }

    /// Records that a call of `path` from `source` starts, unless it is already known (or the
    /// cache, or the source's share of it, is full); first, under the same lock,
    /// [`ack`](Self::ack)s `done_below` when given. An `IpAddr` is a verified source; an
    /// unverified one draws from the pool of unverified sources. A known call answers only
    /// the address that started it ([`Begin::OtherSource`]), and a client whose mark another
    /// address owns starts no call from this one ([`Begin::Foreign`]).
    pub(crate) fn begin(
        &self,
        source: impl Into<Source>,
        instance: u64,
        call_id: u32,
        path: &[u8],
        done_below: Option<u32>,
    ) -> Begin {
        let now = Instant::now();
        let source = source.into();
        let src = source.ip;
        let mut state = self.lock();
        // The mark the ack leaves is the one to compare with: no second lookup.
        let stale = match done_below {
            Some(below) => self
                .ack_locked(&mut state, src, instance, below, now)
                .map(|mark| mark.is_some_and(|mark| serial_before(call_id, mark))),
            None => state.marks.is_stale_from(instance, src, call_id, now),
        };
        self.expire(&mut state, now);
        if stale == Ok(true) {
            return Begin::Stale;
        }
        let foreign = stale.is_err();
        let owner = Quotas::owner(Owner::of(src, source.verified));
        let full = state.done >= self.config.max_entries || state.bytes >= self.config.max_bytes;
        let State {
            map,
            paths,
            last_path,
            quotas,
            ..
        } = &mut *state;
        // One lookup: the entry found is the one filled.
        match map.entry((instance, call_id)) {
            // Checked first: another address's call is not even told apart by method.
            Entry::Occupied(slot) if slot.get().src() != src => Begin::OtherSource,
            Entry::Occupied(slot) if slot.get().path().as_ref() != path => Begin::OtherMethod,
            Entry::Occupied(slot) => match slot.get() {
                Slot::Running { .. } => Begin::InProgress,
                Slot::Done { answer, .. } => Begin::Done(answer.clone()),
            },
            Entry::Vacant(_) if foreign => Begin::Foreign,
            Entry::Vacant(_) if full => Begin::Full,
            // The share is counted in the same lookup that checks it.
            Entry::Vacant(_) if !quotas.admit(owner) => match owner {
                Owner::Verified(_) => Begin::OverShare,
                Owner::Unverified => Begin::UnverifiedFull,
            },
            Entry::Vacant(slot) => {
                slot.insert(Slot::Running {
                    path: intern(paths, last_path, path),
                    owner,
                    src,
                    ended: None,
                });
                Begin::New
            }
        }
    }

    /// Forgets a call recorded by `begin` that was not run after all (server overloaded), so a
    /// retransmission may run it later.
    pub(crate) fn abandon(&self, instance: u64, call_id: u32) {
        let mut state = self.lock();
        let key = (instance, call_id);
        if let Some(Slot::Running { .. }) = state.map.get(&key) {
            if let Some(Slot::Running { owner, ended, .. }) = state.map.remove(&key) {
                state.quotas.remove(&owner, 0);
                drop(state);
                // A re-issue waiting for it finds nothing now, rather than waiting on.
                wake_waiting(ended);
            }
        }
    }

    /// Stores a call's answer and wakes whoever waits for it.
    pub(crate) fn complete(
        &self,
        instance: u64,
        call_id: u32,
        answer: Result<Response<Bytes>, Status>,
    ) {
        self.complete_holding(instance, call_id, answer, None);
    }

    /// [`complete`](Self::complete), the answer kept with its call, `held`, when it went out
    /// TRUNCATED (`held.rs`): the re-issue that takes the answer takes the call too.
    pub(crate) fn complete_holding(
        &self,
        instance: u64,
        call_id: u32,
        answer: Result<Response<Bytes>, Status>,
        held: Option<HeldCall>,
    ) {
        let now = Instant::now();
        let mut size = answer_size(&answer);
        // Started out of the lock; let go after it when the entry does not keep it.
        let mut held = held.and_then(|call| Holding::start(call, HOLD.min(self.config.ttl)).ok());
        let mut aborted = false;
        // The re-issues waiting for this call, if any, woken once its answer is in place.
        let ended;
        {
            let mut state = self.lock();
            let key = (instance, call_id);
            let stale = state.marks.is_stale(instance, call_id);
            let State {
                map,
                quotas,
                bytes,
                paths,
                ..
            } = &mut *state;
            let Some(slot) = map.get_mut(&key) else {
                drop(state);
                drop(held.as_ref().and_then(Holding::take));
                return;
            };
            let Slot::Running {
                path,
                owner,
                src,
                ended: waiting,
            } = slot
            else {
                drop(state);
                drop(held.as_ref().and_then(Holding::take));
                return;
            };
            let (owner, src) = (*owner, *src);
            ended = waiting.take();
            // A path of its own (not one of the shared copies) is memory this entry holds.
            let path_size = own_path_size(paths, path);
            size += path_size;
            if stale {
                // The client gave up on it meanwhile: nobody will ask for this answer.
                map.remove(&key);
                quotas.remove(&owner, 0);
                drop(state);
                drop(held.as_ref().and_then(Holding::take));
                wake_waiting(ended);
                return;
            }
            let too_large = *bytes + size > self.config.max_bytes;
            let answer = if too_large {
                // Keeping it would break the memory bound; forgetting it would let a
                // retransmission run the call again. Keep a short answer that says so.
                let status = Status::aborted(
                    "the call ran, but its answer was too large to keep for a retransmission",
                );
                let answer = Err(status);
                size = answer_size(&answer) + path_size;
                // Its call ends now, as the re-issue will (`ABORTED`), after the unlock:
                // nothing is left to wait for, and the answer it would keep is not counted.
                aborted = true;
                answer
            } else {
                owned(answer)
            };
            // In place: one lookup, no second hash of the key.
            *slot = Slot::Done {
                path: std::mem::take(path),
                owner,
                src,
                answer,
                size,
                finished: now,
                held: if aborted { None } else { held.take() },
            };
            quotas.add_bytes(&owner, size);
            state.order.push_back((key, now));
            state.done += 1;
            state.bytes += size;
            self.expire(&mut state, now);
        }
        if let Some(call) = held.as_ref().and_then(Holding::take) {
            call.drop_as(sockrpc_protocol::Code::Aborted);
        }
        wake_waiting(ended);
    }

    /// Finished entries held.
    pub fn len(&self) -> usize {
        self.lock().done
    }

    /// Whether no finished entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of answers held (by the cache's accounting).
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod address_tests;
#[cfg(test)]
mod reissue_tests;
#[cfg(test)]
mod tests;
