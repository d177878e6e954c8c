//! Streaming calls polled on their connection's own task, not in a task each.
//!
//! ```text
//!  read batch ──▶ on_frame: MESSAGE queued, the call's waker marks it ready ─┐
//!                                                                           ▼
//!  pass over the calls marked ready (each polled once) ──▶ answers appended to the outbox
//!                                                       └──▶ one write for the whole batch
//! ```
//!
//! Why: a stream message used to cost a wake-up of the stream's own task (often on the other
//! worker, then fighting the connection for its state's lock) and a second wake-up of the
//! connection to write the answer. Polled here, a read batch's messages are answered in the same
//! pass and leave in one write, as unary calls do.
//!
//! What it costs, and the guarantees kept:
//!
//! - Fairness. Each call is polled at most once per pass: a call that wakes itself while being
//!   polled (a `yield_now` loop, a stream that is always ready) is polled again only on the
//!   connection's next pass, after the connection has yielded to the runtime and read its
//!   socket again; and a response stream that stays ready yields after `MESSAGES_PER_POLL`
//!   messages (`respond.rs`: credit bounds bytes, not messages, and an empty message takes
//!   none). So a busy call slows its neighbours, it cannot stop them. The trade-off: a
//!   handler that blocks its thread (heavy CPU per message, a blocking call) now holds up every
//!   call on its connection while it does, where in a task of its own it held up only its own
//!   worker. Such work belongs in `spawn_blocking` or a task of the handler's own, as it always
//!   did for unary handlers (which are polled here for their first poll too).
//! - Panics. Every poll is caught ([`poll_caught`]): a call that panics is dropped and reported
//!   to the connection, which fails that call alone. So is every drop of a call's future
//!   (`ending::drop_caught`): one that panicked as the client cancelled it unwound through the
//!   connection's task, failing every call on it, and a second, dropped during that unwinding,
//!   aborted the process (`tests/hostile/drop_panics.rs`).
//! - Cancellation. A CANCEL (or an oversized message) drops the call's future by its id.
//! - Deadlines. The futures keep their own timers, which wake them like any other waker.
//! - Memory. One entry per call, and calls per connection are capped by the server's
//!   `max_concurrent_calls`.

use crate::ending::drop_caught;
use crate::panic::{poll_caught, Panicked};
use foldhash::HashMap;
use std::{
    future::Future,
    pin::Pin,
    sync::atomic::{AtomicBool, Ordering},
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll, Wake, Waker},
};

/// A call's future, as the connection polls it.
pub(super) type LocalFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The calls a connection polls itself, and which of them were woken.
#[derive(Default)]
pub(super) struct LocalCalls {
    calls: HashMap<u32, Local>,
    ready: Arc<Ready>,
    /// The ids being polled in this pass (kept to reuse its allocation).
    pass: Vec<u32>,
}

struct Local {
    future: LocalFuture,
    waker: Waker,
    flag: Arc<CallWaker>,
}

/// Calls woken since the last pass, and the connection task to wake for them.
#[derive(Default)]
struct Ready {
    inner: Mutex<ReadyInner>,
}

#[derive(Default)]
struct ReadyInner {
    ids: Vec<u32>,
    /// The connection's waker; taken when woken (the connection registers it on every poll).
    parent: Option<Waker>,
    /// The connection is being polled: it will look at `ids` before it returns, so a wake-up
    /// need not wake it again.
    polling: bool,
}

impl Ready {
    fn lock(&self) -> MutexGuard<'_, ReadyInner> {
        self.inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// One call's waker: marks the call ready and wakes the connection.
struct CallWaker {
    call_id: u32,
    /// Already in `ready.ids`: a second wake-up before the next pass adds nothing.
    queued: AtomicBool,
    ready: Arc<Ready>,
}

impl Wake for CallWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let parent = {
            let mut ready = self.ready.lock();
            ready.ids.push(self.call_id);
            if ready.polling {
                None
            } else {
                ready.parent.take()
            }
        };
        if let Some(parent) = parent {
            parent.wake();
        }
    }
}

