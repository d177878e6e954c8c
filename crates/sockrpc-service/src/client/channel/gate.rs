//! The limits tonic's `Endpoint::concurrency_limit` and `Endpoint::rate_limit` put on a
//! channel: tower's `ConcurrencyLimit` and `RateLimit`, with the channel's own sharing.
//!
//! tonic wraps the connection in both layers and puts the result behind one `Buffer`, so
//! every clone of a tonic channel shares one limit. A sockrpc channel has no buffer task: its
//! clones call the pool directly. So the limits' state is shared here instead (a semaphore,
//! a rate window behind a lock) while each clone keeps what its `poll_ready` took (a permit, a
//! place in the window) for its next call, as tower's layers keep it per service.
//!
//! A call made without `poll_ready` first (a balanced channel's `call_now`, a caller that
//! breaks tower's contract) waits for what it lacks before it is sent, instead of panicking as
//! tower's `RateLimit` does. The permit is held until the call's future ends (the answer,
//! or a stream's first message), as tower's `ConcurrencyLimit` holds it.
//!
//! A clone waiting for a permit is not queued on the semaphore: a wait its caller gave up (a
//! timeout around the call) stays in the clone, and a queued one would be handed the next
//! permit freed and hold it, unpolled, for as long as the clone lives, every other clone's call
//! waiting meanwhile (tonic's buffer keeps such a wait off the limit). Instead a waiting clone
//! looks for a free permit, and each permit given back wakes every clone waiting to look again
//! (`tests/parity/limit_cancelled_ready.rs`).

use sockrpc_transport::endpoint::Endpoint;
use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{ready, Context, Poll},
    time::Duration,
};
use tokio::sync::futures::OwnedNotified;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// A channel's limits, as one clone sees them. See the module docs.
pub(super) struct Gate {
    concurrency: Option<Arc<Limit>>,
    rate: Option<Arc<Rate>>,
    /// Taken by `poll_ready`, for the next call.
    permit: Option<Permit>,
    /// The wait for a permit to be given back, while none is free.
    freed: Option<Pin<Box<OwnedNotified>>>,
    /// A place in the current rate window, taken by `poll_ready`, for the next call.
    admitted: bool,
    /// The wait for the next rate window.
    sleep: Option<Pin<Box<Sleep>>>,
}

/// What a call holds while it runs: its concurrency permit, if the channel has a limit.
pub(super) struct Pass {
    _permit: Option<Permit>,
}

/// tower's `ConcurrencyLimit`, shared by every clone: its permits, and the clones waiting for
/// one to be given back.
struct Limit {
    semaphore: Arc<Semaphore>,
    freed: Arc<Notify>,
}

/// A permit of a [`Limit`]: given back as it drops, waking the clones waiting for one.
struct Permit {
    permit: Option<OwnedSemaphorePermit>,
    freed: Arc<Notify>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        drop(self.permit.take());
        self.freed.notify_waiters();
    }
}

impl Limit {
    /// A free permit, if there is one.
    fn try_take(&self) -> Option<Permit> {
        let permit = Arc::clone(&self.semaphore).try_acquire_owned().ok()?;
        Some(Permit {
            permit: Some(permit),
            freed: Arc::clone(&self.freed),
        })
    }
}

/// tower's `RateLimit` window, shared by every clone.
struct Rate {
    limit: u64,
    per: Duration,
    window: Mutex<Window>,
}

struct Window {
    /// When the current window ends; `None` before the first call.
    until: Option<Instant>,
    /// Calls the current window still lets through.
    left: u64,
}

impl Rate {
    /// Takes a place in the current window, or starts a new one if it is over; else says when
    /// it will be.
    fn take(&self, now: Instant) -> Result<(), Instant> {
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        match window.until {
            Some(until) if now < until => {}
            _ => {
                window.until = Some(sockrpc_transport::deadline_after(now, self.per));
                // tower's lets one call through even with a limit of 0.
                window.left = self.limit.max(1);
            }
        }
        if window.left > 0 {
            window.left -= 1;
            return Ok(());
        }
        Err(window.until.unwrap_or(now))
    }
}

impl Gate {
    /// The gate of a channel made from `endpoint`, if it sets either limit.
    pub(super) fn new(endpoint: &Endpoint) -> Option<Box<Gate>> {
        if endpoint.concurrency_limit.is_none() && endpoint.rate_limit.is_none() {
            return None;
        }
        Some(Box::new(Gate {
            concurrency: endpoint.concurrency_limit.map(|limit| {
                Arc::new(Limit {
                    semaphore: Arc::new(Semaphore::new(limit)),
                    freed: Arc::new(Notify::new()),
                })
            }),
            rate: endpoint.rate_limit.map(|(limit, per)| {
                Arc::new(Rate {
                    limit,
                    per,
                    window: Mutex::new(Window {
                        until: None,
                        left: 0,
                    }),
                })
            }),
            permit: None,
            freed: None,
            admitted: false,
            sleep: None,
        }))
    }

