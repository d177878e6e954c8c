//! The connections still in their handshake, oldest first: what the accept loop evicts at the
//! connection cap so that stalled handshakes cannot lock real clients out.
//!
//! Every accepted connection holds one of `max_connections` slots, from its accept until it
//! ends. A connection that never finishes its TLS handshake, or never sends its preface, held
//! its slot for the whole handshake timeout; an attacker that kept `max_connections` of them
//! open, reopening each as it timed out, had every real client refused for as long as it
//! liked, from one address, with almost no bandwidth. So when a connection arrives at the cap,
//! the accept loop evicts the oldest connection that is still in its handshake (`evict.rs`,
//! `make_room`) and gives its slot to the newcomer; only when there is none (every slot held by
//! an established connection) is the newcomer refused. An attacker's stalled connections then
//! live `max_connections` / (its connect rate) at most, while a real client's handshake takes
//! milliseconds. Established connections are never evicted for this, nor is a connection
//! younger than [`EVICTABLE_AFTER`]: its client may have sent its preface a moment ago, not yet
//! read (the server's own PREFACE already on its way to it), and evicting it would cut off a
//! client that believes itself connected for the sake of one that is not yet. So to keep real
//! clients out an attacker must open more than `max_connections` connections every floor:
//! [`EVICTABLE_AFTER`] at first (100,000 a second at the default cap), 1.6 s at most once it
//! has raised the floor (below). An evicted connection whose PREFACE went out is told with a
//! GOAWAY (last call id 0) before it closes (`evict.rs`).
//!
//! The floor grows under pressure. On a loaded server real handshakes may take longer than
//! 100 ms; with a fixed floor each newcomer would evict one of them before it finished, and at
//! a steady arrival rate none ever would (refusal at least told clients to back off). So the
//! floor doubles each time a cap's worth of connections has been evicted with none established
//! in between, up to 1.6 s ([`MAX_LEVEL`]), and halves with each connection established:
//! evictions that finish nothing raise it until handshakes outlive it, the first that completes
//! lowers it again, and it settles around what handshakes take. Chosen over a budget of
//! evictions per time window because an attacker can spend a budget with its own connections
//! (and lock clients out again for the rest of the window), while the floor it can raise is
//! bounded: at worst it must open `max_connections` connections every 1.6 s (6,250 a second at
//! the default cap, against the cap per handshake timeout without eviction), and each real
//! client that gets in brings the floor back down. Handshakes slower than 1.6 s at the cap can
//! still be evicted; newcomers past the evictable ones are refused with a GOAWAY, as before.
//!
//! ```text
//!  accept ─▶ admit (tail) ─▶ handshake (TLS) ─▶ preface read: established, leaves the set
//!                 at the cap: evict the head ──▶ its task told (aborted after 100 ms), its
//!                                                 slot to the newcomer
//!  a connection that ends before (timeout, refusal, error) leaves the set as it ends
//! ```
//!
//! A connection counts as established once its preface has been read (with TLS, after the
//! handshake: the preface comes inside the session), whether frames follow it in the same read
//! or not: both ways go through [`Ticket::establish`], which lowers the floor. The set is a list threaded through a slab:
//! admit, leave and evict are O(1), whatever the number of connections; a slot freed is reused,
//! so the slab never holds more entries than connections were at once in their handshake (at
//! most `max_connections`). Each entry is named by its index and a generation, so a connection
//! that leaves after it was evicted (its slot since reused by another) touches nothing. The set
//! is touched at accept, once when a connection is established and once when it ends: an
//! established connection's calls never see it. A connection evicted just as its preface was
//! read learns it from [`Ticket::establish`], under the same lock, and closes before its first
//! frame can start a call.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Context;
use std::time::Duration;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// No entry: the end of the list.
const NIL: usize = usize::MAX;

/// The youngest a connection may be and still be evicted while no livelock threatens (see the
/// module docs).
pub(super) const EVICTABLE_AFTER: Duration = Duration::from_millis(100);

/// How many times the floor may double: at most `EVICTABLE_AFTER << MAX_LEVEL` (1.6 s).
const MAX_LEVEL: u32 = 4;

/// One connection still in its handshake.
#[derive(Debug)]
struct Waiting {
    /// Its peer, for the log (`None` for a Unix socket).
    peer: Option<SocketAddr>,
    /// When it was accepted.
    since: Instant,
    /// Its task, to end it when evicted (set just after the task is spawned).
    abort: Option<AbortHandle>,
    /// Cancelled when it is evicted: its task then says why and closes (`conn.rs`).
    evict: CancellationToken,
}

