//! Calls opened and waiting for their request message.
//!
//! A unary call's OPEN and MESSAGE nearly always arrive in the same read, back to back, so the
//! most recent OPEN is kept aside and a MESSAGE that follows it never touches the map. An OPEN
//! whose MESSAGE does not come is not held forever: each waits at most until its deadline or
//! the connection's frame timeout, whichever is sooner, and is then answered and forgotten.
//! The frame timeout counts from the later of the OPEN's arrival and the last piece of a split
//! message that arrived: a client sends one split message at a time, so a request may wait
//! behind other calls' pieces ([`OpenCalls::pieces_arrived`]). Nor does it count while the
//! server itself does not read (its write buffer full, its streams over budget: `conn.rs`),
//! when the MESSAGE may be sitting unread in the socket, or unsent behind it: a pause moves
//! the instant it counts from to when reading resumes ([`OpenCalls::excuse`]).
//!
//! What the waiting calls hold is counted ([`OpenCalls::held`]): the call cap bounds how many
//! wait, but not what each holds — a path of up to 64 KiB and a 16 KiB metadata block that may
//! be 4,000 tiny entries, each far larger parsed than on the wire — so a connection refuses
//! new unary OPENs while its waiting calls hold more than [`PENDING_OPEN_BUDGET`].
//!
//! Nothing here walks every waiting call, whatever arrives: with thousands waiting, a client
//! sending one tiny frame per read made the server walk all of them each time, first for each
//! OPEN, then (pieces restarting every call's wait) for each piece of a split message. After a
//! read batch only the calls that arrived in it are settled (their arrival noted, their path
//! and metadata copied out). A call's wait ends at the sooner of its deadline and
//! `max(its arrival, the last piece or pause) + frame timeout`, so for the set the frame
//! timeout's part is the oldest arrival's, pushed on by the last piece or pause: either moves
//! one instant kept for the connection and no call. Settled calls are queued by arrival (which
//! only goes forward) and, those with a deadline, in a heap by it; an entry of a call gone
//! since stays until it reaches the front (or the queues grow past twice the calls waiting,
//! and are compacted), so each costs O(1) amortised, a deadline O(log n), and the soonest
//! expiry is exact after each settle. [`OpenCalls::expire`] takes the expired calls from the
//! fronts, never the rest.

use crate::timer::deadline_after;
use foldhash::HashMap;
use sockrpc_protocol::{frame, EncodingFields, MetadataMap, MethodPath, PathCache};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;
use tokio::time::Instant;

/// What the unary calls waiting for their request message on one connection may hold (as
/// counted by [`Opened::cost`]) before it refuses more (`RESOURCE_EXHAUSTED`). A client whose
/// request MESSAGE follows its OPEN has at most a few waiting at a time.
pub(super) const PENDING_OPEN_BUDGET: usize = 16 * 1024 * 1024;

/// What a waiting call counts beside its path and metadata bytes: the call itself.
const OPEN_COST: usize = 256;

/// The room [`OpenCalls`] keeps for the ids of calls to settle, and for its queues beyond what
/// the calls waiting need: a client that opens and cancels calls by the thousand in one batch
/// makes them grow for that batch, not for good.
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
    /// When the read batch that brought the OPEN ended; set once the call is still waiting
    /// then (most never are: their MESSAGE arrives in the same read). It names the call's
    /// entries in [`OpenCalls`]' queues: one with another instant is a call gone since.
    arrival: Option<Instant>,
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
            arrival: None,
            unshared: false,
            cost: 0,
        }
    }

    /// What this call holds while it waits (or, a streaming call, while it runs): its metadata
    /// as parsed (`frame::metadata_held`, the same count a unary call's request is charged
    /// while its handler runs, `call.rs`), far more than on the wire for tiny entries.
    pub(super) fn cost(&self) -> usize {
        OPEN_COST + self.path.as_bytes().len() + frame::metadata_held(&self.metadata)
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
}

