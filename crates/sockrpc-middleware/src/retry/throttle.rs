//! `RetryThrottle`: gRFC A6's retry throttling, so a failing server is not hammered by retries.
//!
//! ```text
//!  tokens start at max_tokens, stay within [0, max_tokens]
//!  attempt fails (listed code, or pushback "don't retry")     tokens -= 1
//!  a call ends OK (any method; a stream at its end)            tokens += token_ratio
//!  a retry or hedge may be sent only while                     tokens >  max_tokens / 2
//! ```
//!
//! With the defaults (10 tokens, ratio 0.1) a server that fails every call gets at most ~5
//! extra attempts in total before retries stop, then one more for every 10 calls that
//! succeed: against a dead server the client sends barely more than one attempt per call,
//! and against a healthy one (failures under ~10 %) retries are never held back.
//!
//! What counts, as grpc-go counts it (its `shouldRetry` and `finish`):
//!
//! - **A success:** every call through a retry or hedging layer with a throttle that ends OK,
//!   also one its policy sends once (A6: "every outgoing RPC, regardless of service or
//!   method"), so the successes of other methods earn back what a failing one spent.
//! - **A failure:** an attempt that fails before any answer (a call that showed its caller an
//!   answer is committed, as grpc-go's non-trailers-only failures) with a code its method's
//!   policy lists (retryable, or non-fatal for hedging), whether or not another attempt can
//!   follow; and, on any method, with a policy or without one, a failure whose pushback
//!   refuses retries (negative, not a number, or more than one value). A pushback asking for
//!   a wait counts only with a listed code.
//! - **Once per attempt.** A retry layer and a hedging layer stacked on one throttle see the
//!   inner one's last failure again as the outer one's attempt: the layer that counts a
//!   failure marks the status with the throttle's id (`Status::failure_counter`), and a layer
//!   above with the same throttle leaves it; a success is counted by the outer layer only
//!   (`Call::outcome_counter`).
//! - **Never:** a call the server marks not processed (it reached no handler, so it says
//!   nothing of the server's health) or one this side refused before sending. grpc-go counts
//!   a second unprocessed refusal when its code (`UNAVAILABLE`) is retryable; here the channel
//!   already re-sent the first, and a refusal is never counted.
//!
//! Tokens are counted in thousandths (A6 allows three decimals for the ratio) in one atomic,
//! shared by every clone.

use crate::watch::{is_streamed, watch, Watch};
use sockrpc_protocol::{Code, Response};
use sockrpc_service::Body;
use std::num::NonZeroU32;
use std::sync::{
    atomic::{AtomicU32, Ordering},
    Arc,
};

/// The next throttle's id.
static NEXT_ID: AtomicU32 = AtomicU32::new(1);

/// A retry throttle shared by every call to one server (clone it to share).
#[derive(Debug, Clone)]
pub struct RetryThrottle {
    inner: Arc<State>,
}

#[derive(Debug)]
struct State {
    /// Tells this throttle from others (`Call::outcome_counter`).
    id: NonZeroU32,
    max: u32,
    ratio: u32,
    tokens: AtomicU32,
}

impl Default for RetryThrottle {
    /// gRFC A6's example: 10 tokens, 0.1 per success.
    fn default() -> RetryThrottle {
        RetryThrottle::new(10, 0.1)
    }
}

impl RetryThrottle {
    /// A throttle with `max_tokens` (at least 1, at most 1000) that earns `token_ratio` (at
    /// least 0.001, three decimals) back per successful attempt.
    pub fn new(max_tokens: u32, token_ratio: f64) -> RetryThrottle {
        let max = max_tokens.clamp(1, 1000) * 1000;
        let ratio = if token_ratio.is_finite() {
            (token_ratio * 1000.0).round().clamp(1.0, max as f64) as u32
        } else {
            1
        };
        // Wraps after four billion throttles; an id shared then only merges two throttles'
        // success counts for calls through both.
        let id =
            NonZeroU32::new(NEXT_ID.fetch_add(1, Ordering::Relaxed)).unwrap_or(NonZeroU32::MIN);
        RetryThrottle {
            inner: Arc::new(State {
                id,
                max,
                ratio,
                tokens: AtomicU32::new(max),
            }),
        }
    }

    /// This throttle's id, the same for every clone: what a layer puts on the calls whose
    /// success it counts (`Call::set_outcome_counter`).
    pub fn id(&self) -> NonZeroU32 {
        self.inner.id
    }

    /// The tokens now.
    pub fn tokens(&self) -> f64 {
        f64::from(self.inner.tokens.load(Ordering::Relaxed)) / 1000.0
    }

    /// Whether a retry or hedged attempt may be sent now.
    pub fn allows_retry(&self) -> bool {
        self.inner.tokens.load(Ordering::Relaxed) > self.inner.max / 2
    }

    /// Counts an attempt that failed in a way that says the server is struggling.
    pub(crate) fn record_failure(&self) {
        let _ = self
            .inner
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |t| {
                Some(t.saturating_sub(1000))
            });
    }

    /// Counts an attempt that succeeded.
    pub(crate) fn record_success(&self) {
        let (max, ratio) = (self.inner.max, self.inner.ratio);
        let _ = self
            .inner
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |t| {
                (t < max).then(|| (t + ratio).min(max))
            });
    }

    /// Counts the call `response` answers as a success once it ends OK: now for one message,
    /// at its end for a streamed answer. A stream that fails after its head, or is dropped
    /// before its end, is no success (grpc-go counts a call when it finishes without error).
    pub(crate) fn count_success(&self, response: &mut Response<Body>) {
        if !is_streamed(response.get_ref()) {
            self.record_success();
            return;
        }
        let body = response.get_mut();
        *body = watch(std::mem::take(body), Succeeded(self.clone()));
    }
}

/// Counts a streamed answer's clean end as a success.
struct Succeeded(RetryThrottle);

impl Watch for Succeeded {
    fn on_message(&mut self, _: usize, _: bool) {}

    fn on_end(&mut self, code: Code) {
        if code == Code::Ok {
            self.0.record_success();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_stops_retries_below_half_and_earns_them_back() {
        let throttle = RetryThrottle::new(10, 0.1);
        for _ in 0..4 {
            throttle.record_failure();
        }
        assert!(throttle.allows_retry(), "6 > 5");
        throttle.record_failure();
        assert!(!throttle.allows_retry(), "5 is not above 5");
        for _ in 0..20 {
            throttle.record_failure();
        }
        assert_eq!(throttle.tokens(), 0.0);
        for _ in 0..51 {
            throttle.record_success();
        }
        assert!(throttle.allows_retry(), "5.1 > 5");
        for _ in 0..1000 {
            throttle.record_success();
        }
        assert_eq!(throttle.tokens(), 10.0);
    }
}
