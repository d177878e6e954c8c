//! The connections still in their handshake, oldest first: what the accept loop evicts at the
//! connection cap so that stalled handshakes cannot lock real clients out.
//!
//! Every accepted connection holds one of `max_connections` slots, from its accept until it
//! ends. A connection that never finishes its TLS handshake, or never sends its preface, held
//! its slot for the whole handshake timeout; an attacker that kept `max_connections` of them
//! open, reopening each as it timed out, had every real client refused for as long as it
//! liked, from one address, with almost no bandwidth. So when a connection arrives at the cap,
//! the accept loop evicts the oldest connection that is still in its handshake (`listener.rs`,
//! `make_room`) and gives its slot to the newcomer; only when there is none (every slot held by
//! an established connection) is the newcomer refused. An attacker's stalled connections then
//! live `max_connections` / (its connect rate) at most, while a real client's handshake takes
//! milliseconds. Established connections are never evicted for this, nor is a connection
//! younger than [`EVICTABLE_AFTER`]: its client may have sent its preface a moment ago, not yet
//! read (the server's own PREFACE already on its way to it), and evicting it would cut off a
//! client that believes itself connected for the sake of one that is not yet. So to keep real
//! clients out an attacker must open more than `max_connections` connections every
//! [`EVICTABLE_AFTER`] — 100,000 a second at the default cap.
//!
//! ```text
//!  accept ─▶ admit (tail) ─▶ handshake (TLS) ─▶ preface read: established, leaves the set
//!                 at the cap: evict the head ──▶ its task aborted, its slot to the newcomer
//!  a connection that ends before (timeout, refusal, error) leaves the set as it ends
//! ```
//!
//! A connection counts as established once its preface has been read (with TLS, after the
//! handshake: the preface comes inside the session). The set is a list threaded through a slab:
//! admit, leave and evict are O(1), whatever the number of connections; a slot freed is reused,
//! so the slab never holds more entries than connections were at once in their handshake (at
//! most `max_connections`). Each entry is named by its index and a generation, so a connection
//! that leaves after it was evicted (its slot since reused by another) touches nothing. The set
//! is touched at accept, once when a connection is established and once when it ends: an
//! established connection's calls never see it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// No entry: the end of the list.
const NIL: usize = usize::MAX;

/// The youngest a connection may be and still be evicted (see the module docs).
pub(super) const EVICTABLE_AFTER: Duration = Duration::from_millis(100);

/// One connection still in its handshake.
#[derive(Debug)]
struct Waiting {
    /// Its peer, for the log (`None` for a Unix socket).
    peer: Option<SocketAddr>,
    /// When it was accepted.
    since: Instant,
    /// Its task, to end it when evicted (set just after the task is spawned).
    abort: Option<AbortHandle>,
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
}

impl Default for List {
    fn default() -> List {
        List {
            nodes: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            len: 0,
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

/// A connection evicted from the set: its task is ended by [`Evicted::end`].
#[derive(Debug)]
pub(super) struct Evicted {
    /// Its peer (`None` for a Unix socket).
    pub(super) peer: Option<SocketAddr>,
    /// When it was accepted.
    pub(super) since: Instant,
    abort: Option<AbortHandle>,
}

impl Evicted {
    /// Ends the connection's task: its socket closes and its slot is released as the task is
    /// dropped (by the runtime, at once, on whichever thread gets to it).
    pub(super) fn end(self) {
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
        let key = self.lock().push(Waiting {
            peer,
            since: Instant::now(),
            abort: None,
        });
        Ticket {
            set: self.clone(),
            key,
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
    /// than [`EVICTABLE_AFTER`].
    pub(super) fn evict_oldest(&self) -> Option<Evicted> {
        let before = Instant::now().checked_sub(EVICTABLE_AFTER)?;
        let waiting = self.lock().pop_oldest(before)?;
        Some(Evicted {
            peer: waiting.peer,
            since: waiting.since,
            abort: waiting.abort,
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
#[derive(Debug)]
pub(super) struct Ticket {
    set: Handshakes,
    key: Key,
}

impl Ticket {
    /// What names this connection in the set.
    pub(super) fn key(&self) -> Key {
        self.key
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

    fn peer(port: u16) -> Option<SocketAddr> {
        Some(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    fn evicted_port(set: &Handshakes) -> Option<u16> {
        set.evict_oldest()
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
                let _ = set.evict_oldest();
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
        assert!(set.evict_oldest().is_none());
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
        let evicted = set.evict_oldest().expect("one waiting");
        assert_eq!(evicted.peer, peer(2));
        evicted.end();
        assert!(task.await.expect_err("aborted").is_cancelled());
    }
}