impl LocalCalls {
    /// Adds a call, to be polled on the next pass.
    pub(super) fn insert(&mut self, call_id: u32, future: LocalFuture) {
        let flag = Arc::new(CallWaker {
            call_id,
            queued: AtomicBool::new(true),
            ready: Arc::clone(&self.ready),
        });
        {
            let mut ready = self.ready.lock();
            if self.calls.is_empty() {
                // Ids of calls gone since the last pass that had calls: a pass with none
                // leaves them (it takes no lock), and streams opened and cancelled within each
                // read, read after read, left an id each here for the connection's life.
                ready.ids.clear();
            }
            ready.ids.push(call_id);
        }
        let waker = Waker::from(Arc::clone(&flag));
        self.calls.insert(
            call_id,
            Local {
                future,
                waker,
                flag,
            },
        );
    }

    /// Drops a call (cancelled), a panic in its drop caught; the caller holds no lock its drop
    /// might take. Whether it was here.
    pub(super) fn remove(&mut self, call_id: u32) -> bool {
        let removed = self.calls.remove(&call_id);
        let found = removed.is_some();
        drop_caught(removed);
        found
    }

    /// Drops every call (the connection is closing), each on its own, panics caught.
    pub(super) fn clear(&mut self) {
        for (_, local) in self.calls.drain() {
            drop_caught(local);
        }
    }

    /// Calls held.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.calls.len()
    }

    /// No call is held: a connection serving only unary calls skips this set's bookkeeping.
    pub(super) fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The connection's poll begins: wake-ups from now on are seen by [`end`](Self::end).
    pub(super) fn begin(&self, cx: &Context<'_>) {
        let mut ready = self.ready.lock();
        ready.polling = true;
        match &ready.parent {
            Some(parent) if parent.will_wake(cx.waker()) => {}
            _ => ready.parent = Some(cx.waker().clone()),
        }
    }

    /// The connection's poll ends; `true` when calls were woken after its last pass (it must
    /// come back for them).
    pub(super) fn end(&self) -> bool {
        let mut ready = self.ready.lock();
        ready.polling = false;
        !ready.ids.is_empty()
    }

    /// Polls each call woken since the last pass, once. `done` hears of each call that finished:
    /// `Err` when it panicked (its future is already dropped).
    pub(super) fn poll(&mut self, mut done: impl FnMut(u32, Result<(), Panicked>)) {
        if self.calls.is_empty() {
            // Ids left by calls already gone are dropped by the next pass that has calls.
            return;
        }
        {
            let mut ready = self.ready.lock();
            if ready.ids.is_empty() {
                return;
            }
            std::mem::swap(&mut ready.ids, &mut self.pass);
        }
        for call_id in self.pass.drain(..) {
            let Some(local) = self.calls.get_mut(&call_id) else {
                continue; // Finished or cancelled since it was woken.
            };
            local.flag.queued.store(false, Ordering::Release);
            let mut cx = Context::from_waker(&local.waker);
            if let Poll::Ready(result) = poll_caught(local.future.as_mut(), &mut cx) {
                drop_caught(self.calls.remove(&call_id));
                done(call_id, result);
            }
        }
    }
}

impl Drop for LocalCalls {
    /// Each call dropped on its own, a panic in its drop caught (the connection dropped from
    /// outside: the server aborted it, or its grace period ran out).
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wake_count::counting_waker;
    use std::sync::atomic::AtomicUsize;

    /// A future that counts its polls and wakes itself every time: never done.
    fn spinner(polls: Arc<AtomicUsize>) -> LocalFuture {
        Box::pin(std::future::poll_fn(move |cx| {
            polls.fetch_add(1, Ordering::SeqCst);
            cx.waker().wake_by_ref();
            Poll::Pending
        }))
    }