/// What a call's OPEN allowed its answer, kept until the answer is written (`respond.rs`,
/// `pump.rs`): the transport, not the handler, holds the answer to it, so that no handler or
/// layer (`Status::set_encoding` and `Response::set_encoding` are public) can send a client
/// what it did not ask for.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Allowed {
    /// The OPEN's `FLAG_FOLD_END`: an OK answer may fold its END into its MESSAGE.
    pub(super) fold_end: bool,
    /// The OPEN carried encoding fields (`FLAG_ENCODING`): the answer's HEADERS and an error's
    /// END may carry the server's, and its messages may go compressed. Toward a client whose
    /// OPEN carried none (one of an earlier version among them, which would misread either),
    /// a handler's fields are dropped and a compressed message is refused (`docs/COMPRESSION.md`).
    pub(super) encoding: bool,
}

impl Allowed {
    /// What `opened` allows its answer.
    pub(super) fn of(opened: &Opened) -> Allowed {
        Allowed {
            fold_end: opened.fold_end,
            encoding: opened.encoding.is_some(),
        }
    }

    /// The encoding fields a handler set on its answer, as they may go out: dropped unless the
    /// OPEN carried its own (one branch; the status or response is left as it is).
    pub(super) fn fields(self, fields: Option<EncodingFields>) -> Option<EncodingFields> {
        if self.encoding {
            fields
        } else {
            None
        }
    }
}

/// What a call ends with instead of an answer message flagged compressed toward a client whose
/// OPEN named no encoding: it could not read it (a client of an earlier version would read it
/// as plain), and the compressed bytes cannot be sent otherwise.
pub(super) fn compressed_unasked() -> sockrpc_protocol::Status {
    sockrpc_protocol::Status::internal(
        "the answer's message is compressed, but the client's call named no encoding: not sent",
    )
}

/// What a call ends with instead of a compressed answer message toward a client that may read
/// one (its OPEN carried fields) when the answer names no encoding it is sent with: the client
/// could not read it (it would fail it `INTERNAL`), and the bytes cannot go otherwise. `fields`:
/// the answer's, as they go out (toward a client that named none, [`compressed_unasked`]).
pub(super) fn compressed_unnamed(
    allowed: Allowed,
    fields: Option<EncodingFields>,
) -> Option<sockrpc_protocol::Status> {
    if !allowed.encoding {
        return Some(compressed_unasked());
    }
    if fields.is_some_and(|fields| fields.send != 0) {
        return None;
    }
    Some(sockrpc_protocol::Status::internal(
        "the answer's message is compressed, but the answer names no encoding it is sent \
         with: not sent",
    ))
}

/// The sooner of two expiries, either of which may be unknown.
fn sooner(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The waiting calls, looked up by id: the last one opened, or the others.
struct Waiting<'a> {
    last: &'a Option<(u32, Opened)>,
    rest: &'a HashMap<u32, Opened>,
}

