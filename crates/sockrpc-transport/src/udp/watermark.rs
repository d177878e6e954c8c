//! Per-client watermarks: which call ids a UDP client is done with.
//!
//! The reply cache keeps every finished call's answer for its whole ttl, because a late
//! retransmission must find it rather than run the call again. At a steady 100 k calls/s that
//! is millions of answers kept for nothing: the client already has them. So a client tells the
//! server, in each REQUEST (`FLAG_DONE_BELOW`), the lowest call id it may still send (every
//! call before it has its answer, or was given up, and will never be sent again). The server
//! forgets those answers at once and, from then on, refuses any datagram of that client with an
//! id below the mark: it can only be a late duplicate, and running it would run a call twice.
//!
//! Call ids wrap (they are `u32`, 0 unused), so ids compare in serial order (RFC 1982): `a` is
//! before `b` when `b - a`, wrapping, is under 2³¹.
//!
//! The instance is plain text in every datagram, so anyone who sees it could otherwise move the
//! mark and make the server forget answers the client still needs. A mark therefore belongs to
//! the IP address whose verified REQUEST made it (ports aside): a datagram from another address
//! neither moves it nor is judged by it ([`Foreign`]). A mark unmoved for the ttl (the owner
//! went quiet, or moved: NAT rebinding) passes to the next address that sends one.

use foldhash::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Most ids one advance sweeps (drops the answers of). A client usually moves its mark by the
/// one or two calls it finished since its last request, but a call that needed retransmissions
/// holds the mark back while thousands of later calls finish, and then it jumps by all of them.
/// The ids a jump passes over beyond this bound are swept by the client's next requests, this
/// many each (the mark's `swept` cursor), so one datagram's work stays small and no answer is
/// left behind to wait out the ttl. (Leaving them to the ttl, as the first version did, let a
/// client at 100 k calls/s with occasional loss fill a 64 MiB cache in seconds, and the full
/// cache then refused every UDP client's calls for 30 s.)
pub(crate) const MAX_SWEEP: u32 = 256;

/// Farthest the sweep's cursor may be behind a mark: every id from it to the mark is before
/// the mark in serial order.
const MAX_BEHIND: u32 = (1 << 31) - 1;

/// How often, at most, a full table is scanned for marks past their ttl. Without a bound, every
/// REQUEST of a client new to a full table scanned all of it (65,536 marks) under the reply
/// cache's lock: a verified sender that filled the table with fresh instances (a REQUEST each,
/// below its own watermark, so nothing else is kept or run) then made every further datagram
/// of a new instance cost a whole scan, and the server handled a few hundred datagrams a
/// second. Between scans a new client finds the table full and gets no mark, as it would if no
/// mark had aged out; a mark past its ttl waits at most this long to make room.
const SCAN_EVERY: Duration = Duration::from_millis(100);

/// Whether call id `a` comes before `b` in serial order.
pub(crate) fn serial_before(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 1 << 31
}

/// One client's mark.
#[derive(Debug, Clone, Copy)]
struct Mark {
    below: u32,
    /// Ids before this one have been swept; from it to `below` they are still to sweep.
    swept: u32,
    seen: Instant,
    /// The address that made the mark and alone moves it (canonical: see [`canonical`]).
    owner: IpAddr,
}

/// The instance's mark belongs to another address, which sent it within the ttl: the datagram
/// must neither move it nor use anything the owner's calls left in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Foreign;

/// `ip` as one form per address: an IPv4-mapped IPv6 address (`::ffff:127.0.0.1`, what a
/// dual-stack socket reports for an IPv4 peer) as the IPv4 address, so the same host compares
/// equal whether its UDP and TCP sockets are dual-stack or not.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// The marks of the clients seen lately, bounded in number.
#[derive(Debug)]
pub(crate) struct Watermarks {
    marks: HashMap<u64, Mark>,
    max: usize,
    ttl: Duration,
    /// When the full table was last scanned for marks past their ttl (see [`SCAN_EVERY`]).
    last_scan: Option<Instant>,
    /// Scans made, for the tests.
    #[cfg(test)]
    scans: usize,
}

impl Watermarks {
    /// Room for `max` clients; a mark not moved for `ttl` may be dropped to make room.
    pub(crate) fn new(max: usize, ttl: Duration) -> Watermarks {
        Watermarks {
            marks: HashMap::default(),
            max,
            ttl,
            last_scan: None,
            #[cfg(test)]
            scans: 0,
        }
    }

    /// Whether `call_id` of client `instance` lies below its mark: a duplicate of a call the
    /// client is done with.
    pub(crate) fn is_stale(&self, instance: u64, call_id: u32) -> bool {
        self.marks
            .get(&instance)
            .is_some_and(|mark| serial_before(call_id, mark.below))
    }

    /// [`is_stale`](Self::is_stale) for a datagram from `src` (canonical), or [`Foreign`] when
    /// another address owns the instance's mark.
    pub(crate) fn is_stale_from(
        &self,
        instance: u64,
        src: IpAddr,
        call_id: u32,
        now: Instant,
    ) -> Result<bool, Foreign> {
        match self.marks.get(&instance) {
            None => Ok(false),
            Some(mark) if self.held_by_other(mark, src, now) => Err(Foreign),
            Some(mark) => Ok(serial_before(call_id, mark.below)),
        }
    }

