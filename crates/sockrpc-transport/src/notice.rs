//! `Notice`: a future polled with a waker of ours, which notes that it woke before it wakes the
//! task, so the task can tell on each wake-up, with one atomic load, whether that future has
//! anything to say.
//!
//! Why: a connection's task wakes for every read batch, and polling the futures it also waits
//! on (its timer, the server's shutdown signal) on each wake-up costs locks and registrations
//! every call pays for: about 200 instructions for a `Sleep`, and a mutex taken and released
//! (two locked instructions) to ask a `CancellationToken` whether it was cancelled. With a
//! `Notice` they are polled again only after they woke the task, or when the task's waker
//! changed.

use std::{
    future::Future,
    pin::Pin,
    sync::atomic::{AtomicBool, Ordering},
    sync::{Arc, Mutex},
    task::{Context, Poll, Wake, Waker},
};

/// The waker a noticed future is polled with: notes the wake-up, then wakes the task.
#[derive(Default)]
struct Noted {
    woke: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for Noted {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woke.store(true, Ordering::Release);
        let task = match self.task.lock() {
            Ok(task) => task.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        if let Some(task) = task {
            task.wake();
        }
    }
}

/// Polls one future at a time on behalf of a task. See the module docs.
pub(crate) struct Notice {
    noted: Arc<Noted>,
    /// `noted` as a waker, made once.
    waker: Waker,
    /// The task waker `noted` wakes (kept here too, to compare without the lock).
    task: Option<Waker>,
}

impl Notice {
    /// A notice for a future not polled yet.
    pub(crate) fn new() -> Notice {
        let noted = Arc::new(Noted::default());
        Notice {
            waker: Waker::from(Arc::clone(&noted)),
            noted,
            task: None,
        }
    }

    /// Whether the future must be polled for `cx`'s task: it woke since its last poll, or it
    /// was last polled for another task (or never).
    #[inline]
    pub(crate) fn needs_poll(&self, cx: &Context<'_>) -> bool {
        !self.same_task(cx) || self.noted.woke.load(Ordering::Acquire)
    }

    /// Forgets the task: the next [`needs_poll`](Self::needs_poll) says yes. For after the
    /// future was polled some other way (with the task's own waker), which the notice did not
    /// see and whose wake-up it would not note.
    pub(crate) fn forget(&mut self) {
        self.task = None;
    }

    fn same_task(&self, cx: &Context<'_>) -> bool {
        self.task.as_ref().is_some_and(|w| w.will_wake(cx.waker()))
    }

    /// Polls `future` so that its wake-up is noted, then wakes `cx`'s task.
    pub(crate) fn poll<F: Future + ?Sized>(
        &mut self,
        future: Pin<&mut F>,
        cx: &mut Context<'_>,
    ) -> Poll<F::Output> {
        if !self.same_task(cx) {
            let task = cx.waker().clone();
            match self.noted.task.lock() {
                Ok(mut slot) => *slot = Some(task.clone()),
                Err(poisoned) => *poisoned.into_inner() = Some(task.clone()),
            }
            self.task = Some(task);
        }
        // Cleared before the poll: a wake-up from here on sets it again.
        self.noted.woke.store(false, Ordering::Release);
        future.poll(&mut Context::from_waker(&self.waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_wake_up_is_noted_and_reaches_the_task() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        let mut notice = Notice::new();
        let notify = Arc::new(tokio::sync::Notify::new());
        let mut notified = Box::pin(Arc::clone(&notify).notified_owned());
        assert!(notice.needs_poll(&cx), "never polled");
        assert!(notice.poll(notified.as_mut(), &mut cx).is_pending());
        assert!(!notice.needs_poll(&cx), "polled, and nothing woke it");
        notify.notify_waiters();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "the task was woken");
        assert!(notice.needs_poll(&cx), "the wake-up was noted");
        assert!(notice.poll(notified.as_mut(), &mut cx).is_ready());
    }

    #[tokio::test]
    async fn another_task_must_poll_again() {
        let first = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        let second = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        let mut notice = Notice::new();
        let mut pending = std::future::pending::<()>();
        let mut pending = Pin::new(&mut pending);
        assert!(notice
            .poll(pending.as_mut(), &mut Context::from_waker(&first))
            .is_pending());
        assert!(!notice.needs_poll(&Context::from_waker(&first)));
        assert!(notice.needs_poll(&Context::from_waker(&second)));
        notice.forget();
        assert!(notice.needs_poll(&Context::from_waker(&first)), "forgotten");
    }
}
