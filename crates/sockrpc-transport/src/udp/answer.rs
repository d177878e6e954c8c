//! A UDP server's answer on its way out: the one message a datagram carries, and the buffer it
//! is encoded into (kept per thread between answers, so answering allocates nothing).

use crate::dispatch::OutboundBody;
use bytes::{Bytes, BytesMut};
use sockrpc_protocol::{Response, Status};

/// A call's answer as the cache and the datagram hold it: one message.
pub(super) type Answer = Result<Response<Bytes>, Status>;

thread_local! {
    /// The buffer answers are encoded into, kept between them: an answer is sent (copied into
    /// the kernel) before the next is encoded, so one per thread serves every answer.
    static SCRATCH: std::cell::Cell<BytesMut> = std::cell::Cell::new(BytesMut::new());
}

/// Largest buffer kept for the next answer.
const SCRATCH_KEPT: usize = 64 * 1024;

/// This thread's answer buffer, emptied, with room for `len` bytes. Taken out of the thread's
/// slot (a send may wait, and the task resume on another thread); [`give_back`] returns it.
pub(super) fn scratch(len: usize) -> BytesMut {
    let mut out = SCRATCH.take();
    out.clear();
    out.reserve(len);
    out
}

/// Keeps `out` for the next answer on this thread (a large one is dropped instead).
pub(super) fn give_back(out: BytesMut) {
    if out.capacity() <= SCRATCH_KEPT {
        SCRATCH.set(out);
    }
}

/// A handler's answer as a datagram carries it: one message (a streamed answer cannot go over
/// UDP).
pub(super) fn one_message<B: OutboundBody>(routed: Result<Response<B>, Status>) -> Answer {
    let (metadata, body, trailers) = routed?.into_parts();
    match body.into_once() {
        Ok(message) => Ok(Response::from_parts(metadata, message, trailers)),
        Err(_) => Err(Status::unimplemented(
            "streaming responses are not served over UDP",
        )),
    }
}
