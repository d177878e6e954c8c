//! A client's instance, and its redraw when another address owns it on the server.
//!
//! The server binds an instance's watermark to the IP address that made it (`watermark.rs`),
//! and refuses unrun (NOT_PROCESSED, `OTHER_SOURCE`) the calls of an instance another address
//! owns. The instance is plain text in every datagram: a host that saw it can take the mark
//! first, and keep it with one request every < 30 s; a client whose address changed (NAT
//! rebinding) finds its own mark held by its old address. Either way every call under that
//! instance would go over TCP for as long as the other address holds it. So on that refusal the
//! client draws a fresh instance, and new calls use it (`docs/UDP.md`, *A fresh instance*).
//!
//! - Once per episode: only a refusal under the *current* instance redraws; the refusals of
//!   other calls already in flight under the old one do not.
//! - At most once per [`REDRAW_EVERY`], so a flood of refusals cannot make the client churn.
//! - Calls in flight keep the instance they started with (their datagrams are encoded once),
//!   so their answers must still reach them: the instances retired within the retransmit
//!   window (no call started under one is in flight past it) stay accepted by the inbox. At most
//!   [`RETIRED_MAX`] are kept; when that many were retired within the window, no redraw happens.
//! - Everything else stays: the cookie is bound to the client's address, not its instance; the
//!   RTT is the path's; call ids come from the one `Outstanding`, so they never repeat across
//!   instances, and its watermark (the least call still in flight, of any instance) is a safe
//!   `done_below` for the new instance too.

use super::super::random_u64;
use super::{bump, lock, Shared};
use bytes::Bytes;
use sockrpc_protocol::{Response, Status};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// The least time between two redraws.
pub(crate) const REDRAW_EVERY: Duration = Duration::from_secs(1);

/// The most retired instances whose answers are still accepted.
pub(crate) const RETIRED_MAX: usize = 16;

/// The instance new calls use, and the ones retired that calls in flight may still use.
pub(crate) struct Instances {
    current: AtomicU64,
    redraws: Mutex<Redraws>,
}

#[derive(Default)]
struct Redraws {
    /// When the last redraw happened.
    last: Option<Instant>,
    /// Retired instances, oldest first, each with when it was retired.
    retired: VecDeque<(u64, Instant)>,
}

impl Instances {
    /// A fresh random instance (never 0, so an all-zero header is never mistaken for ours).
    pub(crate) fn new() -> Instances {
        Instances {
            current: AtomicU64::new(draw()),
            redraws: Mutex::default(),
        }
    }

    /// The instance new calls use.
    pub(crate) fn current(&self) -> u64 {
        self.current.load(Ordering::Acquire)
    }

    /// Whether a datagram naming `instance` is for this client: the current instance, or one
    /// retired that a call in flight may still use (looked up under a lock only then).
    pub(crate) fn is_ours(&self, instance: u64) -> bool {
        instance == self.current()
            || (instance != 0
                && lock(&self.redraws)
                    .retired
                    .iter()
                    .any(|&(old, _)| old == instance))
    }

    /// Draws a fresh instance after a call under `refused` was refused because another address
    /// owns it, unless `refused` is no longer current (this episode's redraw is done), the last
    /// redraw was less than [`REDRAW_EVERY`] ago, or [`RETIRED_MAX`] instances were retired
    /// within `window` (the retransmit window: calls under them may still be in flight).
    /// Whether it redrew.
    pub(crate) fn redraw(&self, refused: u64, now: Instant, window: Duration) -> bool {
        let mut redraws = lock(&self.redraws);
        if refused != self.current() {
            return false;
        }
        if redraws
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < REDRAW_EVERY)
        {
            return false;
        }
        redraws
            .retired
            .retain(|&(_, at)| now.saturating_duration_since(at) < window);
        if redraws.retired.len() >= RETIRED_MAX {
            return false;
        }
        redraws.retired.push_back((refused, now));
        redraws.last = Some(now);
        self.current.store(draw(), Ordering::Release);
        true
    }
}

fn draw() -> u64 {
    random_u64().max(1)
}

impl Shared {
    /// Counts a REPLY that says its call did not run.
    pub(super) fn on_refused(&self, answer: &Result<Response<Bytes>, Status>) {
        if answer.as_ref().is_err_and(Status::is_not_processed) {
            bump(&self.stats.refused);
        }
    }

    /// A REPLY refusing a call under `instance` carried `FOREIGN_INSTANCE`: another address
    /// owns that instance on the server. Draws a fresh one (once per episode, at most once a
    /// second: [`Instances::redraw`]).
    pub(in crate::udp) fn on_foreign(&self, instance: u64) {
        if self
            .instances
            .redraw(instance, Instant::now(), self.config.retransmit_window)
        {
            bump(&self.stats.redraws);
            tracing::debug!(
                old = format_args!("{instance:016x}"),
                "another address owns this UDP client's instance on the server: drew a new one"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(20);

    #[test]
    fn redraws_once_per_episode_and_keeps_the_old_instance_for_the_window() {
        let instances = Instances::new();
        let first = instances.current();
        let start = Instant::now();
        assert!(instances.redraw(first, start, WINDOW));
        let second = instances.current();
        assert_ne!(first, second);
        // The old instance's calls in flight still get their answers.
        assert!(instances.is_ours(first) && instances.is_ours(second));
        assert!(!instances.is_ours(0) && !instances.is_ours(first ^ second ^ 1));
        // More refusals of calls under the old instance: the episode's redraw is done.
        let later = start + Duration::from_secs(5);
        assert!(!instances.redraw(first, later, WINDOW));
        assert_eq!(instances.current(), second);
        // Past the window no call under it is in flight: it is forgotten at the next redraw.
        let past = start + WINDOW + Duration::from_secs(1);
        assert!(instances.redraw(second, past, WINDOW));
        assert!(!instances.is_ours(first));
        assert!(instances.is_ours(second));
    }

    #[test]
    fn redraws_at_most_once_a_second_and_keep_a_bounded_number() {
        let instances = Instances::new();
        let start = Instant::now();
        assert!(instances.redraw(instances.current(), start, WINDOW));
        let soon = start + REDRAW_EVERY / 2;
        assert!(!instances.redraw(instances.current(), soon, WINDOW));
        let mut now = start;
        let mut redrawn = 1;
        // A refusal under each new instance, every second, for longer than the window.
        for _ in 0..40 {
            now += REDRAW_EVERY;
            if instances.redraw(instances.current(), now, WINDOW) {
                redrawn += 1;
            }
            assert!(lock(&instances.redraws).retired.len() <= RETIRED_MAX);
        }
        // 16 within any 20 s: the churn is bounded by the retired instances kept too.
        assert!(redrawn < 41, "{redrawn}");
        assert!(redrawn > RETIRED_MAX, "{redrawn}");
    }
}
