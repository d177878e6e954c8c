//! The client's side of watermarks: the call ids it may still send.
//!
//! A call's id is outstanding from its first transmission until the client will never send it
//! again: its answer came, it was given up (deadline, retransmit window, dropped future), or,
//! for an answer too large for a datagram, its TCP re-issue ended (the server must keep the
//! answer until then, so the id stays outstanding while the caller holds a [`ReissueHold`]).
//! Each REQUEST carries the lowest outstanding id as its watermark (`watermark.rs`).
//!
//! Ids come from a 64-bit sequence that never wraps; the wire's `u32` id is derived from it
//! (skipping 0), so the lowest outstanding sequence always gives the serially lowest id.
//!
//! The same record bounds how far calls run ahead of the watermark (`max_window`: the server
//! keeps every answer past it), and finds the calls later answers show lost (RACK, RFC 8985),
//! for the client to retransmit early (`client/loss.rs`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// The wire id of sequence number `seq`: 1, 2, …, `u32::MAX`, 1, …
fn id_of(seq: u64) -> u32 {
    // The remainder is below u32::MAX, so the sum fits.
    u32::try_from(seq % u64::from(u32::MAX)).map_or(1, |low| low + 1)
}

/// Most calls one answer finds lost; the next answers find the rest.
pub(crate) const MAX_LOST: usize = 8;

/// One call of the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// Outstanding, started at this time, not yet passed by the loss scan.
    Live(Instant),
    /// Outstanding, and found lost by the loss scan (told to retransmit once).
    Lost,
    /// Finished.
    Done,
}

/// Calls from the lowest outstanding one on, in order. Finished calls at the front are
/// dropped, so the front is always outstanding: the watermark is `base`, and starting and
/// finishing a call cost O(1). (A call outstanding for long keeps the calls started after it
/// in the window, a few bytes each, until it finishes.)
#[derive(Debug, Default)]
struct State {
    /// Sequence number of `window[0]`.
    base: u64,
    window: VecDeque<Entry>,
    /// Where the loss scan goes on: calls before it were passed (lost, or finished).
    scan: u64,
}

impl State {
    fn next(&self) -> u64 {
        self.base + self.window.len() as u64
    }

    fn get_mut(&mut self, seq: u64) -> Option<&mut Entry> {
        let index = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        self.window.get_mut(index)
    }
}

/// The calls an answer found lost: their wire ids.
#[derive(Debug, Default)]
pub(crate) struct Lost {
    ids: [u32; MAX_LOST],
    len: usize,
}

impl Lost {
    /// The wire ids.
    pub(crate) fn ids(&self) -> &[u32] {
        &self.ids[..self.len]
    }
}

/// The outstanding calls of one UDP client.
#[derive(Debug, Default)]
pub(crate) struct Outstanding {
    state: Mutex<State>,
}

impl Outstanding {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new call started `now`: its sequence number, its wire id, outstanding from now, and
    /// the watermark its REQUEST carries (this call included), all under one lock. `Err` when
    /// `max_window` calls have started since the oldest outstanding one: the new call must not
    /// be sent now, and the oldest is most likely lost. It is marked so, as the loss scan marks
    /// calls: the first time, its wire id comes with the `Err`, to retransmit it now.
    pub(crate) fn start(
        &self,
        max_window: usize,
        now: Instant,
    ) -> Result<(u64, u32, u32), Option<u32>> {
        let mut state = self.lock();
        if state.window.len() >= max_window {
            let base = state.base;
            return Err(match state.window.front_mut() {
                Some(oldest @ Entry::Live(_)) => {
                    *oldest = Entry::Lost;
                    Some(id_of(base))
                }
                _ => None,
            });
        }
        let seq = state.next();
        state.window.push_back(Entry::Live(now));
        Ok((seq, id_of(seq), id_of(state.base)))
    }

    /// The call will never be sent again.
    pub(crate) fn finish(&self, seq: u64) {
        finish_locked(&mut self.lock(), seq);
    }

    /// Call `seq` got its answer, and will never be sent again. When at least `pressure`
    /// calls have started since the oldest outstanding one, a call started more than `reorder`
    /// before this one and still unanswered is taken as lost (its REQUEST or REPLY), as TCP's
    /// RACK judges (RFC 8985): up to [`MAX_LOST`] of those, each found once, are returned, to
    /// retransmit now rather than at their RTO. (Below the pressure they are not looked for:
    /// an RPC's answer also waits for its handler, so an unanswered call may just be slow, and
    /// a retransmission of it would be load for nothing; nor is `reorder` asked for.)
    pub(crate) fn answered(
        &self,
        seq: u64,
        pressure: usize,
        reorder: impl FnOnce() -> Duration,
    ) -> Lost {
        let mut lost = Lost::default();
        let mut state = self.lock();
        let pressed = state.window.len() >= pressure;
        let started = match state.get_mut(seq) {
            Some(Entry::Live(at)) if pressed => Some(*at),
            _ => None,
        };
        // Calls start in sequence order, so the scan stops at the first one started too late.
        if let Some(cutoff) = started.and_then(|at| at.checked_sub(reorder())) {
            let mut at = state.scan.max(state.base);
            while lost.len < MAX_LOST {
                let Some(entry) = state.get_mut(at) else {
                    break;
                };
                match *entry {
                    Entry::Live(started) if started < cutoff => {
                        *entry = Entry::Lost;
                        lost.ids[lost.len] = id_of(at);
                        lost.len += 1;
                    }
                    Entry::Live(_) => break,
                    Entry::Lost | Entry::Done => {}
                }
                at += 1;
            }
            state.scan = at;
        }
        finish_locked(&mut state, seq);
        lost
    }

