//! What an entry holds and counts: its answer copied into storage of its own, and its size for
//! the cache's byte bound (with a fixed overhead that covers the entry itself).

use bytes::Bytes;
use sockrpc_protocol::{Response, Status};

/// The answer with every byte in storage of its own, as the cache keeps it: a message cut from
/// a shared chunk (the encoder's arena), or metadata sliced from a request, would keep that whole
/// buffer alive for as long as the entry lives, beyond what [`answer_size`] counts.
pub(super) fn owned(answer: Result<Response<Bytes>, Status>) -> Result<Response<Bytes>, Status> {
    match answer {
        Ok(mut response) => {
            response.metadata_mut().unshare();
            response.trailers_mut().unshare();
            let message = response.get_mut();
            *message = Bytes::copy_from_slice(message);
            Ok(response)
        }
        Err(mut status) => {
            status.metadata_mut().unshare();
            if !status.details().is_empty() {
                let details = Bytes::copy_from_slice(status.details());
                status.set_details(details);
            }
            Err(status)
        }
    }
}

/// Bytes every entry counts beyond its answer: its key and slot in the map (the slot with the
/// address it keeps), its control byte there, and its record in the eviction order, so a flood
/// of empty answers does not look free. (A flat 128 until session 41, less than an entry took in
/// the map alone: 224 bytes with the address.)
pub(super) const ENTRY_OVERHEAD: usize = std::mem::size_of::<(super::Key, super::Slot)>()
    + 1
    + std::mem::size_of::<(super::Key, std::time::Instant)>();

/// Bytes an answer holds, for the byte bound.
pub(super) fn answer_size(answer: &Result<Response<Bytes>, Status>) -> usize {
    let metadata = |m: &sockrpc_protocol::MetadataMap| {
        m.iter().map(|(k, v)| k.len() + v.len() + 8).sum::<usize>()
    };
    // A fixed overhead per entry keeps a flood of empty answers from looking free.
    ENTRY_OVERHEAD
        + match answer {
            Ok(r) => r.get_ref().len() + metadata(r.metadata()) + metadata(r.trailers()),
            Err(s) => s.message().len() + s.details().len() + metadata(s.metadata()),
        }
}