    /// Whether `mark` belongs to an address other than `src` that moved it within the ttl.
    fn held_by_other(&self, mark: &Mark, src: IpAddr, now: Instant) -> bool {
        mark.owner != src && now.saturating_duration_since(mark.seen) < self.ttl
    }

    /// Moves client `instance`'s mark forward to `below` (never back). Returns the next ids
    /// below the mark not yet swept, `(first, count)`, at most [`MAX_SWEEP`], whose answers
    /// may go: those this advance passed over, or those an earlier jump left to sweep. A client
    /// seen for the first time passes over nothing: what it finished before is left to the ttl.
    #[cfg(test)]
    pub(crate) fn advance(&mut self, instance: u64, below: u32, now: Instant) -> (u32, u32) {
        self.advance_to(instance, below, now).0
    }

    /// [`advance_from`](Self::advance_from) the tests' one address.
    #[cfg(test)]
    pub(crate) fn advance_to(
        &mut self,
        instance: u64,
        below: u32,
        now: Instant,
    ) -> ((u32, u32), Option<u32>) {
        let localhost = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
        self.advance_from(instance, localhost, below, now)
            .unwrap_or(((below, 0), None))
    }

    /// [`advance`](Self::advance) for a datagram from `src` (canonical), also returning the mark
    /// it leaves (`None` when the table is full and the client has none): what
    /// [`is_stale`](Self::is_stale) would compare against, without a second lookup. A mark that
    /// another address moved within the ttl is left as it is ([`Foreign`]); one unmoved for the
    /// ttl passes to `src` afresh, passing over nothing.
    pub(crate) fn advance_from(
        &mut self,
        instance: u64,
        src: IpAddr,
        below: u32,
        now: Instant,
    ) -> Result<((u32, u32), Option<u32>), Foreign> {
        let ttl = self.ttl;
        if let Some(mark) = self.marks.get_mut(&instance) {
            if mark.owner != src {
                if now.saturating_duration_since(mark.seen) < ttl {
                    return Err(Foreign);
                }
                *mark = Mark {
                    below,
                    swept: below,
                    seen: now,
                    owner: src,
                };
                return Ok(((below, 0), Some(below)));
            }
            mark.seen = now;
            if serial_before(mark.below, below) {
                mark.below = below;
            }
            // The cursor stays under 2³¹ ids behind the mark: further back, the ids it sweeps
            // next come *after* the mark in serial order, calls the client is not done with
            // (a mark jumping ~2³¹ a request outruns 256 a request; `tests/udp/mark_jumps.rs`).
            // What the cursor skips is left to the ttl.
            if mark.below.wrapping_sub(mark.swept) > MAX_BEHIND {
                mark.swept = mark.below.wrapping_sub(MAX_BEHIND);
            }
            // `swept` only moves toward `below`, so this is how far behind it is.
            let first = mark.swept;
            let count = mark.below.wrapping_sub(first).min(MAX_SWEEP);
            mark.swept = first.wrapping_add(count);
            return Ok(((first, count), Some(mark.below)));
        }
        let scan_due = self
            .last_scan
            .is_none_or(|last| now.saturating_duration_since(last) >= SCAN_EVERY);
        if self.marks.len() >= self.max && scan_due {
            self.last_scan = Some(now);
            #[cfg(test)]
            {
                self.scans += 1;
            }
            self.marks
                .retain(|_, mark| now.saturating_duration_since(mark.seen) < ttl);
        }
        if self.marks.len() < self.max {
            self.marks.insert(
                instance,
                Mark {
                    below,
                    swept: below,
                    seen: now,
                    owner: src,
                },
            );
            return Ok(((below, 0), Some(below)));
        }
        Ok(((below, 0), None))
    }

