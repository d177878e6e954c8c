//! Open-loop load (`--rate N`): calls leave on a fixed schedule, one every 1/N s, whether or not
//! earlier calls have answered, and each call's latency runs from the moment it was *scheduled*
//! to leave, not the moment it did. A closed loop (each task waiting for its answer before the
//! next call) slows down with the server and so never sends the calls that would have waited
//! out a stall: its percentiles hide the stall ("coordinated omission"). wrk2 measures this way.
//!
//! ```text
//!  schedule:  |  |  |  |  |  |  |  |  |  |      one slot every 1/N s
//!  sent:      x  x  x  x  x  x  x  x  x  x      late sends still count from their slot
//!  answered:  .  .  .  ........ (stall) .  .    latency = answer - slot time
//! ```
//!
//! Calls in flight are capped (`--max-in-flight`): a slot that finds the cap reached is
//! *dropped* (not sent, counted and reported), so a server that stops answering cannot make the
//! client hold unbounded state. The *achieved rate* is the calls sent over the time from the
//! first slot to the last send; a client that cannot keep up shows as an achieved rate below
//! the asked one (and as its send lag, also reported).
//!
//! The scheduler sleeps until a slot is due. tokio's timer has millisecond resolution, so a send
//! can leave up to about a millisecond after its slot, and that lag is part of the latency (the
//! median and worst lag are reported, so a late client is told from a slow server). With `spin`
//! (`--spin`) it sleeps until a slot is a millisecond away and then yields until it is due: sends
//! leave within microseconds, but the client keeps a CPU busy, which on a machine it shares with
//! the server slows the server down (measured on a loaded 2-CPU VM: a call's own time went from
//! ~0.4 ms to ~3 ms with spinning on).

use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use std::{cell::Cell, cell::RefCell, future::Future, pin::Pin, rc::Rc, sync::Arc, time::Duration};
use tokio::time::Instant;

/// How long calls still in flight after the last slot may take before they count as errors.
pub(super) const DRAIN: Duration = Duration::from_secs(10);

/// With `spin`: below this, the scheduler yields instead of sleeping (tokio's timer has
/// millisecond resolution).
const SPIN: Duration = Duration::from_millis(1);

/// Highest latency tracked: anything slower is clamped, not lost.
const MAX_TRACKED_NS: u64 = 60_000_000_000;

/// The answers so far (one thread: the scheduler's tasks are local).
struct Stats {
    hist: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            hist: Histogram::new_with_bounds(1, MAX_TRACKED_NS, 3)
                .unwrap_or_else(|_| unreachable!("constant histogram bounds are valid")),
            errors: 0,
            first_error: None,
        }
    }

    fn ok(&mut self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.hist.saturating_record(ns.clamp(1, MAX_TRACKED_NS));
    }

    fn err(&mut self, calls: u64, message: impl FnOnce() -> String) {
        self.errors += calls;
        if self.first_error.is_none() {
            // A server's status message, printed in the report: escaped.
            self.first_error = Some(crate::out::one_line(&message()).into_owned());
        }
    }
}

/// How far behind its schedule's end a sender may still send: past it, the slots not yet sent
/// are counted as dropped (and as `late`) and the schedule ends. A client that cannot send at
/// the rate asked (`--rate 10m --duration 1` on a debug build) otherwise went on sending, ever
/// later, for 85 s.
pub(super) const LATE_LIMIT: Duration = Duration::from_secs(1);

/// Most slots sent at once when the scheduler wakes late: it catches up in bursts of this size,
/// letting answers be read between them.
const BURST: u64 = 256;

/// One call: resolves to `Ok` when the answer arrived, or to the error's message.
pub(crate) type Fire =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// What one rate measured.
#[derive(Debug)]
pub(crate) struct OpenLoop {
    /// The asked rate, calls per second.
    pub(crate) rate: f64,
    /// Latency of the answered calls, from their slot, in ns.
    pub(crate) hist: Histogram<u64>,
    /// Calls that failed, or had no answer within [`DRAIN`] of the last slot.
    pub(crate) errors: u64,
    /// The first error's message.
    pub(crate) first_error: Option<String>,
    /// Slots in the schedule.
    pub(crate) slots: u64,
    /// Calls sent.
    pub(crate) sent: u64,
    /// Slots not sent: because `max_in_flight` calls were in flight, or because the sender was
    /// still behind [`LATE_LIMIT`] after the schedule's end (`late`).
    pub(crate) dropped: u64,
    /// Of `dropped`, the slots left unsent when the schedule ended [`LATE_LIMIT`] late.
    pub(crate) late: u64,
    /// Calls sent per second, from the first slot to the last send.
    pub(crate) achieved_rate: f64,
    /// Longest delay between a slot and its send.
    pub(crate) max_send_lag: Duration,
    /// Median delay between a slot and its send: a high one says the client, not the server,
    /// is late.
    pub(crate) median_send_lag: Duration,
    /// Most calls in flight at once.
    pub(crate) peak_in_flight: u64,
    /// From the first slot until the last answer (or the drain's end), and at least the span of
    /// the schedule (slots × the interval).
    pub(crate) elapsed: Duration,
}