    /// The watermark: the wire id of the lowest outstanding call, or of the next call.
    #[cfg(test)]
    pub(crate) fn done_below(&self) -> u32 {
        id_of(self.lock().base)
    }
}

fn finish_locked(state: &mut State, seq: u64) {
    if let Some(entry) = state.get_mut(seq) {
        *entry = Entry::Done;
    }
    while state.window.front() == Some(&Entry::Done) {
        state.window.pop_front();
        state.base += 1;
    }
}

/// Keeps a truncated UDP call's id outstanding, so the server keeps its answer, until the TCP
/// re-issue that fetches it is over: hold it across the re-issue, then drop it.
#[derive(Debug)]
pub struct ReissueHold {
    calls: Arc<Outstanding>,
    seq: u64,
}

impl ReissueHold {
    pub(crate) fn new(calls: Arc<Outstanding>, seq: u64) -> ReissueHold {
        ReissueHold { calls, seq }
    }
}

impl Drop for ReissueHold {
    fn drop(&mut self) {
        self.calls.finish(self.seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_skip_zero_and_wrap() {
        assert_eq!(id_of(0), 1);
        assert_eq!(id_of(u64::from(u32::MAX) - 1), u32::MAX);
        assert_eq!(id_of(u64::from(u32::MAX)), 1);
    }

    #[test]
    fn the_watermark_is_the_lowest_call_not_finished() {
        let calls = Arc::new(Outstanding::default());
        assert_eq!(calls.done_below(), 1, "nothing sent yet");
        let (a, id_a, below) = calls.start(usize::MAX, Instant::now()).expect("room");
        assert_eq!(below, id_a, "a call's own REQUEST counts it outstanding");
        let (b, _, _) = calls.start(usize::MAX, Instant::now()).expect("room");
        let (c, id_c, below) = calls.start(usize::MAX, Instant::now()).expect("room");
        assert_eq!(below, id_a);
        assert_eq!(calls.done_below(), id_a);
        calls.finish(b);
        assert_eq!(calls.done_below(), id_a, "a still outstanding");
        let hold = ReissueHold::new(Arc::clone(&calls), a);
        assert_eq!(calls.done_below(), id_a, "held for its re-issue");
        drop(hold);
        assert_eq!(calls.done_below(), id_c);
        calls.finish(c);
        let (_, next, _) = calls.start(usize::MAX, Instant::now()).expect("room");
        assert_eq!(next, id_c + 1);
        assert_eq!(calls.done_below(), next);
    }

    #[test]
    fn an_answer_finds_calls_started_a_reorder_window_before_it_lost_once() {
        let calls = Outstanding::default();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let (a, id_a, _) = calls.start(64, t0).expect("room");
        let (b, _, _) = calls.start(64, t0 + ms(1)).expect("room");
        let (c, id_c, _) = calls.start(64, t0 + ms(3)).expect("room");
        let (d, _, _) = calls.start(64, t0 + ms(10)).expect("room");
        let (e, _, _) = calls.start(64, t0 + ms(11)).expect("room");
        let reorder = ms(5);
        // Below the pressure (fewer calls since the oldest), nothing is looked for.
        let (quiet, _, _) = calls.start(64, t0 + ms(9)).expect("room");
        assert!(calls.answered(quiet, 7, || reorder).ids().is_empty());
        assert!(
            calls.answered(b, 0, || reorder).ids().is_empty(),
            "a is within the window"
        );
        assert_eq!(
            calls.answered(d, 0, || reorder).ids(),
            [id_a, id_c],
            "a and c started 5 ms before d"
        );
        assert!(
            calls.answered(e, 0, || reorder).ids().is_empty(),
            "each found once"
        );
        assert_eq!(calls.done_below(), id_a, "found lost, still outstanding");
        calls.finish(a);
        assert_eq!(calls.done_below(), id_c);
        calls.finish(c);
        let (next, id_next, below) = calls.start(64, t0 + ms(12)).expect("room");
        assert_eq!(below, id_next, "all finished before it");
        // At most MAX_LOST per answer; the next answer finds the rest.
        let many: Vec<u64> = (0..MAX_LOST as u64 + 3)
            .map(|i| calls.start(64, t0 + ms(20 + i)).expect("room").0)
            .collect();
        let (late, _, _) = calls.start(64, t0 + ms(100)).expect("room");
        let (later, _, _) = calls.start(64, t0 + ms(101)).expect("room");
        let first = calls.answered(late, 0, || reorder);
        assert_eq!(first.ids().len(), MAX_LOST, "at most MAX_LOST");
        assert_eq!(first.ids()[0], id_next, "oldest first");
        let rest = calls.answered(later, 0, || reorder);
        assert_eq!(rest.ids().len(), 1 + many.len() - MAX_LOST, "then the rest");
        let _ = next;
    }

    #[test]
    fn no_call_starts_more_than_the_window_past_the_oldest_outstanding() {
        let calls = Outstanding::default();
        let (oldest, _, _) = calls.start(3, Instant::now()).expect("room");
        let (second, _, _) = calls.start(3, Instant::now()).expect("room");
        let (_, _, _) = calls.start(3, Instant::now()).expect("room");
        calls.finish(second);
        assert_eq!(
            calls.start(3, Instant::now()).err(),
            Some(Some(id_of(oldest))),
            "finishing a later call makes no room; the oldest is named"
        );
        assert_eq!(
            calls.start(3, Instant::now()).err(),
            Some(None),
            "once: it was marked lost"
        );
        calls.finish(oldest);
        let (_, _, below) = calls
            .start(3, Instant::now())
            .expect("room once the oldest finished");
        assert_ne!(below, id_of(oldest));
    }
}
