//! Large message buffers are recycled, not given back to the allocator after each message.
//!
//! A buffer of 128 KiB or more is, with glibc's allocator, a mapping of its own or the top of
//! a heap that is trimmed when freed: the next one is fresh memory, and every 4 KiB page of it
//! costs a page fault when first written. A 1 MiB echo took about 500 faults per round trip
//! (`perf stat -e page-faults`), which cost more CPU than the copies themselves, and how
//! many depended on the allocator's adaptive thresholds, so the same build ran fast or twice as
//! slow from one run to the next.
//!
//! Here an encoded large message and a reassembled split message take their buffer from a
//! small process-wide pool of free buffers, and a [`Bytes`] made by [`freeze`] puts its buffer
//! back when the last view of it is dropped, on whatever thread that is:
//!
//! ```text
//!  take(1.1 MiB) ──▶ class 1.25 MiB: a free one, or a new one
//!       │ encode / assemble
//!  freeze(vec) ──▶ Bytes ──▶ socket, handler, decoder (slices of it)
//!       │ last view dropped
//!  give_back ──▶ free list of class 1.25 MiB (unless the pool is full: then freed)
//! ```
//!
//! Capacities are rounded up to classes a quarter apart within each power of two (128, 160,
//! 192, 224, 256, 320 KiB, …), so a buffer holds at most a quarter more than it was asked for.
//! What the pool holds is bounded: at most [`POOL_BYTES`] in free buffers, at most
//! [`PER_CLASS`] of one class, none above [`LARGEST_POOLED`]. Buffers in use are the
//! messages themselves, counted by whoever holds them as before.

use bytes::Bytes;
use std::sync::{Mutex, PoisonError};

/// The smallest capacity pooled: below it, glibc serves allocations from its per-thread caches
/// and bins without touching fresh pages.
pub const SMALLEST_POOLED: usize = 128 * 1024;
/// The largest capacity pooled; larger buffers are allocated and freed as they come.
pub const LARGEST_POOLED: usize = 64 * 1024 * 1024;
/// Free buffers the pool keeps at most, in bytes of capacity.
pub const POOL_BYTES: usize = 32 * 1024 * 1024;
/// Free buffers of one class the pool keeps at most.
pub const PER_CLASS: usize = 4;

/// Classes: 4 per power of two from 128 KiB to 64 MiB.
const CLASSES: usize = 4 * 9 + 1;

struct Pool {
    free: [Vec<Vec<u8>>; CLASSES],
    bytes: usize,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    free: [const { Vec::new() }; CLASSES],
    bytes: 0,
});

/// The class of a buffer asked to hold `len` bytes, and that class's capacity; `None` outside
/// the pooled range.
fn class_of(len: usize) -> Option<(usize, usize)> {
    if !(SMALLEST_POOLED..=LARGEST_POOLED).contains(&len) {
        return None;
    }
    // The power of two at or below `len`, and the quarter of it that classes step by.
    let power = usize::BITS - 1 - len.leading_zeros();
    let step = 1usize << (power - 2);
    let quarters = len.div_ceil(step); // 4..=8
    let capacity = quarters * step;
    let index = (power as usize - SMALLEST_POOLED.trailing_zeros() as usize) * 4 + quarters - 4;
    Some((index, capacity))
}

/// An empty buffer with room for at least `len` bytes: a free one of `len`'s class when the
/// pool has one, else a new one of the class's capacity (exactly `len` outside the pooled
/// range).
pub fn take(len: usize) -> Vec<u8> {
    let Some((index, capacity)) = class_of(len) else {
        return Vec::with_capacity(len);
    };
    let reused = {
        let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
        let reused = pool.free[index].pop();
        if reused.is_some() {
            pool.bytes -= capacity;
        }
        reused
    };
    reused.unwrap_or_else(|| Vec::with_capacity(capacity))
}

