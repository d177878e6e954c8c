//! A UDP server's answer on its way out: the one message a datagram carries, the buffer it is
//! encoded into (kept per thread between answers, so answering allocates nothing), and where it
//! goes (`ReplyTo`: the source, the address to answer from, the size the source may receive),
//! and the choice between REPLY and TRUNCATED that keeps an answer within the datagram size and
//! the no-amplification rule.

use super::bump;
use super::cache::HeldCall;
use super::datagram::{
    self, Cookie, Header, Kind, Reply, FLAG_FITS, FLAG_FOREIGN_INSTANCE, FLAG_NOT_PROCESSED,
    HEADER_LEN,
};
use super::outbox::Outbox;
use super::server::Shared;
use super::socket::transmit;
use crate::dispatch::OutboundBody;
use bytes::{Bytes, BytesMut};
use sockrpc_protocol::{frame, Code, Limits, Response, Status};
use std::net::{IpAddr, SocketAddr};

/// Why a call the reply cache has no room for did not run.
pub(super) const CACHE_FULL: &str = "the server's UDP reply cache is full; the call did not run";
/// Why a call of a source holding its share of the reply cache did not run.
pub(super) const OVER_CACHE_SHARE: &str =
    "this source holds its share of the server's UDP reply cache; the call did not run";
/// Why a call under a client instance whose watermark another address owns did not run.
pub(super) const OTHER_SOURCE: &str =
    "this UDP client instance belongs to another address; the call did not run";

/// A call's answer as the cache and the datagram hold it: one message.
pub(super) type Answer = Result<Response<Bytes>, Status>;

/// What became of an answer encoded for a datagram.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Encoded {
    /// The code a one-message answer was refused with, if it was.
    pub(super) refused: Option<Code>,
    /// It went out TRUNCATED: the client fetches it over TCP.
    pub(super) truncated: bool,
}

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

/// Why an answer of one message already compressed (a layer forwarding it as it arrived) did
/// not go over UDP: datagrams carry no encoding, and the transport cannot decompress it.
pub(super) const COMPRESSED_OVER_UDP: &str =
    "the answer's message is compressed, and answers over UDP go plain: not sent";

/// A handler's answer as a datagram carries it: one message, plain (a streamed answer cannot go
/// over UDP, nor a compressed one).
pub(super) fn one_message<B: OutboundBody>(routed: Result<Response<B>, Status>) -> Answer {
    let (metadata, body, trailers) = routed?.into_parts();
    let body = match body.into_once() {
        Ok(message) => return Ok(Response::from_parts(metadata, message, trailers)),
        Err(body) => body,
    };
    // One message still, only not plain (or read only through its wire form): the stream's
    // refusal would name the wrong cause.
    match body.into_once_flagged() {
        Ok((_, true)) => Err(Status::internal(COMPRESSED_OVER_UDP)),
        Ok((message, false)) => Ok(Response::from_parts(metadata, message, trailers)),
        Err(streamed) => {
            // Dropped as ended with what the client is told (`ending.rs`): a layer watching the
            // stream records `UNIMPLEMENTED`, not a cancel.
            crate::ending::drop_as(sockrpc_protocol::Code::Unimplemented, streamed);
            Err(Status::unimplemented(
                "streaming responses are not served over UDP",
            ))
        }
    }
}

/// Where and how an answer may go back.
#[derive(Clone, Copy)]
pub(super) struct ReplyTo {
    pub(super) addr: SocketAddr,
    /// The address to answer from: where the request was sent, when the socket is bound to a
    /// wildcard address (else the kernel's choice is that address anyway).
    pub(super) src_ip: Option<IpAddr>,
    /// `Some(n)`: the source has no valid cookie; nothing larger than `n` bytes may go to it.
    pub(super) size_limit: Option<usize>,
    pub(super) flags: u8,
    pub(super) cookie: Cookie,
    pub(super) instance: u64,
    pub(super) call_id: u32,
}

/// The header of a server datagram of `kind` going back to `to`.
pub(super) fn reply_header(kind: Kind, to: &ReplyTo) -> Header {
    Header {
        kind,
        flags: to.flags,
        client_instance: to.instance,
        call_id: to.call_id,
        cookie: to.cookie,
    }
}

/// Whether `ip` names one host (not a broadcast, multicast or unspecified address).
pub(super) fn is_unicast(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_broadcast() || v4.is_multicast() || v4.is_unspecified()),
        IpAddr::V6(v6) => !(v6.is_multicast() || v6.is_unspecified()),
    }
}

