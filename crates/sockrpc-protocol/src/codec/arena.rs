//! Small encoded messages share larger buffers instead of taking an allocation each.
//!
//! Encoding a message used to allocate a buffer of its exact size: one `malloc` and one `free`
//! per message, on both sides of every call (two of the three allocations of a unary round
//! trip). Here a thread keeps one chunk and cuts each small message off it; the pieces are
//! reference-counted views of the chunk, so when the last piece of a chunk is dropped, the chunk
//! is reused in place, and otherwise a new chunk is taken. A 64-byte echo then costs about one
//! allocation per hundred messages.
//!
//! What it holds: a piece keeps its whole chunk alive, so a message kept long (a request held
//! for a retry while its call is in flight) holds at most [`CHUNK`] bytes, never more; messages
//! over [`LARGEST`] bytes get a buffer of their own (a recycled one from 128 KiB:
//! [`recycle`]).

use super::recycle;
use crate::Status;
use bytes::{Bytes, BytesMut};
use std::cell::RefCell;

/// Bytes taken at a time for small messages.
pub const CHUNK: usize = 8 * 1024;
/// Largest encoded size (by the codec's estimate) cut off a shared chunk: a 4 KiB message with
/// its field headers still is, so it costs no allocation of its own either (a buffer of over
/// 1 KiB takes the allocator's slow path, past its per-thread cache). A piece that large keeps
/// at most twice its size alive; any piece keeps at most one [`CHUNK`].
pub const LARGEST: usize = 4 * 1024 + 256;

thread_local! {
    static ARENA: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// Runs `encode` into a buffer with at least `hint` bytes free and returns what it wrote: a
/// piece of this thread's chunk when `hint` is small and known, a buffer of its own otherwise.
pub(crate) fn encode_with(
    hint: usize,
    encode: impl FnOnce(&mut BytesMut) -> Result<(), Status>,
) -> Result<Bytes, Status> {
    if hint == 0 || hint > LARGEST {
        return fresh(hint, encode);
    }
    ARENA.with(|cell| {
        // Re-entered (an encoder that encodes): the inner one takes a buffer of its own.
        let Ok(mut arena) = cell.try_borrow_mut() else {
            return fresh(hint, encode);
        };
        if arena.capacity() - arena.len() < hint {
            // Reuses the chunk in place when every piece cut from it is gone.
            arena.reserve(CHUNK);
        }
        match encode(&mut arena) {
            Ok(()) => Ok(arena.split().freeze()),
            Err(status) => {
                arena.clear();
                Err(status)
            }
        }
    })
}

/// A copy of `bytes`: a piece of this thread's chunk when it is small, a buffer of its own
/// otherwise. For bytes that must outlive the buffer they were read into (a datagram's answer,
/// out of a receive buffer that is reused).
pub fn copy(bytes: &[u8]) -> Bytes {
    // The closure cannot fail.
    encode_with(bytes.len(), |buf| {
        buf.extend_from_slice(bytes);
        Ok(())
    })
    .unwrap_or_else(|_| Bytes::copy_from_slice(bytes))
}

fn fresh(
    hint: usize,
    encode: impl FnOnce(&mut BytesMut) -> Result<(), Status>,
) -> Result<Bytes, Status> {
    if hint < recycle::SMALLEST_POOLED {
        let mut buf = BytesMut::with_capacity(hint);
        encode(&mut buf)?;
        return Ok(buf.freeze());
    }
    // A large message: a recycled buffer (see `recycle`), which goes back to the pool when the
    // message is dropped. Turning it into a `BytesMut` and back copies nothing.
    let mut buf = BytesMut::from(Bytes::from(recycle::take(hint)));
    match encode(&mut buf) {
        Ok(()) => Ok(recycle::freeze(Vec::from(buf))),
        Err(status) => {
            recycle::give_back(Vec::from(buf));
            Err(status)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(bytes: &[u8]) -> impl FnOnce(&mut BytesMut) -> Result<(), Status> + '_ {
        move |buf| {
            buf.extend_from_slice(bytes);
            Ok(())
        }
    }

    #[test]
    fn pieces_are_independent_and_exact() {
        let a = encode_with(3, put(b"abc")).expect("a");
        let b = encode_with(5, put(b"defgh")).expect("b");
        assert_eq!((&a[..], &b[..]), (&b"abc"[..], &b"defgh"[..]));
        // A message longer than its hint still comes out whole.
        let long = encode_with(2, put(&[7; 3000])).expect("long");
        assert_eq!(long.len(), 3000);
        assert!(long.iter().all(|&x| x == 7));
        assert_eq!(&a[..], b"abc", "earlier pieces are untouched");
    }

    #[test]
    fn copies_are_exact_whatever_their_size() {
        for len in [0, 1, 64, LARGEST, LARGEST + 1, CHUNK + 1] {
            let src: Vec<u8> = (0..len).map(|i| i as u8).collect();
            assert_eq!(&copy(&src)[..], &src[..], "{len} bytes");
        }
    }

    #[test]
    fn a_large_message_reuses_the_buffer_of_one_dropped() {
        // A size class no other test of this binary uses (the pool is process-wide).
        let len = 5 * 1024 * 1024 + 3;
        let first = encode_with(len, put(&vec![1u8; len])).expect("first");
        let at = first.as_ptr();
        drop(first);
        let second = encode_with(len, put(&vec![2u8; len])).expect("second");
        assert_eq!(second.as_ptr(), at, "a new buffer, not the recycled one");
        assert!(second.len() == len && second.iter().all(|&b| b == 2));
    }

    #[test]
    fn a_failed_encode_leaves_nothing_behind() {
        let failed = encode_with(4, |buf| {
            buf.extend_from_slice(b"half");
            Err(Status::internal("no"))
        });
        assert!(failed.is_err());
        let next = encode_with(2, put(b"ok")).expect("next");
        assert_eq!(&next[..], b"ok");
    }

    #[test]
    fn large_and_unknown_sizes_get_buffers_of_their_own() {
        let big = encode_with(LARGEST + 1, put(&[1; LARGEST + 1])).expect("big");
        assert_eq!(big.len(), LARGEST + 1);
        let unknown = encode_with(0, put(b"?")).expect("unknown");
        assert_eq!(&unknown[..], b"?");
    }

    #[test]
    fn a_nested_encode_does_not_panic() {
        let outer = encode_with(8, |buf| {
            let inner = encode_with(4, put(b"in")).expect("inner");
            buf.extend_from_slice(&inner);
            buf.extend_from_slice(b"out");
            Ok(())
        })
        .expect("outer");
        assert_eq!(&outer[..], b"inout");
    }

    #[test]
    fn many_small_messages_stay_correct_across_chunks() {
        let mut kept = Vec::new();
        for i in 0..5_000u32 {
            let bytes = i.to_be_bytes();
            let piece = encode_with(4, put(&bytes)).expect("piece");
            assert_eq!(&piece[..], &bytes);
            if i % 97 == 0 {
                kept.push((i, piece));
            }
        }
        for (i, piece) in kept {
            assert_eq!(&piece[..], &i.to_be_bytes());
        }
    }
}