/// A slot of the slab: a waiting connection, or free.
#[derive(Debug)]
struct Node {
    /// Bumped each time the slot is freed: a [`Key`] of an earlier occupant no longer matches.
    generation: u64,
    prev: usize,
    next: usize,
    waiting: Option<Waiting>,
}

/// The list, oldest at `head`.
#[derive(Debug)]
struct List {
    nodes: Vec<Node>,
    /// Indices of free nodes.
    free: Vec<usize>,
    head: usize,
    tail: usize,
    len: usize,
    /// How many times the floor has doubled (≤ [`MAX_LEVEL`]).
    level: u32,
    /// Evictions since the floor last moved, or since a connection was last established.
    evictions: usize,
}

impl Default for List {
    fn default() -> List {
        List {
            nodes: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            len: 0,
            level: 0,
            evictions: 0,
        }
    }
}

impl List {
    /// Appends `waiting` at the tail (the youngest).
    fn push(&mut self, waiting: Waiting) -> Key {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.nodes.push(Node {
                    generation: 0,
                    prev: NIL,
                    next: NIL,
                    waiting: None,
                });
                self.nodes.len() - 1
            }
        };
        let tail = self.tail;
        let node = &mut self.nodes[index];
        node.prev = tail;
        node.next = NIL;
        node.waiting = Some(waiting);
        let generation = node.generation;
        match tail {
            NIL => self.head = index,
            tail => self.nodes[tail].next = index,
        }
        self.tail = index;
        self.len += 1;
        Key { index, generation }
    }

    /// The node `key` names, if it still holds the connection it was given to.
    fn get_mut(&mut self, key: Key) -> Option<&mut Waiting> {
        let node = self.nodes.get_mut(key.index)?;
        if node.generation != key.generation {
            return None;
        }
        node.waiting.as_mut()
    }

    /// Unlinks the node at `index` (which holds a connection) and frees it.
    fn unlink(&mut self, index: usize) -> Option<Waiting> {
        let node = &mut self.nodes[index];
        let waiting = node.waiting.take()?;
        let (prev, next) = (node.prev, node.next);
        node.generation = node.generation.wrapping_add(1);
        node.prev = NIL;
        node.next = NIL;
        match prev {
            NIL => self.head = next,
            prev => self.nodes[prev].next = next,
        }
        match next {
            NIL => self.tail = prev,
            next => self.nodes[next].prev = prev,
        }
        self.free.push(index);
        self.len -= 1;
        Some(waiting)
    }

    /// Removes the connection `key` names, if it is still here.
    fn remove(&mut self, key: Key) -> Option<Waiting> {
        self.get_mut(key)?;
        self.unlink(key.index)
    }

    /// Removes the oldest connection, if it was accepted at `before` or earlier.
    fn pop_oldest(&mut self, before: Instant) -> Option<Waiting> {
        let head = self.head;
        let since = self.nodes.get(head)?.waiting.as_ref()?.since;
        if since > before {
            return None;
        }
        self.unlink(head)
    }

    /// The youngest a connection may be and still be evicted, now.
    fn floor(&self) -> Duration {
        EVICTABLE_AFTER * (1 << self.level)
    }

    /// Counts one eviction: a cap's worth (`cap`) with no connection established in between
    /// doubles the floor.
    fn evicted(&mut self, cap: usize) {
        self.evictions += 1;
        if self.evictions >= cap.max(1) && self.level < MAX_LEVEL {
            self.level += 1;
            self.evictions = 0;
        }
    }

    /// Counts one connection established: handshakes complete at this floor, so it halves.
    fn established(&mut self) {
        self.level = self.level.saturating_sub(1);
        self.evictions = 0;
    }
}

/// Names one connection in the set: its node and the node's generation then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Key {
    index: usize,
    generation: u64,
}

/// The connections of one server still in their handshake (see the module docs). Clones share
/// the set.
#[derive(Debug, Clone, Default)]
pub(super) struct Handshakes {
    list: Arc<Mutex<List>>,
}

/// A connection evicted from the set: told to go by [`Evicted::tell`], its task ended by
/// [`Evicted::end`] if it does not.
#[derive(Debug)]
pub(super) struct Evicted {
    /// Its peer (`None` for a Unix socket).
    pub(super) peer: Option<SocketAddr>,
    /// When it was accepted.
    pub(super) since: Instant,
    abort: Option<AbortHandle>,
    evict: CancellationToken,
}

impl Evicted {
    /// Tells the connection's task it was evicted: it sends its client a GOAWAY if its
    /// PREFACE went out (best effort, without waiting on the client), closes, and releases its
    /// slot as it ends (`conn.rs`); one still in its TLS handshake just closes.
    pub(super) fn tell(&self) {
        self.evict.cancel();
    }

