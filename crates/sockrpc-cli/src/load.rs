//! The load generator: one task per unit of concurrency, each looping round trips until the
//! budget is spent, every latency into one HDR histogram.
//!
//! The client runs on a current-thread runtime, so the tasks never contend for the tally's
//! locks; a lock costs tens of nanoseconds against round trips of tens of microseconds. Callers
//! time themselves, because a pipelined batch completes many calls at different moments.
//!
//! A call that never returns (a lost datagram with no timeout, a server that hangs) must not hang
//! the run: a watchdog that also drives the progress bar ends a phase in which no call completed
//! for [`STALL_AFTER`], and counts the calls still in flight as errors.

use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use std::{
    future::Future,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::{Duration, Instant},
};
use tokio::task::JoinSet;

/// A phase in which no call completes for this long is declared stalled and ended.
pub(crate) const STALL_AFTER: Duration = Duration::from_secs(10);

/// How often the watchdog looks at the tally and redraws the progress bar.
const TICK: Duration = Duration::from_millis(100);

/// Highest latency the histogram tracks: anything slower is clamped, not lost.
const MAX_TRACKED_NS: u64 = 60_000_000_000;

/// One unit of concurrency: a client that can run round trips on its connection(s).
pub(crate) trait Caller: Send + 'static {
    /// Calls one round completes: 1, or the depth of a pipelined batch.
    fn calls_per_round(&self) -> u64 {
        1
    }

    /// Runs one round and reports every call in it to `tally`, as a latency or as an error.
    fn round(&mut self, tally: &Tally) -> impl Future<Output = ()> + Send;

    /// Runs a round of only `calls` calls (fewer than [`Caller::calls_per_round`]): the last
    /// round of a call budget, which must not make more calls than it was given. A caller of
    /// one call per round is never asked for fewer, so the default runs a whole round.
    fn round_of(&mut self, calls: u64, tally: &Tally) -> impl Future<Output = ()> + Send {
        let _ = calls;
        self.round(tally)
    }
}

/// How much work a phase does.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Budget {
    /// This many calls in all, shared by every task.
    Calls(u64),
    /// Rounds keep starting until this much time has passed.
    Time(Duration),
}

/// Locks a mutex that a panicking task may have poisoned; the data (a histogram, a message) is
/// still usable.
/// How a failed call's status reads in a row's note and the run's failures, in every row
/// (built-in or `--call`, closed or open loop): `UNAVAILABLE: message`, the code as gRPC
/// names it.
pub(crate) fn status_error(status: &sockrpc::Status) -> String {
    format!("{}: {}", status.code(), status.message())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// What one phase measured, shared by its tasks.
#[derive(Debug)]
pub(crate) struct Tally {
    hist: Mutex<Histogram<u64>>,
    /// Calls handed out so far, for a call budget.
    started: AtomicU64,
    /// Set when a time budget (or a call budget's time bound) runs out. A flag rather than a clock read per round: the client
    /// thread is the bottleneck at high concurrency, and every clock read is ~40 ns of it.
    stop: AtomicBool,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            // 3 significant figures over 1 ns..60 s: bounds that are constants and valid.
            hist: Mutex::new(
                Histogram::new_with_bounds(1, MAX_TRACKED_NS, 3)
                    .unwrap_or_else(|_| unreachable!("constant histogram bounds are valid")),
            ),
            started: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            errors: AtomicU64::new(0),
            first_error: Mutex::new(None),
        }
    }

    /// Records one successful call.
    pub(crate) fn ok(&self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        lock(&self.hist).saturating_record(ns.clamp(1, MAX_TRACKED_NS));
    }

    /// Records `calls` failed calls; the first message is kept for the report, escaped (a
    /// server's status message: [`crate::out::one_line`]).
    pub(crate) fn err(&self, calls: u64, message: impl FnOnce() -> String) {
        self.errors.fetch_add(calls, Ordering::Relaxed);
        let mut first = lock(&self.first_error);
        if first.is_none() {
            *first = Some(crate::out::one_line(&message()).into_owned());
        }
    }

    /// Successful calls so far.
    fn ok_count(&self) -> u64 {
        lock(&self.hist).len()
    }

    /// Calls that finished so far, either way.
    fn finished(&self) -> u64 {
        self.ok_count() + self.errors.load(Ordering::Relaxed)
    }

    /// Claims up to `calls` calls for the next round against a call budget of `limit`, and
    /// returns how many it got: `calls`, fewer for the last round (a pipelined batch of 64 with
    /// 5 calls left makes 5, not 64), 0 when none are left.
    fn claim(&self, calls: u64, limit: u64) -> u64 {
        let before = self
            .started
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |started| {
                Some(started.saturating_add(calls).min(limit.max(started)))
            })
            .unwrap_or_else(|started| started);
        calls.min(limit.saturating_sub(before))
    }
}