impl Shared {
    /// Queues the answer to a request of this batch (see [`encode_answer`](Self::encode_answer)).
    pub(super) fn queue_answer(
        &self,
        outbox: &mut Outbox,
        to: &ReplyTo,
        answer: &Answer,
    ) -> Encoded {
        let mut encoded = Encoded::default();
        outbox.push(to.addr, to.src_ip, |out| {
            encoded = self.encode_answer(out, to, answer);
        });
        encoded
    }

    /// Queues the answer to a request refused without running (`why`): `UNAVAILABLE` with the
    /// REPLY flag `NOT_PROCESSED`, so the client knows the call did not run and may send it
    /// again, over TCP at once. Not cached: a later retransmission may find room and run it.
    pub(super) fn queue_not_processed(&self, outbox: &mut Outbox, to: &ReplyTo, why: &str) {
        self.queue_refusal(outbox, to, why, FLAG_NOT_PROCESSED);
    }

    /// Queues the refusal of a call under a client instance another address owns
    /// ([`OTHER_SOURCE`]): NOT_PROCESSED, and the flag `FOREIGN_INSTANCE` that tells the client
    /// to draw a fresh instance.
    pub(super) fn queue_foreign(&self, outbox: &mut Outbox, to: &ReplyTo) {
        let flags = FLAG_NOT_PROCESSED | FLAG_FOREIGN_INSTANCE;
        self.queue_refusal(outbox, to, OTHER_SOURCE, flags);
    }

    fn queue_refusal(&self, outbox: &mut Outbox, to: &ReplyTo, why: &str, flags: u8) {
        let refused = ReplyTo {
            flags: to.flags | flags,
            ..*to
        };
        self.queue_answer(outbox, &refused, &Err(Status::not_processed(why)));
    }

    /// Encodes the answer of a call that finished on its own task, for
    /// [`send_encoded`](Self::send_encoded).
    pub(super) fn encode_alone(&self, to: &ReplyTo, answer: &Answer) -> (BytesMut, Encoded) {
        let mut out = scratch(0);
        let encoded = self.encode_answer(&mut out, to, answer);
        (out, encoded)
    }

    /// Sends at once what [`encode_alone`](Self::encode_alone) encoded.
    pub(super) async fn send_encoded(&self, to: &ReplyTo, out: BytesMut) {
        if !out.is_empty() {
            if let Err(err) = self
                .socket
                .send(&transmit(to.addr, to.src_ip, &out, None))
                .await
            {
                // Lost like any datagram: the client retransmits and the cache answers.
                tracing::debug!(to = %to.addr, error = %err, "udp send failed");
            }
        }
        give_back(out);
    }

    /// Appends REPLY to `out` when it fits and the source may receive it, TRUNCATED otherwise,
    /// nothing when even TRUNCATED would break the no-amplification rule. A one-message answer
    /// that cannot be sent, as over TCP (`server/respond.rs`: its metadata over the limits,
    /// `INTERNAL`; its message over the send limit, `RESOURCE_EXHAUSTED`), is replaced by that
    /// status, whose code is returned: the handler's future is dropped as ended with it.
    fn encode_answer(&self, out: &mut BytesMut, to: &ReplyTo, answer: &Answer) -> Encoded {
        // The answer's parts are gathered once, for the check, the size and the encoding.
        let replaced;
        let mut refused = None;
        let limits = &self.config.limits;
        let cap = limits.status_message_cap();
        let mut reply = Reply::capped(answer, cap);
        if let Err(status) = reply
            .check(limits)
            .and_then(|()| within_send_limit(answer, limits))
        {
            replaced = match answer {
                // An error keeps its code: only its trailers are dropped, as over TCP.
                Err(status) => Err(without_trailers(status, limits)),
                Ok(_) => {
                    refused = Some(status.code());
                    Err(status)
                }
            };
            reply = Reply::capped(&replaced, cap);
        }
        let len = reply.wire_len();
        let fits = len <= self.config.max_datagram;
        let allowed = to.size_limit.is_none_or(|limit| len <= limit);
        if fits && allowed {
            reply.encode(out, &reply_header(Kind::Reply, to), len);
            bump(&self.stats.replies);
        } else {
            if to.size_limit.is_some_and(|limit| HEADER_LEN > limit) {
                // Cannot happen for a well-formed REQUEST (always larger than a header), but
                // the rule is absolute.
                bump(&self.stats.amplification_dropped);
                return Encoded {
                    refused,
                    truncated: false,
                };
            }
            let mut header = reply_header(Kind::Truncated, to);
            if fits {
                header.flags |= FLAG_FITS;
            }
            datagram::encode_header_only(out, &header);
            bump(&self.stats.truncated);
            return Encoded {
                refused,
                truncated: true,
            };
        }
        Encoded {
            refused,
            truncated: false,
        }
    }
}

