//! `Region`: the allocation a read buffer reads into now, so that what a held frame keeps
//! alive can be counted, once per allocation.
//!
//! Why: a frame sliced from the read buffer keeps its whole allocation alive (up to 32 KiB,
//! `reader::GROWN`, or four times the frame), while what holds it counts the frame's own bytes.
//! A server's unary request whose handler waits is counted against the connection's budget of
//! running requests (`server/held.rs`): counted at its own size, 4,096 requests of 100 bytes,
//! each cut from a buffer of its own, held 128 MiB uncounted. Counting each request at its
//! allocation's size would count a buffer shared by hundreds of small requests hundreds of
//! times; an id per allocation lets it be counted once.
//!
//! An allocation is told apart by its address and size: the buffer reads into another (or
//! reuses the one it had, grown or reclaimed once nothing held it) when its data no longer
//! starts where it did or its allocation no longer ends where it did. A frame
//! lies in the current allocation's address range exactly when it was sliced from it: a frame
//! copied out, or a split message put together in a buffer of its own, lies elsewhere. An empty
//! body is told by the byte before it: one that ends the allocation points one past it, and was
//! counted as its path alone while it kept 16 KiB (`tests/hostile/pinned_budget.rs`).

use bytes::BytesMut;

/// The allocation a read buffer reads into: an id, new with each allocation, and its address
/// range.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Region {
    id: u64,
    start: usize,
    end: usize,
}

impl Region {
    /// The region of `buf`, a fresh buffer (its data starts where its allocation does).
    pub(crate) fn of(buf: &BytesMut) -> Region {
        let mut region = Region::default();
        region.renew(buf);
        region
    }

    /// `buf` reads into an allocation of its own now, its data at its start: a new region.
    pub(crate) fn renew(&mut self, buf: &BytesMut) {
        let start = buf.as_ptr() as usize;
        *self = Region {
            id: self.id.wrapping_add(1),
            start,
            end: start.saturating_add(buf.capacity()),
        };
    }

    /// After `buf` made room (`reserve`, `extend_from_slice`, `try_reclaim`): the same region
    /// when nothing changed, a new one otherwise: another allocation, or this one grown in
    /// place or reclaimed (its data moved back to its start).
    ///
    /// Pointer equality alone does not tell the same allocation: a buffer read to the end of
    /// its allocation points one past it, where an allocator with no headers between blocks
    /// may place the next one, which was then counted as the old one. An allocation reused
    /// counts again under its new id: it could be reused only once nothing held it, and the
    /// requests sliced from it before, still counted under the old id, hold what they decoded
    /// from it instead.
    pub(crate) fn after_growing(&mut self, before: usize, buf: &BytesMut) {
        let at = buf.as_ptr() as usize;
        if at != before || at.saturating_add(buf.capacity()) != self.end {
            self.renew(buf);
        }
    }

    /// The id and size of this allocation, when `body` (its address and length) was sliced
    /// from it. An empty body is told by the byte before it (its frame's): sliced from the end
    /// of the allocation, it points one past it, and keeps it alive all the same.
    pub(crate) fn holding(&self, body: usize, len: usize) -> Option<(u64, usize)> {
        let byte = if len == 0 { body.wrapping_sub(1) } else { body };
        (self.start <= byte && byte < self.end).then_some((self.id, self.end - self.start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slice_is_in_its_allocation_and_a_copy_or_a_new_allocation_is_not() {
        let mut buf = BytesMut::with_capacity(1024);
        buf.extend_from_slice(&[7; 600]);
        let mut region = Region::of(&buf);
        let first = buf.split_to(100).freeze();
        let (id, size) = region
            .holding(first.as_ptr() as usize, first.len())
            .expect("sliced");
        assert!(size >= 1024);
        let copied = bytes::Bytes::copy_from_slice(&buf.split_to(100));
        assert_eq!(
            region.holding(copied.as_ptr() as usize, copied.len()),
            None,
            "copied out"
        );
        // `first` holds the allocation: room for more is a new one.
        let before = buf.as_ptr() as usize;
        buf.reserve(4096);
        region.after_growing(before, &buf);
        let second = buf.split_to(100).freeze();
        let (again, _) = region
            .holding(second.as_ptr() as usize, second.len())
            .expect("sliced");
        assert_ne!(again, id, "another allocation");
        assert_eq!(
            region.holding(first.as_ptr() as usize, first.len()),
            None,
            "not the current one"
        );
    }

    #[test]
    fn an_allocation_starting_where_the_last_one_ended_is_another() {
        // The buffer read to the very end of its allocation (its data pointer one past it) and
        // took a new one: an allocator with no headers between blocks may place it right there.
        // Two halves of one allocation stand for the two blocks.
        let mut whole = BytesMut::with_capacity(2048);
        whole.resize(2048, 0);
        let mut next = whole.split_off(1024);
        let mut buf = whole;
        let mut region = Region::of(&buf);
        let last = buf.split_to(1024).freeze();
        let (id, _) = region
            .holding(last.as_ptr() as usize, last.len())
            .expect("sliced");
        let before = buf.as_ptr() as usize;
        next.clear();
        assert_eq!(
            next.as_ptr() as usize,
            before,
            "the next block starts there"
        );
        region.after_growing(before, &next);
        next.extend_from_slice(&[9; 100]);
        let request = next.split_to(100).freeze();
        let (other, size) = region
            .holding(request.as_ptr() as usize, request.len())
            .expect("sliced from the new one");
        assert_ne!(other, id, "another allocation counted as the last one");
        assert_eq!(size, 1024);
        assert_eq!(region.holding(last.as_ptr() as usize, last.len()), None);
    }

    #[test]
    fn an_empty_message_at_the_end_of_its_allocation_is_in_it() {
        // The decoder slices a body as the frame, its header then skipped: an empty one that
        // ends the allocation points one past it, and still keeps it alive.
        let mut buf = BytesMut::with_capacity(1024);
        let capacity = buf.capacity();
        buf.resize(capacity, 0);
        let region = Region::of(&buf);
        let mut body = buf.split_to(capacity).freeze();
        bytes::Buf::advance(&mut body, capacity);
        assert!(body.is_empty());
        assert!(
            region.holding(body.as_ptr() as usize, 0).is_some(),
            "an empty slice of the allocation not counted as it"
        );
    }
}
