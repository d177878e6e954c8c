//! Issue 4, UDP for small calls (must show 4 and 5), with the UDP server and client used
//! directly: small calls over UDP, truncation and the cached answer a TCP re-issue gets,
//! at-most-once through a lossy, duplicating proxy, no amplification toward unverified sources,
//! malformed datagrams dropped and counted, and fallback after repeated loss; and at-most-once
//! at its edges: a full reply cache under load, oversized requests, idempotent re-issues; and
//! watermarks: a small cache serving a long run of calls, late duplicates refused; and many calls
//! on one socket through batched reads and segmented sends; and each host's share of the
//! reply cache and of the calls in flight; and a server dropped without a shutdown stopping its
//! UDP side too; and method paths a hostile host makes up, each entry's copy counted; and
//! watermarks jumping by almost 2³¹ a request, never sweeping answers past the mark; and
//! cached answers and watermarks bound to the client's address, out of reach of another host;
//! and a channel over a Unix socket re-issuing its truncated UDP calls there; and a client
//! whose instance another address took drawing a new one.
//!
//! Real sockets on 127.0.0.1, port 0. Every loop is bounded in count and in time.

mod aborted;
mod address_bound;
mod at_most_once;
mod batching;
mod buffers;
mod calls;
mod channel;
mod datagrams;
mod drop_panics;
mod held_calls;
mod held_reissued;
mod in_flight_share;
mod mark_jumps;
mod paths;
mod redraw;
mod reliability;
mod share;
mod spoofed;
mod support;
mod unix_reissue;
mod watermark;