/// What a phase measured.
#[derive(Debug)]
pub(crate) struct PhaseResult {
    /// Latencies of the successful calls, in nanoseconds.
    pub(crate) hist: Histogram<u64>,
    /// Failed calls, including those in flight when a stall ended the phase.
    pub(crate) errors: u64,
    /// The first error's message.
    pub(crate) first_error: Option<String>,
    /// From the first round's start until the last task ended.
    pub(crate) elapsed: Duration,
    /// The phase was ended by the watchdog: its callers are gone.
    pub(crate) stalled: bool,
}

/// Runs `callers` (one task each) until `budget` is spent, and hands the callers back for the
/// next phase. `progress` shows calls (call budget) or milliseconds (time budget).
pub(crate) async fn run_phase<C: Caller>(
    callers: Vec<C>,
    budget: Budget,
    progress: &ProgressBar,
) -> (Vec<C>, PhaseResult) {
    run_phase_within(callers, budget, None, progress).await
}

/// [`run_phase`] with a call budget that also ends after `within`: a warmup of `--warmup N`
/// calls must not outlast a run of `--duration 0.1` by hours when N is huge or calls are slow.
pub(crate) async fn run_calls_within<C: Caller>(
    callers: Vec<C>,
    calls: u64,
    within: Duration,
    progress: &ProgressBar,
) -> (Vec<C>, PhaseResult) {
    run_phase_within(callers, Budget::Calls(calls), Some(within), progress).await
}

async fn run_phase_within<C: Caller>(
    callers: Vec<C>,
    budget: Budget,
    within: Option<Duration>,
    progress: &ProgressBar,
) -> (Vec<C>, PhaseResult) {
    let tally = Arc::new(Tally::new());
    let started = Instant::now();
    let deadline = tokio::time::sleep(match (budget, within) {
        (Budget::Time(duration), _) => duration,
        (Budget::Calls(_), Some(within)) => within,
        // Never reached: the call budget ends the phase, or the watchdog does.
        (Budget::Calls(_), None) => Duration::from_secs(86_400 * 365),
    });
    tokio::pin!(deadline);
    let per_task = callers.first().map_or(1, Caller::calls_per_round);
    let mut tasks = JoinSet::new();
    for mut caller in callers {
        let tally = Arc::clone(&tally);
        tasks.spawn(async move {
            let batch = caller.calls_per_round();
            // Every caller makes at least one round, even if the budget's time ran out before
            // its task first ran (a loaded machine, a `--duration` of a few milliseconds): a
            // phase that made no call would report none succeeded.
            let mut first = true;
            loop {
                if !first && tally.stop.load(Ordering::Relaxed) {
                    break;
                }
                first = false;
                let calls = match budget {
                    Budget::Calls(limit) => tally.claim(batch, limit),
                    Budget::Time(_) => batch,
                };
                if calls == 0 {
                    break;
                }
                if calls < batch {
                    caller.round_of(calls, &tally).await;
                } else {
                    caller.round(&tally).await;
                }
            }
            caller
        });
    }

    let mut callers = Vec::new();
    let mut stalled = false;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_finished = 0;
    let mut last_progress = Instant::now();
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Ok(caller)) => callers.push(caller),
                Some(Err(err)) => tally.err(1, || format!("load task failed: {err}")),
            },
            () = &mut deadline, if !tally.stop.load(Ordering::Relaxed) => {
                tally.stop.store(true, Ordering::Relaxed);
            }
            _ = tick.tick() => {
                let finished = tally.finished();
                progress.set_position(match budget {
                    Budget::Calls(_) => finished,
                    Budget::Time(_) => u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                });
                if finished != last_finished {
                    last_finished = finished;
                    last_progress = Instant::now();
                } else if last_progress.elapsed() >= STALL_AFTER {
                    stalled = true;
                    let in_flight = u64::try_from(tasks.len())
                        .unwrap_or(u64::MAX)
                        .saturating_mul(per_task);
                    tasks.abort_all();
                    while tasks.join_next().await.is_some() {}
                    tally.err(in_flight, || {
                        format!("no call completed for {} s", STALL_AFTER.as_secs())
                    });
                    break;
                }
            }
        }
    }
    let elapsed = started.elapsed();
    let hist = lock(&tally.hist).clone();
    let first_error = lock(&tally.first_error).take();
    let errors = tally.errors.load(Ordering::Relaxed);
    (
        callers,
        PhaseResult {
            hist,
            errors,
            first_error,
            elapsed,
            stalled,
        },
    )
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