    /// Ends the connection's task outright: its socket closes and its slot is released as the
    /// task is dropped (by the runtime, at once, on whichever thread gets to it).
    pub(super) fn end(self) {
        self.evict.cancel();
        if let Some(abort) = self.abort {
            abort.abort();
        }
    }
}

impl Handshakes {
    fn lock(&self) -> MutexGuard<'_, List> {
        self.list
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Adds a connection just accepted, as the youngest. It stays until its [`Ticket`] is
    /// dropped (established, or ended) or it is evicted.
    pub(super) fn admit(&self, peer: Option<SocketAddr>) -> Ticket {
        let evict = CancellationToken::new();
        let key = self.lock().push(Waiting {
            peer,
            since: Instant::now(),
            abort: None,
            evict: evict.clone(),
        });
        Ticket {
            set: self.clone(),
            key,
            evicted: Box::pin(evict.clone().cancelled_owned()),
            evict,
        }
    }

    /// Gives the connection `key` names the handle that ends its task. A connection already
    /// gone (its task ran and ended first) is left alone.
    pub(super) fn arm(&self, key: Key, abort: AbortHandle) {
        if let Some(waiting) = self.lock().get_mut(key) {
            waiting.abort = Some(abort);
        }
    }

    /// Takes the oldest connection still in its handshake out of the set, for the caller to
    /// end; `None` when every connection is established, or the oldest that is not is younger
    /// than the floor ([`EVICTABLE_AFTER`], doubled for each `cap`'s worth of evictions with
    /// no connection established in between: the module docs say why).
    pub(super) fn evict_oldest(&self, cap: usize) -> Option<Evicted> {
        let mut list = self.lock();
        let before = Instant::now().checked_sub(list.floor())?;
        let waiting = list.pop_oldest(before)?;
        list.evicted(cap);
        Some(Evicted {
            peer: waiting.peer,
            since: waiting.since,
            abort: waiting.abort,
            evict: waiting.evict,
        })
    }

    /// Connections in the set now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len
    }
}

/// A connection's place in [`Handshakes`], held by its task while it is in its handshake:
/// dropped once it is established (its preface read) or as the task ends, it leaves the set.
pub(super) struct Ticket {
    set: Handshakes,
    key: Key,
    evict: CancellationToken,
    /// Ready once the connection is evicted (polled by its task while it waits for the preface).
    evicted: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket").field("key", &self.key).finish()
    }
}

impl Ticket {
    /// What names this connection in the set.
    pub(super) fn key(&self) -> Key {
        self.key
    }

    /// Whether the accept loop evicted this connection; registers `cx` to be woken when it does.
    pub(super) fn poll_evicted(&mut self, cx: &mut Context<'_>) -> bool {
        self.evict.is_cancelled() || self.evicted.as_mut().poll(cx).is_ready()
    }

    /// A token cancelled when this connection is evicted (a TLS handshake watches it).
    #[cfg(feature = "tls")]
    pub(super) fn evict_token(&self) -> CancellationToken {
        self.evict.clone()
    }