    /// Clients with a mark.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.marks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_order_wraps() {
        assert!(serial_before(1, 2));
        assert!(!serial_before(2, 1));
        assert!(!serial_before(5, 5));
        assert!(
            serial_before(u32::MAX, 1),
            "1 follows u32::MAX after the wrap"
        );
        assert!(!serial_before(1, u32::MAX));
    }

    #[test]
    fn marks_only_move_forward_and_sweep_what_they_pass() {
        let now = Instant::now();
        let mut marks = Watermarks::new(8, Duration::from_secs(30));
        assert_eq!(
            marks.advance(7, 10, now),
            (10, 0),
            "first sight sweeps nothing"
        );
        assert!(marks.is_stale(7, 9));
        assert!(!marks.is_stale(7, 10));
        assert!(!marks.is_stale(8, 1), "another client has no mark");
        assert_eq!(marks.advance(7, 15, now), (10, 5));
        assert_eq!(marks.advance(7, 12, now), (15, 0), "never back");
        assert!(marks.is_stale(7, 14));
        assert_eq!(marks.advance(7, 15 + 10_000, now), (15, MAX_SWEEP));
        // What that jump passed over beyond one sweep is swept by the next advances, even
        // those that do not move the mark, until the cursor reaches it.
        let mut next = 15 + MAX_SWEEP;
        for _ in 0..(10_000 / MAX_SWEEP) {
            let (first, count) = marks.advance(7, 15 + 10_000, now);
            assert_eq!(first, next, "each sweep starts where the last one stopped");
            assert!(count > 0 && count <= MAX_SWEEP);
            next += count;
        }
        assert_eq!(next, 15 + 10_000, "swept up to the mark");
        assert_eq!(
            marks.advance(7, 15 + 10_000, now),
            (next, 0),
            "and not past it"
        );
        assert_eq!(marks.advance(7, 12, now), (next, 0), "never back");
        assert!(marks.is_stale(7, 15 + 9_999));
        // Across the wrap.
        assert_eq!(marks.advance(9, u32::MAX - 1, now), (u32::MAX - 1, 0));
        assert_eq!(marks.advance(9, 3, now), (u32::MAX - 1, 5));
        assert!(marks.is_stale(9, u32::MAX));
        assert!(!marks.is_stale(9, 3));
    }

    #[test]
    fn the_table_is_bounded_and_old_marks_make_room() {
        let start = Instant::now();
        let ttl = Duration::from_secs(30);
        let mut marks = Watermarks::new(2, ttl);
        marks.advance(1, 5, start);
        marks.advance(2, 5, start);
        marks.advance(3, 5, start);
        assert_eq!(marks.len(), 2, "full: a third client gets no mark");
        assert!(!marks.is_stale(3, 1));
        let later = start + ttl + Duration::from_secs(1);
        marks.advance(3, 5, later);
        assert!(
            marks.is_stale(3, 1),
            "room made by dropping marks past their ttl"
        );
        assert!(marks.len() <= 2);
    }

    #[test]
    fn new_clients_on_a_full_table_do_not_each_scan_it() {
        let start = Instant::now();
        let ttl = Duration::from_secs(30);
        let mut marks = Watermarks::new(64, ttl);
        for instance in 0..64 {
            marks.advance(instance, 5, start);
        }
        // A flood of new clients while every mark is young: the table stays as it is, and is
        // scanned once, not once per new client.
        for instance in 1_000..11_000 {
            assert_eq!(marks.advance_to(instance, 5, start).1, None);
        }
        assert_eq!(marks.scans, 1, "a full table scanned once per new client");
        assert_eq!(marks.len(), 64);
        // Past the ttl, the next scan makes room; and again at most one scan per interval.
        let later = start + ttl + Duration::from_secs(1);
        for instance in 20_000..20_064 {
            assert!(marks.advance_to(instance, 5, later).1.is_some());
        }
        for instance in 30_000..31_000 {
            assert_eq!(marks.advance_to(instance, 5, later).1, None);
        }
        assert_eq!(marks.scans, 2);
        assert!(
            marks.is_stale(20_000, 4),
            "the new clients have their marks"
        );
    }

    #[test]
    fn only_the_owner_moves_a_mark_until_it_goes_quiet_for_the_ttl() {
        let start = Instant::now();
        let ttl = Duration::from_secs(30);
        let mut marks = Watermarks::new(8, ttl);
        let owner = canonical(IpAddr::V6(std::net::Ipv4Addr::LOCALHOST.to_ipv6_mapped()));
        let other = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(owner, IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
        assert!(marks.advance_from(7, owner, 10, start).is_ok());
        assert_eq!(marks.advance_from(7, other, 1_000, start), Err(Foreign));
        assert_eq!(marks.is_stale_from(7, other, 5, start), Err(Foreign));
        assert_eq!(marks.is_stale_from(7, owner, 9, start), Ok(true));
        assert!(!marks.is_stale(7, 10), "the other address moved nothing");
        // Unmoved for the ttl: the next address takes it, afresh (sweeping nothing).
        let later = start + ttl;
        assert_eq!(
            marks.advance_from(7, other, 1_000, later),
            Ok(((1_000, 0), Some(1_000)))
        );
        assert_eq!(marks.is_stale_from(7, owner, 999, later), Err(Foreign));
    }

    #[test]
    fn the_mark_an_advance_returns_is_the_one_is_stale_compares_against() {
        let now = Instant::now();
        let mut marks = Watermarks::new(2, Duration::from_secs(30));
        // First sight, a move forward, an attempt to move back, across the wrap.
        for (instance, below, mark) in [
            (1, 10, 10),
            (1, 25, 25),
            (1, 20, 25),
            (2, u32::MAX, u32::MAX),
            (2, 4, 4),
        ] {
            let (_, returned) = marks.advance_to(instance, below, now);
            assert_eq!(returned, Some(mark));
            for id in [mark.wrapping_sub(1), mark, mark.wrapping_add(1)] {
                assert_eq!(
                    returned.is_some_and(|m| serial_before(id, m)),
                    marks.is_stale(instance, id),
                    "instance {instance}, id {id}"
                );
            }
        }
        // The table is full: a third client gets no mark, and nothing of it is stale.
        assert_eq!(marks.advance_to(3, 10, now).1, None);
        assert!(!marks.is_stale(3, 9));
    }
}
