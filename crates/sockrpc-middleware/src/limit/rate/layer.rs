//! `RateLimitLayer` and the bucket its services share.

use super::{RateLimit, Reservation};
use crate::limit::{Place, WaitQueue};
use std::{
    sync::{atomic::AtomicUsize, Arc, Mutex},
    time::Duration,
};
use tokio::time::Instant;
use tower_layer::Layer;

/// Wraps a service in [`RateLimit`]; every service it makes shares one bucket.
///
/// ```ignore
/// Server::builder().layer(RateLimitLayer::new(1000, Duration::from_secs(1)).burst(100))
/// ```
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    bucket: Arc<Bucket>,
}

#[derive(Debug)]
pub(crate) struct Bucket {
    pub(crate) rate: u32,
    pub(crate) period: Duration,
    /// Time per token.
    pub(crate) interval: Duration,
    /// How far ahead of now the bucket may be drawn: `(burst - 1) × interval`.
    tolerance: Duration,
    /// When the bucket is next full: the "theoretical arrival time" of GCRA.
    full_at: Mutex<Option<Instant>>,
    waiting: Arc<AtomicUsize>,
    pub(crate) queue: WaitQueue,
}

impl Bucket {
    fn new(rate: u32, period: Duration, burst: u32, queue: WaitQueue) -> Bucket {
        let rate = rate.max(1);
        let interval = period / rate;
        Bucket {
            rate,
            period,
            interval,
            tolerance: interval * burst.max(1).saturating_sub(1),
            full_at: Mutex::new(None),
            waiting: Arc::default(),
            queue,
        }
    }

    /// Takes a token: `Ok(None)` now, `Ok(Some(..))` at a later instant within `max_wait()`
    /// (with a place in the queue), or `Err(wait)` when the next token is `wait` away (too far,
    /// or the queue is full). `max_wait` is asked only when the token is not there now.
    pub(crate) fn reserve(
        &self,
        now: Instant,
        max_wait: impl FnOnce() -> Duration,
    ) -> Result<Option<Reservation>, Duration> {
        let mut full_at = self
            .full_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let tat = full_at.map_or(now, |t| t.max(now));
        let start = tat.checked_sub(self.tolerance).unwrap_or(now).max(now);
        let wait = start - now;
        let place = if wait.is_zero() {
            None
        } else if wait > max_wait() {
            return Err(wait);
        } else {
            match Place::take(&self.waiting, self.queue.max_waiting) {
                Some(place) => Some(place),
                None => return Err(wait),
            }
        };
        *full_at = Some(tat + self.interval);
        Ok(place.map(|place| (start, place)))
    }
}

impl RateLimitLayer {
    /// At most `rate` calls per `period` on average, with bursts of up to `rate` (change with
    /// [`burst`](Self::burst)); calls over it wait in a [`WaitQueue::default()`].
    pub fn new(rate: u32, period: Duration) -> RateLimitLayer {
        RateLimitLayer {
            bucket: Arc::new(Bucket::new(rate, period, rate, WaitQueue::default())),
        }
    }

    fn rebuild(&self, burst: u32, queue: WaitQueue) -> RateLimitLayer {
        let bucket = &self.bucket;
        RateLimitLayer {
            bucket: Arc::new(Bucket::new(bucket.rate, bucket.period, burst, queue)),
        }
    }

    fn burst_size(&self) -> u32 {
        let interval = self.bucket.interval.as_nanos().max(1);
        (self.bucket.tolerance.as_nanos() / interval) as u32 + 1
    }

    /// Sets the bucket's size: how many calls may come at once after a quiet spell.
    pub fn burst(self, burst: u32) -> RateLimitLayer {
        self.rebuild(burst, self.bucket.queue)
    }

    /// Sets how calls over the limit wait.
    pub fn queue(self, queue: WaitQueue) -> RateLimitLayer {
        self.rebuild(self.burst_size(), queue)
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            bucket: Arc::clone(&self.bucket),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_token_per_interval() {
        let bucket = Bucket::new(10, Duration::from_secs(1), 3, WaitQueue::none());
        let now = Instant::now();
        for _ in 0..3 {
            assert!(matches!(bucket.reserve(now, || Duration::ZERO), Ok(None)));
        }
        assert_eq!(
            bucket.reserve(now, || Duration::ZERO).err(),
            Some(Duration::from_millis(100))
        );
        let later = now + Duration::from_millis(100);
        assert!(matches!(bucket.reserve(later, || Duration::ZERO), Ok(None)));
        assert!(bucket.reserve(later, || Duration::ZERO).is_err());
        let layer = RateLimitLayer::new(10, Duration::from_secs(1)).burst(3);
        assert_eq!(layer.burst_size(), 3);
    }
}
