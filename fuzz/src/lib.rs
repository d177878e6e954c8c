//! What the fuzz binaries share beyond the target bodies: a heap meter.
//!
//! The parsers promise that a peer's announced lengths are checked before anything is
//! allocated, so the heap one input can take is bounded by the bytes it delivered, not by the
//! lengths it claims. [`Meter`] is a global allocator that tracks the peak of live heap bytes;
//! [`within_bound`] runs a target body and panics (a crash for libFuzzer) when the peak above
//! the starting point exceeds [`bound`].
//!
//! This needs `unsafe` (a `GlobalAlloc` impl), which the main workspace forbids; it lives here,
//! in the fuzz crate, and the stable corpus replay does not measure the heap.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting live bytes and their peak.
pub struct Meter;

// SAFETY: every call is forwarded unchanged to `System`; the counters only observe sizes.
unsafe impl GlobalAlloc for Meter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        new
    }
}

fn grew(size: usize) {
    let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

/// Heap one input of `len` bytes may take: a fixed allowance for the harness plus a multiple of
/// the input (decoded frames and metadata entries are larger than their wire form). A size
/// taken from an announced length (up to 64 MiB for a skippable MESSAGE, 80 KiB for a control
/// frame) instead of from delivered bytes breaks it for small inputs.
pub fn bound(len: usize) -> usize {
    16 * 1024 + 64 * len
}

/// Runs `body(data)` and panics if the heap it took at its peak exceeds [`bound`].
/// Only meaningful in a binary whose `#[global_allocator]` is [`Meter`].
pub fn within_bound(data: &[u8], body: fn(&[u8])) {
    let start = LIVE.load(Ordering::Relaxed);
    PEAK.store(start, Ordering::Relaxed);
    body(data);
    let took = PEAK.load(Ordering::Relaxed).saturating_sub(start);
    let bound = bound(data.len());
    assert!(
        took <= bound,
        "an input of {} bytes took {took} bytes of heap (bound {bound})",
        data.len()
    );
}
