//! `rpc_soak` and `channel_soak`: many sequential large_unary calls, on one channel or on a new
//! channel each, with the spec's flags, per-iteration log lines and second-pass evaluation.

use crate::client::{connect, large_unary, Client};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// The soak flags of the interop spec.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// `soak_iterations`: RPCs to perform (spec default 10).
    pub iterations: usize,
    /// `soak_max_failures`: failures tolerated, inclusive (spec default 0).
    pub max_failures: usize,
    /// `soak_per_iteration_max_acceptable_latency_ms`: an RPC slower than this counts as a
    /// failure (spec default 1000 ms).
    pub max_acceptable_latency: Duration,
    /// `soak_overall_timeout_seconds`: stop sending RPCs after this long; `None` means the
    /// spec's default, `max_acceptable_latency × iterations`.
    pub overall_timeout: Option<Duration>,
    /// `soak_min_time_ms_between_rpcs` (spec default 0).
    pub min_time_between_rpcs: Duration,
    /// Print the spec's per-iteration lines (`soak iteration: N elapsed_ms: M peer: P
    /// succeeded|failed: ..`) and a latency summary to stderr.
    pub log: bool,
}

impl Default for SoakConfig {
    fn default() -> SoakConfig {
        SoakConfig {
            iterations: 10,
            max_failures: 0,
            max_acceptable_latency: Duration::from_millis(1000),
            overall_timeout: None,
            min_time_between_rpcs: Duration::ZERO,
            log: false,
        }
    }
}

impl SoakConfig {
    fn overall(&self) -> Duration {
        self.overall_timeout.unwrap_or_else(|| {
            self.max_acceptable_latency
                .saturating_mul(u32::try_from(self.iterations).unwrap_or(u32::MAX))
        })
    }
}

/// One iteration's record.
struct Iteration {
    elapsed: Duration,
    result: Result<(), String>,
}

/// `rpc_soak`: `config.iterations` large_unary calls in sequence on `client`'s channel; fails
/// when not all completed within the overall timeout, or when more than `max_failures` failed or
/// took longer than `max_acceptable_latency`.
pub async fn rpc_soak(client: &mut Client, config: &SoakConfig) -> Result<(), String> {
    let peer = client.clone().into_inner().endpoint().to_string();
    soak("rpc_soak", &peer, config, || {
        let mut client = client.clone();
        async move { large_unary(&mut client).await }
    })
    .await
}

/// `channel_soak`: like [`rpc_soak`], but every call runs on a new channel to `addr`, created just
/// before it (its connect time counts in the call's latency) and dropped just after (teardown
/// does not count).
pub async fn channel_soak(addr: &str, config: &SoakConfig) -> Result<(), String> {
    soak("channel_soak", addr, config, || async {
        let mut client = connect(addr).await?;
        let result = large_unary(&mut client).await;
        // Teardown happens after the latency was taken: the caller times only this future,
        // and dropping the channel here is instant (its connection closes in the background).
        drop(client);
        result
    })
    .await
}

async fn soak<F, Fut>(name: &str, peer: &str, config: &SoakConfig, mut rpc: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let overall = config.overall();
    let started = Instant::now();
    let mut iterations = Vec::with_capacity(config.iterations);
    for i in 0..config.iterations {
        let Some(left) = overall.checked_sub(started.elapsed()) else {
            break;
        };
        let began = Instant::now();
        // No per-RPC deadline (as the spec asks); only the overall timeout stops a stuck RPC.
        let result = tokio::time::timeout(left, rpc()).await.unwrap_or_else(|_| {
            Err(format!(
                "still running when the overall timeout {overall:?} passed"
            ))
        });
        let elapsed = began.elapsed();
        if config.log {
            match &result {
                Ok(()) => eprintln!(
                    "soak iteration: {i} elapsed_ms: {} peer: {peer} succeeded",
                    elapsed.as_millis()
                ),
                Err(e) => eprintln!(
                    "soak iteration: {i} elapsed_ms: {} peer: {peer} failed: {e}",
                    elapsed.as_millis()
                ),
            }
        }
        iterations.push(Iteration { elapsed, result });
        let pause = config.min_time_between_rpcs.saturating_sub(elapsed);
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    evaluate(name, config, overall, &iterations)
}

/// The second pass over the recorded iterations.
fn evaluate(
    name: &str,
    config: &SoakConfig,
    overall: Duration,
    iterations: &[Iteration],
) -> Result<(), String> {
    let mut latencies: Vec<Duration> = iterations.iter().map(|i| i.elapsed).collect();
    latencies.sort();
    let percentile = |p: usize| {
        latencies
            .get((latencies.len() * p / 100).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let summary = format!(
        "{} of {} iterations ran; latency p50 {:?}, p90 {:?}, max {:?}",
        iterations.len(),
        config.iterations,
        percentile(50),
        percentile(90),
        latencies.last().copied().unwrap_or_default()
    );
    if config.log {
        eprintln!("{name}: {summary}");
    }
    let failures: Vec<String> = iterations
        .iter()
        .enumerate()
        .filter_map(|(n, i)| match &i.result {
            Err(e) => Some(format!("iteration {n} failed after {:?}: {e}", i.elapsed)),
            Ok(()) if i.elapsed > config.max_acceptable_latency => Some(format!(
                "iteration {n} took {:?}, over the acceptable {:?}",
                i.elapsed, config.max_acceptable_latency
            )),
            Ok(()) => None,
        })
        .collect();
    if iterations.len() < config.iterations {
        return Err(format!(
            "{name}: only {} of {} RPCs completed within the overall timeout {overall:?} ({summary}); \
             failures: {failures:?}",
            iterations.len(),
            config.iterations
        ));
    }
    if failures.len() > config.max_failures {
        return Err(format!(
            "{name}: {} failures, more than the {} tolerated ({summary}); first: {:?}",
            failures.len(),
            config.max_failures,
            failures.iter().take(5).collect::<Vec<_>>()
        ));
    }
    Ok(())
}