/// Runs `fire` at `rate` calls per second for `duration`, at most `max_in_flight` at once, on
/// the current (current-thread) runtime; `spin`: busy-wait the last millisecond before a slot.
pub(crate) async fn run(
    fire: Fire,
    rate: f64,
    duration: Duration,
    max_in_flight: u64,
    spin: bool,
    progress: &ProgressBar,
) -> OpenLoop {
    let spin_window = if spin { SPIN } else { Duration::ZERO };
    let stats = Rc::new(RefCell::new(Stats::new()));
    let interval = Duration::from_secs_f64(1.0 / rate);
    let slots = (duration.as_secs_f64() * rate).round().max(1.0) as u64;
    let in_flight = Rc::new(Cell::new(0_u64));
    let mut peak = 0;
    let mut dropped = 0;
    let mut late = 0;
    let mut sent = 0;
    let mut max_lag = Duration::ZERO;
    let mut lags = Stats::new();
    let mut last_send = Instant::now();
    let local = tokio::task::LocalSet::new();
    let start = Instant::now() + SPIN;
    let slot_time = |slot: u64| start + interval.mul_f64(slot as f64);
    let give_up = slot_time(slots) + LATE_LIMIT;
    local
        .run_until(async {
            let mut next = 0;
            // The clock reading of the last yield: a clock that did not move across a yield is
            // a paused test clock, which only moves when the runtime sleeps.
            let mut spun_at = None;
            while next < slots {
                let now = Instant::now();
                if now >= give_up {
                    late = slots - next;
                    dropped += late;
                    break;
                }
                let due_at = slot_time(next);
                if due_at > now {
                    let wait = due_at - now;
                    if wait > spin_window {
                        tokio::time::sleep(wait - spin_window).await;
                    } else if spun_at != Some(now) {
                        spun_at = Some(now);
                        tokio::task::yield_now().await;
                    } else {
                        tokio::time::sleep_until(due_at).await;
                    }
                    continue;
                }
                let elapsed = now.saturating_duration_since(start);
                // Slot `next` is due (checked above, on the same clock reading); the division
                // may round just below it, so `next + 1` is the least.
                let due = ((elapsed.as_secs_f64() / interval.as_secs_f64()) as u64 + 1)
                    .max(next + 1)
                    .min(slots)
                    .min(next + BURST);
                for slot in next..due {
                    let scheduled = slot_time(slot);
                    if in_flight.get() >= max_in_flight {
                        dropped += 1;
                        continue;
                    }
                    let sent_at = Instant::now();
                    let lag = sent_at.saturating_duration_since(scheduled);
                    max_lag = max_lag.max(lag);
                    lags.ok(lag);
                    last_send = sent_at;
                    sent += 1;
                    in_flight.set(in_flight.get() + 1);
                    peak = peak.max(in_flight.get());
                    let call = fire();
                    let stats = Rc::clone(&stats);
                    let in_flight = Rc::clone(&in_flight);
                    tokio::task::spawn_local(async move {
                        let result = call.await;
                        let mut stats = stats.borrow_mut();
                        match result {
                            Ok(()) => stats.ok(scheduled.elapsed()),
                            Err(message) => stats.err(1, || message),
                        }
                        in_flight.set(in_flight.get() - 1);
                    });
                }
                next = due;
                progress.set_position(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
                // Let answers in between bursts.
                tokio::task::yield_now().await;
            }
            let drain_until = Instant::now() + DRAIN;
            while in_flight.get() > 0 && Instant::now() < drain_until {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
    // Tasks still running hold their own `Rc`: the stats are taken, not unwrapped.
    let mut stats = stats.replace(Stats::new());
    let unanswered = in_flight.get();
    if unanswered > 0 {
        stats.err(unanswered, || {
            format!("no answer within {} s of the last slot", DRAIN.as_secs())
        });
    }
    let window = last_send.saturating_duration_since(start) + interval;
    let Stats {
        hist,
        errors,
        first_error,
    } = stats;
    OpenLoop {
        rate,
        hist,
        errors,
        first_error,
        slots,
        sent,
        dropped,
        late,
        achieved_rate: sent as f64 / window.as_secs_f64(),
        max_send_lag: max_lag,
        median_send_lag: Duration::from_nanos(lags.hist.value_at_quantile(0.5)),
        peak_in_flight: peak,
        // At least the schedule's span: answers that all come back early (one slot at 1/s)
        // must not make a throughput far above the rate asked.
        elapsed: start.elapsed().max(interval.mul_f64(slots as f64)),
    }
}

/// The warning printed when slots were dropped at the cap: the percentiles then leave out the
/// calls that would have waited longest, as a closed loop's do, which a table read alone hides
/// (k6 warns likewise when its constant-arrival-rate runs out of VUs).
pub(crate) fn cap_warning(run: &OpenLoop, cap: u64) -> Option<String> {
    let capped = run.dropped.saturating_sub(run.late);
    (capped > 0).then(|| {
        format!(
            "at {:.0}/s, {capped} of {} slots were dropped: {cap} calls were in flight \
             (--max-in-flight); the percentiles leave those calls out, so they understate a \
             stall. Raise --max-in-flight or lower --rate",
            run.rate, run.slots
        )
    })
}

/// `10k`, `2.5k`, `1m` or a plain number, as calls per second.
pub(crate) fn parse_rate(text: &str) -> Result<f64, String> {
    let text = text.trim().to_ascii_lowercase();
    let (digits, scale) = match text.strip_suffix('k') {
        Some(digits) => (digits, 1e3),
        None => match text.strip_suffix('m') {
            Some(digits) => (digits, 1e6),
            None => (text.as_str(), 1.0),
        },
    };
    match digits.parse::<f64>() {
        Ok(rate) if rate * scale >= 1.0 && rate * scale <= 10e6 => Ok(rate * scale),
        Ok(_) => Err("a rate must be between 1 and 10m calls per second".to_owned()),
        Err(err) => Err(format!("{text:?} is not a rate: {err}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_take_suffixes_and_bounds() {
        assert_eq!(parse_rate("10k"), Ok(10_000.0));
        assert_eq!(parse_rate("2.5K"), Ok(2_500.0));
        assert_eq!(parse_rate("1m"), Ok(1_000_000.0));
        assert_eq!(parse_rate(" 200 "), Ok(200.0));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("100m").is_err());
    }

    /// A handler that answers every call at once except one in ten, which takes 50 ms: the
    /// schedule still holds its rate (the answers do not pace it), the slow calls are all
    /// counted, and a cap of in-flight calls drops slots rather than queueing them.
    #[tokio::test(start_paused = true)]
    async fn the_schedule_does_not_wait_for_answers() {
        let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let fire: Fire = {
            let count = Arc::clone(&count);
            Arc::new(move || {
                let n = count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Box::pin(async move {
                    if n % 10 == 0 {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Ok(())
                })
            })
        };
        let bar = ProgressBar::hidden();
        let result = run(
            Arc::clone(&fire),
            200.0,
            Duration::from_secs(1),
            1000,
            false,
            &bar,
        )
        .await;
        assert_eq!(result.slots, 200);
        assert_eq!(result.sent, 200);
        assert_eq!(result.dropped, 0);
        assert_eq!(result.errors, 0);
        assert_eq!(result.hist.len(), 200);
        assert!(
            (result.achieved_rate - 200.0).abs() < 10.0,
            "{}",
            result.achieved_rate
        );
        // One call in ten took 50 ms: the 90th percentile is fast, the 95th is the stall.
        assert!(result.hist.value_at_quantile(0.95) >= 49_000_000);
        // With room for one call in flight, the slots due while a call stalls are dropped.
        // (Spinning this time: the same schedule, on a paused clock too.)
        let capped = run(fire, 200.0, Duration::from_secs(1), 1, true, &bar).await;
        assert!(capped.dropped > 0, "{capped:?}");
        assert_eq!(capped.sent + capped.dropped, capped.slots);
        // ... and the user is told, naming the cap; the uncapped run has nothing to say.
        let warning = cap_warning(&capped, 1).unwrap_or_default();
        assert!(
            warning.contains(&format!("{} of 200 slots were dropped", capped.dropped)),
            "{warning}"
        );
        assert!(warning.contains("--max-in-flight"), "{warning}");
        assert_eq!(cap_warning(&result, 1000), None);
    }

    /// A client that cannot send at the rate asked (here every call moves the clock on 10 ms,
    /// at a slot every millisecond) falls ever further behind. It went on sending every slot,
    /// the run lasting ten times its schedule; now it stops [`LATE_LIMIT`] after the schedule's
    /// end and counts the slots left as dropped.
    #[tokio::test(start_paused = true)]
    async fn a_sender_far_behind_its_schedule_stops_and_counts_the_rest() {
        let fire: Fire = Arc::new(|| {
            Box::pin(async {
                tokio::time::advance(Duration::from_millis(10)).await;
                Ok(())
            })
        });
        let bar = ProgressBar::hidden();
        let schedule = Duration::from_secs(10);
        let result = run(fire, 1000.0, schedule, 100_000, false, &bar).await;
        assert_eq!(result.slots, 10_000);
        assert!(result.late > 0, "{result:?}");
        assert_eq!(result.sent + result.dropped, result.slots, "{result:?}");
        // The clock is the paused test clock: no real time is measured.
        assert!(
            result.elapsed <= schedule + LATE_LIMIT + DRAIN + Duration::from_secs(3),
            "{result:?}"
        );
    }
}
