//! What the requests of the calls running on a connection hold, as counted against its budget
//! (`Limits::max_running_requests_size`, `call.rs`): each request's own bytes, and the read
//! buffers their messages were sliced from, each buffer once.
//!
//! Why the buffers: a unary request's message is a slice of the connection's read buffer (no
//! copy: the common case costs nothing), and while its handler waits it keeps that buffer's
//! whole allocation alive: up to 32 KiB (`reader::GROWN`), or four times its size. Counted at
//! its own size, 4,000 requests of 100 bytes, each read right after a 12,000-byte frame for a
//! call never opened (so each in a buffer of its own, about 18 KiB), were all taken under an
//! 8 MiB budget and grew the server by 72 MiB; counted so, 3,494 of them are refused and it
//! grows by 8 MiB (`tests/hostile/pinned_budget.rs`). Past the budget a new call is refused
//! `RESOURCE_EXHAUSTED`, as for every other request this budget counts.
//! Counting each request at its buffer's size instead would count a buffer that hundreds of
//! small requests share hundreds of times, and a modest budget would refuse an honest client:
//! so a buffer counts once, while any request sliced from it runs (`region.rs` tells them
//! apart), and a message sliced from one counts the buffer instead of its own bytes.
//!
//! Only a call whose handler waits (or whose answer streams) is counted: the 64-byte unary
//! call answered on its first poll never gets here.

use super::respond::Shared;
use foldhash::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The read buffers that running requests were sliced from, by region id: how many requests
/// hold each, and its size (counted in `Shared::running_held` while any does).
#[derive(Debug, Default)]
pub(super) struct Buffers(HashMap<u64, (usize, usize)>);

/// One running call's request, counted in `Shared::running_held` until the call's task ends
/// (answered, cancelled or dropped with its connection).
pub(super) struct RunningCharge {
    shared: Arc<Shared>,
    bytes: usize,
    /// The read buffer its message was sliced from (region id), counted once for all.
    buffer: Option<u64>,
}

impl RunningCharge {
    /// Counts `bytes` of a request; with `buffer`, the read buffer (region id and size) its
    /// message of `message` bytes was sliced from, which counts instead of those bytes.
    pub(super) fn new(
        shared: Arc<Shared>,
        bytes: usize,
        buffer: Option<((u64, usize), usize)>,
    ) -> RunningCharge {
        let (bytes, buffer) = match buffer {
            Some(((id, size), message)) => {
                let mut buffers = shared.buffers();
                let (holders, _) = buffers.0.entry(id).or_insert((0, size));
                if *holders == 0 {
                    shared.running_held.fetch_add(size, Ordering::Relaxed);
                }
                *holders += 1;
                (bytes.saturating_sub(message), Some(id))
            }
            None => (bytes, None),
        };
        shared.running_held.fetch_add(bytes, Ordering::Relaxed);
        RunningCharge {
            shared,
            bytes,
            buffer,
        }
    }
}

impl Drop for RunningCharge {
    fn drop(&mut self) {
        self.shared
            .running_held
            .fetch_sub(self.bytes, Ordering::Relaxed);
        let Some(id) = self.buffer else {
            return;
        };
        let mut buffers = self.shared.buffers();
        if let Some((holders, size)) = buffers.0.get_mut(&id) {
            *holders -= 1;
            if *holders == 0 {
                let size = *size;
                buffers.0.remove(&id);
                self.shared.running_held.fetch_sub(size, Ordering::Relaxed);
            }
        }
    }
}
