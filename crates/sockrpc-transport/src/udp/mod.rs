//! UDP for small calls: one datagram per request, one per answer, with TCP for the rest.
//!
//! ```text
//!  UdpClient::call ──REQUEST──▶ UdpServer ──▶ ReplyCache.begin ──▶ Router ──▶ handler
//!        ▲                          │               (dedup on (instance, call id))
//!        │◀───────── REPLY ─────────┤  answer fits and the source has a cookie (or it is small)
//!        │◀──────── TRUNCATED ──────┘  otherwise: the full answer stays in the cache
//!        └─ Truncated{instance, call_id} ──▶ caller re-issues over TCP ──▶ ReplyCache.wait
//! ```
//!
//! A TRUNCATED answer's call is held with it until the re-issue arrives ([`HeldCall`]), for a
//! few seconds at most, so that the server's layers record the code its caller gets over TCP.
//!
//! The pieces (`docs/UDP.md` has the protocol):
//! - [`datagram`]: the wire format, version 1.
//! - [`UdpClient`]: one socket per channel, retransmission from a smoothed RTT, fallback to TCP
//!   after repeated loss, [`UdpOutcome`] for the caller to act on.
//! - [`UdpServer`] / [`serve_udp`]: the same router the TCP server runs, behind cookies, a
//!   per-source rate limit and the no-amplification rule.
//! - [`ReplyCache`]: at-most-once execution, shared with the TCP server for re-issued calls.
//! - A TCP re-issue carries the UDP call's identity in the OPEN frame's `FLAG_REISSUE` field
//!   (`ClientConnection::reissue`), and the service layer answers it from the [`ReplyCache`].

mod answer;
mod cache;
mod client;
mod client_config;
mod coalesce;
mod cookie;
mod in_flight;
mod inbox;
pub use sockrpc_protocol::datagram;
mod limiter;
mod outbox;
mod outstanding;
mod rtt;
mod server;
mod server_config;
mod server_stats;
mod slots;
mod socket;
mod watermark;

pub use cache::{HeldCall, Lookup, ReplyCache, ReplyCacheConfig};
pub use client::{UdpClient, UdpClientStats, UdpOutcome, WeakUdpClient};
pub use client_config::UdpClientConfig;
pub use limiter::RateLimit;
pub use outstanding::ReissueHold;
pub use server::{serve_udp, UdpServer, UdpServerConfig, UdpServerCounters, UdpServerStats};

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

/// A random u64: SipHash, keyed from the OS at first use on each thread, of a process-wide
/// counter. Used for client instances, where unpredictability matters and a dependency on a
/// random-number crate does not pay for itself.
pub(crate) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static KEY: RandomState = RandomState::new();
    }
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    KEY.with(|key| key.hash_one(n))
}

/// Defines a set of counters: a live struct of atomics and a plain snapshot of it.
macro_rules! counters {
    (
        $(#[$smeta:meta])* snapshot $snap:ident;
        $(#[$lmeta:meta])* $lvis:vis live $live:ident;
        { $($(#[$fmeta:meta])* $field:ident,)* }
    ) => {
        $(#[$smeta])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct $snap {
            $($(#[$fmeta])* pub $field: u64,)*
        }

        $(#[$lmeta])*
        #[derive(Debug, Default)]
        $lvis struct $live {
            $(pub(crate) $field: std::sync::atomic::AtomicU64,)*
        }

        impl $live {
            /// The counters' values now.
            $lvis fn snapshot(&self) -> $snap {
                $snap {
                    $($field: self.$field.load(std::sync::atomic::Ordering::Relaxed),)*
                }
            }
        }
    };
}
pub(crate) use counters;
/// A cheap random u64 for retransmission jitter: xorshift64* on a per-thread state seeded from
/// [`random_u64`]. Jitter needs spread, not secrecy, and is drawn on every call (SipHash cost
/// ~250 instructions a call there).
pub(crate) fn jitter_u64() -> u64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(random_u64() | 1);
    }
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Raises a UDP socket's receive buffer to `size` (`None`: leaves it), as
/// [`raise_recv_buffer`](crate::socket::raise_recv_buffer) does. A failure only costs drops under
/// bursts, so it is logged, not returned.
pub(crate) fn raise_buffer(socket: &tokio::net::UdpSocket, size: Option<usize>) {
    let Some(size) = size else { return };
    match crate::socket::raise_recv_buffer(socket, size) {
        Ok(got) if got < size => tracing::debug!(
            asked = size,
            got,
            "UDP receive buffer capped by the kernel (net.core.rmem_max)"
        ),
        Ok(_) => {}
        Err(err) => tracing::debug!(error = %err, "cannot raise the UDP receive buffer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_values_differ() {
        assert_ne!(random_u64(), random_u64());
    }

    #[test]
    fn jitter_spreads_over_the_whole_range() {
        let draws: Vec<u64> = (0..1000).map(|_| jitter_u64()).collect();
        // Top two bits (what a quarter-of-the-range test sees) take every value.
        for quarter in 0..4u64 {
            assert!(
                draws.iter().any(|d| d >> 62 == quarter),
                "quarter {quarter}"
            );
        }
        let distinct: std::collections::HashSet<_> = draws.iter().collect();
        assert_eq!(distinct.len(), draws.len());
    }
}
