//! A TCP re-issue of a UDP call whose answer went out TRUNCATED: the UDP call, held with its
//! answer so that the server's layers record the code its caller got (`udp/cache/held.rs`), is
//! let go as the re-issue arrives, before the re-issue passes those layers.
//!
//! Let go later (by the router, once the re-issue past every layer took the answer from the
//! cache, or at the end of its 5 s hold), the held call kept what its layers keep while its
//! re-issue went through them: one call counted twice at once. Under a tower
//! `ConcurrencyLimitLayer::new(1)` the re-issue waited the whole hold for the permit its own UDP
//! call held, and a server whose ready queue waits less shed it `RESOURCE_EXHAUSTED`
//! (`tests/udp/held_reissued.rs`). The code it ends with is the one this connection will answer
//! the re-issue with, as far as the connection can tell now: an answer whose metadata is over
//! the limit the client announced is refused `INTERNAL`, a message over the send limit
//! `RESOURCE_EXHAUSTED`, as `respond.rs` refuses them; otherwise the answer goes, and the call
//! ends as answered. (A layer refusing the re-issue itself, or a client whose SETTINGS arrive
//! after its re-issue, is not foreseen: the call ends as answered then, as it did at the end of
//! its hold.) Only a re-issue does this work, never another call.

use super::announced::check_response;
use super::conn::Connection;
use super::respond::ConnState;
use crate::dispatch::Dispatch;
use crate::udp::ReplyCache;
use bytes::Bytes;
use sockrpc_protocol::{Code, Limits, MethodPath, Response, Status};
use std::net::IpAddr;

impl<D: Dispatch> Connection<D> {
    /// Lets go of the UDP call `(instance, udp_call_id)` held with its TRUNCATED answer in
    /// `cache`, if it is, as its re-issue of `path` from `peer` arrives: ended with the code
    /// this connection will refuse the answer with, or as answered.
    pub(super) fn let_go_held(
        &self,
        cache: &ReplyCache,
        peer: Option<IpAddr>,
        (instance, udp_call_id): (u64, u32),
        path: &MethodPath,
    ) {
        let Some((held, answer)) = cache.take_held(peer, instance, udp_call_id, path.as_bytes())
        else {
            return;
        };
        // Out of the lock before the call goes: its drop runs its layers' code.
        let refused = refusal(&self.shared.lock(), &answer, &self.shared.limits);
        match refused {
            Some(code) => held.drop_as(code),
            None => drop(held),
        }
    }
}

/// The code this connection would answer `answer` with in its place, if it would not send it.
fn refusal(
    state: &ConnState,
    answer: &Result<Response<Bytes>, Status>,
    limits: &Limits,
) -> Option<Code> {
    let response = match answer {
        Ok(response) => response,
        Err(status) => return Some(status.code()),
    };
    if let Err(status) = check_response(state, response.metadata(), response.trailers(), limits) {
        return Some(status.code());
    }
    (response.get_ref().len() > limits.send_limit()).then_some(Code::ResourceExhausted)
}
