//! The load generator's phases, with callers that answer at once (no sockets: what is tested
//! is how a phase starts and ends its tasks).

use super::*;

/// A caller whose every round is one call that succeeds at once.
struct Instant1;

impl Caller for Instant1 {
    async fn round(&mut self, tally: &Tally) {
        tally.ok(Duration::from_micros(10));
        // A real caller waits on its socket; this one lets the phase's watchdog run.
        tokio::task::yield_now().await;
    }
}

/// A call budget is never overshot by the round every caller makes first, even when there are
/// more callers than calls: each round is claimed from the budget before it is made.
#[tokio::test(flavor = "current_thread")]
async fn a_call_budget_is_kept_exactly() {
    let callers: Vec<Instant1> = (0..4).map(|_| Instant1).collect();
    let (_, result) = run_phase(callers, Budget::Calls(2), &ProgressBar::hidden()).await;
    assert_eq!(result.hist.len(), 2);
}