impl Waiting<'_> {
    fn get(&self, id: u32) -> Option<&Opened> {
        match self.last {
            Some((last, opened)) if *last == id => Some(opened),
            _ => self.rest.get(&id),
        }
    }

    /// The arrival queue's entry `(at, id)` is the waiting call's own.
    fn arrived(&self, (at, id): (Instant, u32)) -> bool {
        self.get(id)
            .is_some_and(|opened| opened.arrival == Some(at))
    }

    /// The deadline heap's entry `(at, id)` is the waiting call's own (or, an id used again,
    /// another's with the same deadline, which ends that one as rightly).
    fn due(&self, (at, id): (Instant, u32)) -> bool {
        self.get(id)
            .is_some_and(|opened| opened.deadline == Some(at))
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
    /// The settled calls by arrival, oldest first, with entries of calls gone since (see the
    /// module docs): the front's is the frame timeout's part of the soonest expiry.
    arrivals: VecDeque<(Instant, u32)>,
    /// The settled calls with a deadline, soonest first, with entries of calls gone since.
    deadlines: BinaryHeap<Reverse<(Instant, u32)>>,
    /// `arrivals` or `deadlines` may hold entries, or `waits_from` an instant: what
    /// [`forget_settled`](Self::forget_settled) has to clear beyond `fresh`.
    settled: bool,
    /// Split messages' pieces arrived since the last settle ([`pieces_arrived`]).
    ///
    /// [`pieces_arrived`]: Self::pieces_arrived
    pieces: bool,
    /// When the last piece arrived (as the settle after its read batch read the clock), or the
    /// connection last did not read ([`excuse`](Self::excuse)), whichever is later: no call's
    /// wait for the frame timeout ends sooner than a frame timeout after it.
    waits_from: Option<Instant>,
    /// Calls that stopped waiting (removed or expired), for the idle timer's look at the
    /// connection's activity.
    departed: u64,
    /// Calls and queue entries looked at by settle and expire, for the tests: each a fixed
    /// number of times, however many wait.
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
        let removed = self.take(*id);
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

    /// Takes the call out, with no accounting.
    fn take(&mut self, id: u32) -> Option<Opened> {
        match &self.last {
            Some((last, _)) if *last == id => self.last.take().map(|(_, opened)| opened),
            _ => self.rest.remove(&id),
        }
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
        if self.settled {
            self.arrivals.clear();
            self.arrivals.shrink_to(FRESH_KEPT);
            self.deadlines.clear();
            self.deadlines.shrink_to(FRESH_KEPT);
            self.waits_from = None;
            self.pieces = false;
            self.settled = false;
        }
    }

    /// Called after each read batch: the calls still waiting will be held across reads (their
    /// path and metadata copied out of the read buffer, their arrival noted). Settles those
    /// inserted since the last call, notes a piece that arrived, and returns the soonest
    /// expiry (`None`: none waits), exactly.
    pub(super) fn settle(&mut self, now: Instant, frame_timeout: Duration) -> Option<Instant> {
        if self.is_empty() {
            self.forget_settled();
            return None;
        }
        self.settled = true;
        if std::mem::take(&mut self.pieces) {
            self.excuse(now);
        }
        let OpenCalls {
            last,
            rest,
            fresh,
            arrivals,
            deadlines,
            ..
        } = self;
        for id in fresh.drain(..) {
            let opened = match last {
                Some((last_id, opened)) if *last_id == id => Some(opened),
                _ => rest.get_mut(&id),
            };
            // Inserted twice in the batch (its id used again): settled once.
            let Some(opened) = opened.filter(|opened| opened.arrival.is_none()) else {
                continue;
            };
            opened.unshare();
            opened.arrival = Some(now);
            arrivals.push_back((now, id));
            if let Some(deadline) = opened.deadline {
                deadlines.push(Reverse((deadline, id)));
            }
            #[cfg(test)]
            {
                self.visits += 1;
            }
        }
        fresh.shrink_to(FRESH_KEPT);
        self.compact();
        self.soonest(frame_timeout)
    }

    /// Split messages' pieces arrived in the read batch just taken: the calls waiting for their
    /// request message wait a frame timeout from now at least (from the next
    /// [`settle`](Self::settle); their deadlines still bound them). A client sends one split
    /// message at a time, so a request may wait behind other calls' pieces after its OPEN
    /// arrived; it is late only once the connection stops bringing them.
    pub(super) fn pieces_arrived(&mut self) {
        self.pieces = true;
    }

    /// The connection did not read its socket until `now` (its write buffer past the high-water
    /// mark, its streams over budget, cancelled handlers in the way; or it reads again after
    /// such a pause): the calls waiting for their request message wait a frame timeout from
    /// `now` at least, for the MESSAGE may have been sitting unread, or unsent behind what the
    /// server did not read. Their deadlines still bound them. O(1); the caller recomputes the
    /// soonest expiry ([`settle`](Self::settle)).
    pub(super) fn excuse(&mut self, now: Instant) {
        if !self.is_empty() {
            self.settled = true;
            self.waits_from = Some(self.waits_from.map_or(now, |from| from.max(now)));
        }
    }

    /// Drops the entries of calls gone since from queues grown past twice the calls waiting
    /// (and some room): each entry so dropped was pushed once, so this costs O(1) a push.
    fn compact(&mut self) {
        let most = 2 * self.len() + FRESH_KEPT;
        let waiting = Waiting {
            last: &self.last,
            rest: &self.rest,
        };
        if self.arrivals.len() > most {
            #[cfg(test)]
            {
                self.visits += self.arrivals.len();
            }
            self.arrivals.retain(|&entry| waiting.arrived(entry));
            self.arrivals.shrink_to(most);
        }
        if self.deadlines.len() > most {
            #[cfg(test)]
            {
                self.visits += self.deadlines.len();
            }
            self.deadlines.retain(|&Reverse(entry)| waiting.due(entry));
            self.deadlines.shrink_to(most);
        }
    }

    /// The soonest expiry of the settled calls: drops the entries of calls gone since from the
    /// queues' fronts, which then hold the oldest arrival and the soonest deadline.
    fn soonest(&mut self, frame_timeout: Duration) -> Option<Instant> {
        let waiting = Waiting {
            last: &self.last,
            rest: &self.rest,
        };
        while let Some(&entry) = self.arrivals.front() {
            if waiting.arrived(entry) {
                break;
            }
            self.arrivals.pop_front();
            #[cfg(test)]
            {
                self.visits += 1;
            }
        }
        while let Some(&Reverse(entry)) = self.deadlines.peek() {
            if waiting.due(entry) {
                break;
            }
            self.deadlines.pop();
            #[cfg(test)]
            {
                self.visits += 1;
            }
        }
        let waits_from = self.waits_from;
        let patience = self.arrivals.front().map(|&(arrival, _)| {
            let from = waits_from.map_or(arrival, |from| from.max(arrival));
            deadline_after(from, frame_timeout)
        });
        let deadline = self.deadlines.peek().map(|&Reverse((at, _))| at);
        sooner(patience, deadline)
    }

    /// Removes and returns every settled call whose wait has ended by `now`: those past their
    /// deadline, and those that arrived a frame timeout before `now` with no piece or pause
    /// since.
    pub(super) fn expire(&mut self, now: Instant, frame_timeout: Duration) -> Vec<(u32, Opened)> {
        let mut expired = Vec::new();
        while let Some(&Reverse(entry)) = self.deadlines.peek() {
            if entry.0 > now {
                break;
            }
            self.deadlines.pop();
            let own = self.waiting().due(entry);
            self.expire_entry(own, entry.1, &mut expired);
        }
        let waits_from = self.waits_from;
        while let Some(&entry) = self.arrivals.front() {
            let from = waits_from.map_or(entry.0, |from| from.max(entry.0));
            // Those behind it arrived no sooner.
            if deadline_after(from, frame_timeout) > now {
                break;
            }
            self.arrivals.pop_front();
            let own = self.waiting().arrived(entry);
            self.expire_entry(own, entry.1, &mut expired);
        }
        self.held -= expired.iter().map(|(_, opened)| opened.cost).sum::<usize>();
        self.departed += expired.len() as u64;
        if self.is_empty() {
            self.forget_settled();
        }
        expired
    }

    /// Moves call `id` to `expired` if the queue entry just taken was its own (`own`).
    fn expire_entry(&mut self, own: bool, id: u32, expired: &mut Vec<(u32, Opened)>) {
        #[cfg(test)]
        {
            self.visits += 1;
        }
        if own {
            expired.extend(self.take(id).map(|opened| (id, opened)));
        }
    }

    fn waiting(&self) -> Waiting<'_> {
        Waiting {
            last: &self.last,
            rest: &self.rest,
        }
    }
}

#[cfg(test)]
#[path = "open_tests.rs"]
mod tests;