/// Refuses a one-message answer over the server's send limit, as the TCP server does
/// (`server/respond.rs`, `encode_once`): a limit below the datagram size holds over UDP too.
fn within_send_limit(answer: &Answer, limits: &Limits) -> Result<(), Status> {
    match answer {
        Ok(response) if response.get_ref().len() > limits.send_limit() => {
            Err(Status::resource_exhausted(format!(
                "response message of {} bytes exceeds the limit of {}",
                response.get_ref().len(),
                limits.send_limit()
            )))
        }
        _ => Ok(()),
    }
}

/// Drops a handler's future (`None`: gone already) once its answer is encoded: as ended with
/// the code its one-message answer was refused with (`ending.rs`); else, an answer that went
/// out TRUNCATED is held with it in the cache until the TCP re-issue ends (`cache/held.rs`),
/// which ends it with the code the caller got; else as any value. A panic in its drop is
/// caught (`ending::drop_caught`): most calls are dropped on the UDP server's own task, which a
/// panic there ended, answering no call after it (`tests/udp/drop_panics.rs`).
pub(super) fn settle_handler<F: Send + 'static>(
    future: Option<F>,
    encoded: Encoded,
    answer: &Answer,
) -> Option<HeldCall> {
    match (encoded.refused, future) {
        (Some(code), future) => crate::ending::drop_as(code, future),
        (None, Some(future)) if encoded.truncated && answer.is_ok() => {
            return Some(HeldCall::new(future));
        }
        (None, future) => crate::ending::drop_caught(future),
    }
    None
}

/// An error status whose trailers break `limits`, as a REPLY carries it: the trailers dropped,
/// the code and details kept, and the message noted with what was dropped, as the TCP server
/// sends it (`server/respond.rs`, `encode_end_with`). Before, the handler's status was replaced
/// by `INTERNAL` "response metadata: …", its code lost.
fn without_trailers(status: &Status, limits: &Limits) -> Status {
    let why = match frame::check_metadata(status.metadata(), limits) {
        Ok(()) => "over the limit".to_owned(),
        Err(why) => why,
    };
    let note = format!("[trailing metadata dropped: {why}]");
    let cap = limits.status_message_cap().min(frame::MAX_STATUS_MESSAGE);
    let message = frame::noted_status(status.message(), &note, cap);
    Status::with_details(status.code(), message, status.details_bytes().clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::task::{Context, Poll};

    thread_local! {
        static SEEN: Cell<Option<Code>> = const { Cell::new(None) };
    }

    /// A streamed body that notes the code its drop ran under.
    struct Streamed;

    impl Drop for Streamed {
        fn drop(&mut self) {
            SEEN.with(|seen| seen.set(Some(crate::ending::dropped_as())));
        }
    }

    impl OutboundBody for Streamed {
        fn into_once(self) -> Result<Bytes, Self> {
            Err(self)
        }

        fn poll_message(&mut self, _: &mut Context<'_>) -> Poll<Option<Result<Bytes, Status>>> {
            Poll::Ready(None)
        }
    }

    /// One message already compressed: `into_once` refuses it, `into_once_flagged` gives it.
    struct Compressed;

    impl OutboundBody for Compressed {
        fn into_once(self) -> Result<Bytes, Self> {
            Err(self)
        }

        fn poll_message(&mut self, _: &mut Context<'_>) -> Poll<Option<Result<Bytes, Status>>> {
            Poll::Ready(None)
        }

        fn into_once_flagged(self) -> Result<(Bytes, bool), Self> {
            Ok((Bytes::from_static(b"\x1f\x8b packed"), true))
        }
    }

    /// An answer already compressed is refused for what it is (it was refused `UNIMPLEMENTED`
    /// as a stream, "streaming responses are not served over UDP"): `INTERNAL`, as a compressed
    /// answer toward a TCP client that cannot read it (`server/open.rs` `compressed_unnamed`).
    #[test]
    fn a_compressed_answer_is_refused_as_compressed_not_as_a_stream() {
        let status = one_message(Ok(Response::new(Compressed))).err();
        let status = status.expect("refused");
        assert_eq!(status.code(), Code::Internal, "{status:?}");
        assert_eq!(status.message(), COMPRESSED_OVER_UDP);
    }

    /// A streamed answer cannot go over UDP: the client gets `UNIMPLEMENTED`, and the body is
    /// dropped as ended so, which the server's trace and metrics layers record (it was
    /// recorded `CANCELLED`).
    #[test]
    fn a_streamed_answer_is_dropped_as_unimplemented() {
        let answer = one_message(Ok(Response::new(Streamed)));
        let status = answer.err().map(|status| status.code());
        assert_eq!(status, Some(Code::Unimplemented));
        assert_eq!(SEEN.with(Cell::get), Some(Code::Unimplemented));
    }
}