    /// Ready once this clone holds what its next call needs: a permit (concurrency) and a
    /// place in the window (rate), in that order, as tower stacks the two layers.
    pub(super) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let (Some(limit), None) = (&self.concurrency, &self.permit) {
            loop {
                // Waiting before the look: a permit given back between the two wakes it.
                let freed = self
                    .freed
                    .get_or_insert_with(|| Box::pin(Arc::clone(&limit.freed).notified_owned()));
                freed.as_mut().enable();
                if let Some(permit) = limit.try_take() {
                    self.permit = Some(permit);
                    self.freed = None;
                    break;
                }
                ready!(freed.as_mut().poll(cx));
                // Woken: a fresh wait for the next look.
                self.freed = None;
            }
        }
        if let Some(rate) = &self.rate {
            while !self.admitted {
                match rate.take(Instant::now()) {
                    Ok(()) => self.admitted = true,
                    Err(until) => {
                        let sleep = self
                            .sleep
                            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
                        sleep.as_mut().reset(until);
                        ready!(sleep.as_mut().poll(cx));
                    }
                }
            }
        }
        Poll::Ready(())
    }

    /// What `poll_ready` took, for the call being made: `Ok` when it took all it needs, else
    /// `Err` with this gate as it is (what it took, the waits under way), to wait for the rest
    /// with, a fresh clone left in its place.
    pub(super) fn take(&mut self) -> Result<Pass, Box<Gate>> {
        let permit_ok = self.concurrency.is_none() || self.permit.is_some();
        let rate_ok = self.rate.is_none() || self.admitted;
        if permit_ok && rate_ok {
            self.admitted = false;
            return Ok(Pass {
                _permit: self.permit.take(),
            });
        }
        // The waits under way move with it (the rate window's sleep; a permit's wait is
        // only a wake-up, `Limit`), the clone left in place holding nothing.
        let fresh = self.clone();
        Err(Box::new(std::mem::replace(self, fresh)))
    }

    /// Waits until this gate is ready, then takes what it holds.
    pub(super) async fn pass(mut self: Box<Gate>) -> Pass {
        std::future::poll_fn(|cx| self.poll_ready(cx)).await;
        self.admitted = false;
        Pass {
            _permit: self.permit.take(),
        }
    }
}

/// A clone shares the limits and holds nothing of what this one took.
impl Clone for Gate {
    fn clone(&self) -> Gate {
        Gate {
            concurrency: self.concurrency.clone(),
            rate: self.rate.clone(),
            permit: None,
            freed: None,
            admitted: false,
            sleep: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn poll_ready(gate: &mut Gate) -> Poll<()> {
        gate.poll_ready(&mut Context::from_waker(Waker::noop()))
    }

    fn gate(endpoint: Endpoint) -> Gate {
        *Gate::new(&endpoint).expect("a limit is set")
    }

    #[test]
    fn no_limit_no_gate() {
        assert!(Gate::new(&Endpoint::new("localhost", 1)).is_none());
    }

    /// A permit taken by one clone's `poll_ready` holds the others back until its call ends;
    /// a call made without `poll_ready` waits for one too.
    #[tokio::test]
    async fn clones_share_the_concurrency_limit() {
        let mut first = gate(Endpoint::new("localhost", 1).concurrency_limit(1));
        let mut second = first.clone();
        assert!(poll_ready(&mut first).is_ready());
        let pass = first.take().ok().expect("ready: taken");
        assert!(
            poll_ready(&mut second).is_pending(),
            "the one permit is out"
        );
        let rest = second
            .take()
            .err()
            .expect("nothing taken: wait for the rest");
        let waiting = tokio::spawn(rest.pass());
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "waits while the first call runs");
        drop(pass);
        tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("the permit came back")
            .expect("task");
    }

    /// tower's `RateLimit` window, shared by clones: `n` calls, then a wait for the next
    /// window, which begins with the first call after the last one ended.
    #[tokio::test(start_paused = true)]
    async fn clones_share_the_rate_window() {
        let per = Duration::from_secs(10);
        let mut first = gate(Endpoint::new("localhost", 1).rate_limit(2, per));
        let mut second = first.clone();
        let start = Instant::now();
        for gate in [&mut first, &mut second] {
            assert!(poll_ready(gate).is_ready());
            assert!(gate.take().is_ok());
        }
        assert!(
            poll_ready(&mut first).is_pending(),
            "two calls used the window"
        );
        let rest = first.take().err().expect("not admitted");
        rest.pass().await;
        assert_eq!(start.elapsed(), per, "admitted when the window ended");
    }
}
