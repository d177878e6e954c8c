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

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

/// The wire id of sequence number `seq`: 1, 2, …, `u32::MAX`, 1, …
fn id_of(seq: u64) -> u32 {
    // The remainder is below u32::MAX, so the sum fits.
    u32::try_from(seq % u64::from(u32::MAX)).map_or(1, |low| low + 1)
}

/// Calls from the lowest outstanding one on, in order: `true` while outstanding. Finished calls
/// at the front are dropped, so the front is always outstanding: the watermark is `base`, and
/// starting and finishing a call cost O(1). (A call outstanding for long keeps the calls
/// started after it in the window, one byte each, until it finishes.)
#[derive(Debug, Default)]
struct State {
    /// Sequence number of `window[0]`.
    base: u64,
    window: VecDeque<bool>,
}

impl State {
    fn next(&self) -> u64 {
        self.base + self.window.len() as u64
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

    /// A new call: its sequence number, its wire id, outstanding from now, and the watermark
    /// its REQUEST carries (this call included), all under one lock. `None` when `max_window`
    /// calls have started since the oldest outstanding one: the call must not be sent now.
    pub(crate) fn start(&self, max_window: usize) -> Option<(u64, u32, u32)> {
        let mut state = self.lock();
        if state.window.len() >= max_window {
            return None;
        }
        let seq = state.next();
        state.window.push_back(true);
        Some((seq, id_of(seq), id_of(state.base)))
    }

    /// The call will never be sent again.
    pub(crate) fn finish(&self, seq: u64) {
        let mut state = self.lock();
        let Some(index) = seq.checked_sub(state.base) else {
            return;
        };
        if let Some(live) = usize::try_from(index)
            .ok()
            .and_then(|i| state.window.get_mut(i))
        {
            *live = false;
        }
        while state.window.front() == Some(&false) {
            state.window.pop_front();
            state.base += 1;
        }
    }

    /// The watermark: the wire id of the lowest outstanding call, or of the next call.
    #[cfg(test)]
    pub(crate) fn done_below(&self) -> u32 {
        id_of(self.lock().base)
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
        let (a, id_a, below) = calls.start(usize::MAX).expect("room");
        assert_eq!(below, id_a, "a call's own REQUEST counts it outstanding");
        let (b, _, _) = calls.start(usize::MAX).expect("room");
        let (c, id_c, below) = calls.start(usize::MAX).expect("room");
        assert_eq!(below, id_a);
        assert_eq!(calls.done_below(), id_a);
        calls.finish(b);
        assert_eq!(calls.done_below(), id_a, "a still outstanding");
        let hold = ReissueHold::new(Arc::clone(&calls), a);
        assert_eq!(calls.done_below(), id_a, "held for its re-issue");
        drop(hold);
        assert_eq!(calls.done_below(), id_c);
        calls.finish(c);
        let (_, next, _) = calls.start(usize::MAX).expect("room");
        assert_eq!(next, id_c + 1);
        assert_eq!(calls.done_below(), next);
    }

    #[test]
    fn no_call_starts_more_than_the_window_past_the_oldest_outstanding() {
        let calls = Outstanding::default();
        let (oldest, _, _) = calls.start(3).expect("room");
        let (second, _, _) = calls.start(3).expect("room");
        let (_, _, _) = calls.start(3).expect("room");
        calls.finish(second);
        assert!(
            calls.start(3).is_none(),
            "finishing a later call makes no room"
        );
        calls.finish(oldest);
        let (_, _, below) = calls.start(3).expect("room once the oldest finished");
        assert_ne!(below, id_of(oldest));
    }
}
