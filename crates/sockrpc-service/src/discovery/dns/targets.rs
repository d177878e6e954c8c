//! An SRV answer's targets, looked up together: each name once, several at a time, the best
//! priorities first and at most [`MAX_TARGETS`] of them, all within one deadline.
//!
//! An SRV answer may name a thousand records, many of them the same host. Looked up one after
//! another, each a full query with its own timeout, a lookup took as many timeouts as there
//! were targets (a few silent hosts held the first answer for minutes), and a name named by a
//! thousand records was asked a thousand times. Here a name is asked once, [`AT_ONCE`] at a
//! time, and the whole lookup ends within [`budget`] of its start: a target not answered by
//! then counts as failed, as a timeout would.

use super::connected::DnsResolver;
use super::lookup::{addresses, Addresses};
use hickory_resolver::Hosts;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;
use tokio::time::Instant;

/// The most distinct target names of one SRV answer that are looked up, taken in priority
/// order; records naming others are passed over (and logged).
pub(super) const MAX_TARGETS: usize = 64;

/// Target lookups in flight at once.
const AT_ONCE: usize = 8;

/// How long one phase of a lookup may take: each query's timeout × attempts, twice (UDP, then
/// TCP), as a single name's lookup may.
pub(super) fn budget(resolver: &DnsResolver) -> Duration {
    let options = resolver.options();
    let attempts = u32::try_from(options.attempts.max(1)).unwrap_or(u32::MAX);
    options.timeout.saturating_mul(attempts).saturating_mul(2)
}

/// The addresses of each of `targets` (distinct names, the best priority first), looked up
/// [`AT_ONCE`] at a time; one not answered by `deadline` is an error.
pub(super) async fn resolve(
    resolver: &DnsResolver,
    hosts: &Hosts,
    targets: Vec<String>,
    deadline: Instant,
) -> HashMap<String, Result<Addresses, String>> {
    let lookups = targets.iter().map(|target| async move {
        match tokio::time::timeout_at(deadline, addresses(resolver, hosts, target)).await {
            Ok(found) => found,
            Err(_) => Err(format!("{target}: no answer within the lookup's deadline")),
        }
    });
    let answers = at_most(lookups.collect(), AT_ONCE).await;
    targets.into_iter().zip(answers).collect()
}

/// Every future of `futures` run to its end, at most `limit` at a time, in one task; their
/// outputs in order. (Each wake-up polls those in flight, at most `limit`.)
async fn at_most<F: Future>(futures: Vec<F>, limit: usize) -> Vec<F::Output> {
    let total = futures.len();
    let mut waiting = futures.into_iter().enumerate();
    let mut running: Vec<(usize, Pin<Box<F>>)> = Vec::with_capacity(limit.min(total));
    let mut outputs: Vec<Option<F::Output>> = (0..total).map(|_| None).collect();
    std::future::poll_fn(|cx| loop {
        while running.len() < limit.max(1) {
            match waiting.next() {
                Some((i, future)) => running.push((i, Box::pin(future))),
                None => break,
            }
        }
        let before = running.len();
        running.retain_mut(|(i, future)| match future.as_mut().poll(cx) {
            Poll::Ready(output) => {
                outputs[*i] = Some(output);
                false
            }
            Poll::Pending => true,
        });
        if running.is_empty() && waiting.len() == 0 {
            return Poll::Ready(());
        }
        if running.len() == before {
            return Poll::Pending;
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::at_most;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn at_most_runs_every_future_with_a_bounded_number_in_flight() {
        let in_flight = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let futures = (0..20u64).map(|i| {
            let (in_flight, most) = (&in_flight, &most);
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                // Later ones finish first: outputs still come back in order.
                tokio::time::sleep(Duration::from_millis(100 - i)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                i
            }
        });
        let started = tokio::time::Instant::now();
        let outputs = at_most(futures.collect(), 8).await;
        assert_eq!(outputs, (0..20).collect::<Vec<_>>());
        assert_eq!(most.load(Ordering::SeqCst), 8);
        // Three rounds of at most 100 ms, not twenty.
        assert!(
            started.elapsed() <= Duration::from_millis(300),
            "{:?}",
            started.elapsed()
        );
    }
}
