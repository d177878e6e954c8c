//! A waker that counts its wake-ups, for the unit tests of code that wakes tasks (the room
//! queue, the server's local calls, the UDP answer slots): one definition instead of one per
//! test module.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Wake, Waker};

/// Counts the wake-ups of the wakers made by [`counting_waker`].
pub(crate) struct WakeCount(AtomicUsize);

impl WakeCount {
    /// Wake-ups so far.
    pub(crate) fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Wake for WakeCount {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A waker, and the count of its wake-ups.
pub(crate) fn counting_waker() -> (Arc<WakeCount>, Waker) {
    let count = Arc::new(WakeCount(AtomicUsize::new(0)));
    (Arc::clone(&count), Waker::from(count))
}
