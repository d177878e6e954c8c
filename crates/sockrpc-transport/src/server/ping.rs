//! How often clients may PING: gRPC's keepalive enforcement.

use std::time::Duration;

/// How often a client may PING (gRPC's keepalive enforcement): a PING sooner than
/// `min_interval` after the previous one, or with no call in flight when that is not permitted,
/// is a strike; more than `max_strikes` and the connection is closed with GOAWAY
/// ("too_many_pings"). Data the server sent since the previous PING clears the strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PingPolicy {
    /// Shortest allowed time between PINGs. Default 10 s.
    pub min_interval: Duration,
    /// Whether PINGs with no call in flight are fine. Default false, as in gRPC.
    pub permit_without_calls: bool,
    /// Strikes tolerated before the connection is closed. Default 2, as in gRPC.
    pub max_strikes: u32,
}

impl Default for PingPolicy {
    fn default() -> PingPolicy {
        PingPolicy {
            min_interval: Duration::from_secs(10),
            permit_without_calls: false,
            max_strikes: 2,
        }
    }
}