    #[test]
    fn a_call_that_wakes_itself_is_polled_once_per_pass() {
        let (parent, waker) = counting_waker();
        let cx = Context::from_waker(&waker);
        let mut calls = LocalCalls::default();
        let polls = Arc::new(AtomicUsize::new(0));
        calls.insert(1, spinner(Arc::clone(&polls)));
        let other = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&other);
        calls.insert(
            3,
            Box::pin(async move {
                counted.fetch_add(1, Ordering::SeqCst);
            }),
        );
        let mut finished = Vec::new();
        for pass in 1..=3 {
            calls.begin(&cx);
            calls.poll(|id, result| finished.push((id, result.is_ok())));
            // The spinner woke itself during the pass: the connection must come back, after
            // yielding, rather than poll it again now.
            assert!(calls.end(), "pass {pass}: the spinner is ready again");
            assert_eq!(polls.load(Ordering::SeqCst), pass, "one poll per pass");
        }
        assert_eq!(other.load(Ordering::SeqCst), 1);
        assert_eq!(finished, vec![(3, true)]);
        // Wake-ups during a pass do not wake the connection: it looks at `end` instead.
        assert_eq!(parent.count(), 0);
        assert_eq!(calls.len(), 1);
    }

    #[test]
    fn a_wake_outside_a_pass_wakes_the_connection_once() {
        let (parent, waker) = counting_waker();
        let cx = Context::from_waker(&waker);
        let mut calls = LocalCalls::default();
        let (tx, rx) = std::sync::mpsc::channel::<Waker>();
        let mut tx = Some(tx);
        calls.insert(
            7,
            Box::pin(std::future::poll_fn(move |cx| match tx.take() {
                Some(tx) => {
                    let _ = tx.send(cx.waker().clone());
                    Poll::Pending
                }
                None => Poll::Ready(()),
            })),
        );
        calls.begin(&cx);
        calls.poll(|_, _| {});
        assert!(!calls.end(), "nothing woke it yet");
        let call = rx.recv().expect("the call's waker");
        call.wake_by_ref();
        call.wake_by_ref();
        assert_eq!(parent.count(), 1, "woken once, not twice");
        let mut finished = Vec::new();
        calls.begin(&cx);
        calls.poll(|id, result| finished.push((id, result.is_ok())));
        assert!(!calls.end());
        assert_eq!(finished, vec![(7, true)]);
        assert_eq!(calls.len(), 0);
    }

    #[test]
    fn calls_opened_and_cancelled_between_passes_leave_no_ids_behind() {
        let (_parent, waker) = counting_waker();
        let cx = Context::from_waker(&waker);
        let mut calls = LocalCalls::default();
        // A read's worth of streams opened and cancelled, then the pass (with no call left),
        // read after read.
        for read in 0..100u32 {
            calls.begin(&cx);
            for i in 0..100 {
                let id = read * 100 + i;
                calls.insert(id, Box::pin(std::future::pending()));
                assert!(calls.remove(id));
            }
            calls.poll(|_, _| unreachable!("no call is left to poll"));
            calls.end();
        }
        let ready = calls.ready.lock();
        assert!(
            ready.ids.len() <= 1 && ready.ids.capacity() < 100,
            "{} ids kept ({} places) for 10,000 calls gone",
            ready.ids.len(),
            ready.ids.capacity()
        );
    }

    #[test]
    fn a_call_that_panics_as_it_is_dropped_is_dropped_alone() {
        struct Bomb(Arc<AtomicUsize>);
        impl Drop for Bomb {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
                std::panic::resume_unwind(Box::new("dropped"));
            }
        }
        let dropped = Arc::new(AtomicUsize::new(0));
        let bomb = |dropped: &Arc<AtomicUsize>| -> LocalFuture {
            let bomb = Bomb(Arc::clone(dropped));
            Box::pin(async move {
                let _bomb = bomb;
                std::future::pending::<()>().await;
            })
        };
        let mut calls = LocalCalls::default();
        for id in 1..=4 {
            calls.insert(id, bomb(&dropped));
        }
        // Cancelled; then the connection closes; then it goes with two more.
        assert!(calls.remove(1));
        calls.clear();
        calls.insert(5, bomb(&dropped));
        calls.insert(6, bomb(&dropped));
        drop(calls);
        assert_eq!(dropped.load(Ordering::SeqCst), 6);
    }

    #[test]
    fn a_panicking_call_is_reported_and_removed_and_cancel_drops_by_id() {
        let (_parent, waker) = counting_waker();
        let cx = Context::from_waker(&waker);
        let mut calls = LocalCalls::default();
        calls.insert(
            1,
            Box::pin(async {
                panic!("handler bug");
            }),
        );
        calls.insert(2, Box::pin(std::future::pending()));
        let mut finished = Vec::new();
        calls.begin(&cx);
        calls.poll(|id, result| finished.push((id, result.is_ok())));
        calls.end();
        assert_eq!(finished, vec![(1, false)]);
        assert_eq!(calls.len(), 1);
        assert!(calls.remove(2));
        assert!(!calls.remove(2));
        assert_eq!(calls.len(), 0);
    }
}