/// Gives a buffer back to the pool (emptied), or to the allocator when it is not of a class's
/// capacity or the pool is full.
pub fn give_back(mut buf: Vec<u8>) {
    let capacity = buf.capacity();
    let Some((index, class)) = class_of(capacity) else {
        return;
    };
    if class != capacity {
        return;
    }
    buf.clear();
    let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
    if pool.free[index].len() < PER_CLASS && pool.bytes + capacity <= POOL_BYTES {
        pool.bytes += capacity;
        pool.free[index].push(buf);
    }
    // Otherwise `buf` is freed here, after the lock (dropped last).
}

/// `buf`'s bytes as [`Bytes`]; a pooled buffer goes back to the pool when the last view of it
/// is dropped.
pub fn freeze(buf: Vec<u8>) -> Bytes {
    if pooled(buf.capacity()) {
        Bytes::from_owner(Recycled(buf))
    } else {
        Bytes::from(buf)
    }
}

/// Whether a buffer of `capacity` goes back to the pool: its capacity is a class's.
fn pooled(capacity: usize) -> bool {
    class_of(capacity).is_some_and(|(_, class)| class == capacity)
}

/// The owner of a frozen pooled buffer.
struct Recycled(Vec<u8>);

impl AsRef<[u8]> for Recycled {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        give_back(std::mem::take(&mut self.0));
    }
}

/// Free bytes the pool holds now (for tests and metrics).
pub fn pooled_bytes() -> usize {
    POOL.lock().unwrap_or_else(PoisonError::into_inner).bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_a_quarter_apart_and_cover_the_range() {
        assert_eq!(class_of(SMALLEST_POOLED - 1), None);
        assert_eq!(class_of(SMALLEST_POOLED), Some((0, 128 * 1024)));
        assert_eq!(class_of(128 * 1024 + 1), Some((1, 160 * 1024)));
        assert_eq!(class_of(256 * 1024), Some((4, 256 * 1024)));
        assert_eq!(class_of((1 << 20) + 5), Some((13, 1280 * 1024)));
        assert_eq!(
            class_of(LARGEST_POOLED),
            Some((CLASSES - 1, LARGEST_POOLED))
        );
        assert_eq!(class_of(LARGEST_POOLED + 1), None);
        // Every length maps to a class that holds it, at most a quarter larger.
        let mut len = SMALLEST_POOLED;
        while len <= LARGEST_POOLED {
            let (index, capacity) = class_of(len).expect("in range");
            assert!(index < CLASSES && capacity >= len && capacity - len <= len / 4);
            len = len * 9 / 8 + 1;
        }
    }

    #[test]
    fn a_frozen_buffer_comes_back_and_is_reused() {
        // A class no other test of this binary uses: the pool is process-wide.
        let len = 3 * 1024 * 1024 + 7;
        let mut buf = take(len);
        assert!(buf.capacity() >= len);
        buf.extend_from_slice(&vec![5u8; len]);
        let ptr = buf.as_ptr();
        let bytes = freeze(buf);
        let view = bytes.slice(10..20);
        drop(bytes);
        // A view still holds it: not back yet.
        let other = take(len);
        assert_ne!(other.as_ptr(), ptr);
        give_back(other);
        assert_eq!(&view[..], &[5u8; 10]);
        drop(view);
        // Back now, and handed out again, empty.
        let again = take(len);
        let second = take(len);
        assert!(again.as_ptr() == ptr || second.as_ptr() == ptr);
        assert!(again.is_empty() && second.is_empty());
    }

    #[test]
    fn only_class_capacities_are_pooled() {
        let small = take(1000);
        assert!(small.capacity() >= 1000 && small.capacity() < SMALLEST_POOLED);
        assert!(!pooled(small.capacity()));
        assert!(!pooled(200 * 1024 + 1));
        assert!(pooled(take(200 * 1024 + 1).capacity()));
        assert!(!pooled(LARGEST_POOLED * 2));
    }
}
