//! What a client does about loss: retransmits early the calls an answer shows lost, and
//! sends new calls over TCP for a while after repeated timeouts (`docs/UDP.md`).

use super::super::outstanding::Lost;
use super::{bump, lock, Shared, UdpOutcome};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

/// The least a call must have started before an answered one to be taken as lost (RACK's
/// reordering window, RFC 8985: a quarter of the smoothed RTT, but not less than this).
const MIN_REORDER: Duration = Duration::from_millis(4);

impl Shared {
    /// Whether new calls go over TCP now, after repeated loss.
    pub(super) fn in_fallback(&self) -> bool {
        if !self.falling_back.load(Ordering::Acquire) {
            return false;
        }
        if self.gone.load(Ordering::Acquire) {
            return true;
        }
        let mut until = lock(&self.fallback_until);
        match *until {
            Some(t) if Instant::now() < t => true,
            Some(_) => {
                *until = None;
                self.falling_back.store(false, Ordering::Release);
                false
            }
            None => false,
        }
    }

    /// Call `seq` got its answer: the calls that answer shows lost retransmit now.
    pub(super) fn answered(&self, seq: u64) {
        // Looked for only once half the window is used (`Outstanding::answered`).
        let lost = self
            .outstanding
            .answered(seq, self.config.max_window / 2, || {
                let srtt = lock(&self.rtt).srtt();
                srtt.map_or(MIN_REORDER, |srtt| (srtt / 4).max(MIN_REORDER))
            });
        if !lost.ids().is_empty() {
            self.hurry(&lost);
        }
    }

    /// Tells the calls `lost` names to retransmit now.
    #[cold]
    fn hurry(&self, lost: &Lost) {
        let mut wake = Vec::with_capacity(lost.ids().len());
        {
            let mut pending = lock(&self.pending);
            wake.extend(lost.ids().iter().filter_map(|id| pending.hurry(*id)));
        }
        for waker in wake {
            bump(&self.stats.hurried);
            waker.wake();
        }
    }

    /// A new call found `max_window` calls started since the oldest unanswered one: the server
    /// keeps every answer since, so the call goes over TCP (`NotSuitable`). So many later calls
    /// started meanwhile that the oldest was most likely lost: `lost`, the first time, names it
    /// (`Outstanding::start`), and it retransmits now, not at its RTO.
    #[cold]
    pub(super) fn past_window(&self, lost: Option<u32>) -> UdpOutcome {
        let waker = lost.and_then(|oldest| lock(&self.pending).hurry(oldest));
        if let Some(waker) = waker {
            bump(&self.stats.hurried);
            waker.wake();
        }
        bump(&self.stats.window_full);
        bump(&self.stats.not_suitable);
        UdpOutcome::NotSuitable
    }

    /// Counts a timeout; returns whether it started a fallback.
    pub(super) fn record_loss(&self) -> bool {
        let now = Instant::now();
        {
            let mut last = lock(&self.last_loss);
            let window = self.backoff(0).max(self.config.min_rto * 4);
            if last.is_some_and(|t| now.saturating_duration_since(t) < window) {
                return false;
            }
            *last = Some(now);
        }
        let losses = self.losses.fetch_add(1, Ordering::Relaxed) + 1;
        if losses < self.config.fallback_after_losses {
            return false;
        }
        self.losses.store(0, Ordering::Relaxed);
        {
            let mut until = lock(&self.fallback_until);
            *until = Some(crate::timer::deadline_after(
                Instant::now(),
                self.config.fallback_for,
            ));
            self.falling_back.store(true, Ordering::Release);
        }
        bump(&self.stats.fallbacks);
        tracing::debug!(
            peer = ?self.socket.get_ref().peer_addr().ok(),
            "UDP calls fall back to TCP after repeated loss"
        );
        true
    }
}