    /// The connection is established (its preface read): it leaves the set, and counts as a
    /// handshake completed at the current floor. `false` when it was evicted first (under the
    /// set's lock, so never both): its task must close it rather than start a call. Called
    /// whichever way the preface came (alone, or with frames after it: `deadlines.rs`,
    /// `conn.rs`); dropping the ticket instead would count no establishment, and the floor
    /// raised by an attacker would stay up for clients whose preface comes alone.
    pub(super) fn establish(&self) -> bool {
        let mut list = self.set.lock();
        let stayed = list.remove(self.key).is_some();
        if stayed {
            list.established();
        }
        stayed
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.set.lock().remove(self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cap no test here reaches: the floor stays at [`EVICTABLE_AFTER`].
    const NO_CAP: usize = usize::MAX;

    fn peer(port: u16) -> Option<SocketAddr> {
        Some(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    fn evicted_port(set: &Handshakes) -> Option<u16> {
        set.evict_oldest(NO_CAP)
            .map(|evicted| evicted.peer.map_or(0, |p| p.port()))
    }

    #[tokio::test(start_paused = true)]
    async fn evicts_oldest_first_and_skips_those_that_left() {
        let set = Handshakes::default();
        let tickets: Vec<Ticket> = (1..=5).map(|port| set.admit(peer(port))).collect();
        assert_eq!(set.len(), 5);
        tokio::time::advance(EVICTABLE_AFTER).await;
        let mut tickets = tickets.into_iter();
        let first = tickets.next();
        let second = tickets.next();
        let third = tickets.next();
        // The second is established (or ended): it leaves, from the middle of the list.
        drop(second);
        assert_eq!(evicted_port(&set), Some(1));
        assert_eq!(evicted_port(&set), Some(3));
        // The evicted ones' tickets drop later (their tasks aborted): nothing else leaves.
        drop((first, third));
        assert_eq!(set.len(), 2);
        assert_eq!(evicted_port(&set), Some(4));
        assert_eq!(evicted_port(&set), Some(5));
        assert_eq!(evicted_port(&set), None);
        drop(tickets);
        assert_eq!(set.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stale_ticket_does_not_remove_the_next_occupant_of_its_node() {
        let set = Handshakes::default();
        let old = set.admit(peer(1));
        tokio::time::advance(EVICTABLE_AFTER).await;
        assert_eq!(evicted_port(&set), Some(1));
        // The node is reused by a newcomer while the evicted ticket is still alive.
        let young = set.admit(peer(2));
        assert_eq!(young.key().index, old.key().index);
        drop(old);
        assert_eq!(set.len(), 1);
        tokio::time::advance(EVICTABLE_AFTER).await;
        assert_eq!(evicted_port(&set), Some(2));
        drop(young);
        assert_eq!(set.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_slab_holds_no_more_nodes_than_connections_waiting_at_once() {
        let set = Handshakes::default();
        for round in 0..1000u16 {
            let a = set.admit(peer(round));
            let b = set.admit(peer(round));
            tokio::time::advance(EVICTABLE_AFTER).await;
            if round % 2 == 0 {
                drop(a);
                drop(b);
            } else {
                let _ = set.evict_oldest(NO_CAP);
                drop(b);
                drop(a);
            }
        }
        assert_eq!(set.len(), 0);
        assert_eq!(set.lock().nodes.len(), 2);
        let (head, tail) = {
            let list = set.lock();
            (list.head, list.tail)
        };
        assert_eq!((head, tail), (NIL, NIL));
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_younger_than_the_floor_is_not_evicted() {
        let set = Handshakes::default();
        let _waiting = set.admit(peer(1));
        tokio::time::advance(EVICTABLE_AFTER - Duration::from_millis(1)).await;
        assert!(set.evict_oldest(NO_CAP).is_none());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(evicted_port(&set), Some(1));
    }

    #[tokio::test(start_paused = true)]
    async fn arming_a_connection_already_gone_is_harmless_and_eviction_aborts_the_task() {
        let set = Handshakes::default();
        let gone = set.admit(peer(1));
        let key = gone.key();
        drop(gone);
        let task = tokio::spawn(std::future::pending::<()>());
        set.arm(key, task.abort_handle());
        assert_eq!(set.len(), 0);

        let waiting = set.admit(peer(2));
        set.arm(waiting.key(), task.abort_handle());
        tokio::time::advance(EVICTABLE_AFTER).await;
        let evicted = set.evict_oldest(NO_CAP).expect("one waiting");
        assert_eq!(evicted.peer, peer(2));
        evicted.end();
        assert!(task.await.expect_err("aborted").is_cancelled());
    }

    #[tokio::test(start_paused = true)]
    async fn the_floor_doubles_per_caps_worth_of_evictions_and_halves_per_establishment() {
        const CAP: usize = 2;
        let set = Handshakes::default();
        let mut floors = Vec::new();
        let mut held = Vec::new();
        // Every connection evicted as soon as it may be, none established: the floor doubles
        // every two evictions, up to 1.6 s.
        for port in 0..12 {
            held.push(set.admit(peer(port)));
            let admitted = Instant::now();
            let evicted = loop {
                if let Some(evicted) = set.evict_oldest(CAP) {
                    break evicted;
                }
                tokio::time::advance(Duration::from_millis(10)).await;
            };
            floors.push(evicted.since.elapsed().as_millis());
            assert_eq!(evicted.since, admitted);
        }
        assert_eq!(
            floors,
            [100, 100, 200, 200, 400, 400, 800, 800, 1600, 1600, 1600, 1600]
        );
        // A connection established halves it.
        let done = set.admit(peer(100));
        assert!(done.establish());
        let slow = set.admit(peer(101));
        tokio::time::advance(Duration::from_millis(799)).await;
        assert!(set.evict_oldest(CAP).is_none());
        tokio::time::advance(Duration::from_millis(1)).await;
        let evicted = set.evict_oldest(CAP).expect("800 ms old");
        assert_eq!(evicted.peer, peer(101));
        // Evicted first: its own establishment is refused, and counts for nothing.
        assert!(!slow.establish());
        assert_eq!(set.lock().level, 3);
    }
}
