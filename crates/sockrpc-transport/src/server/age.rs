//! gRPC's `MAX_CONNECTION_AGE`: a connection past its age is sent away, so a long-lived client
//! reconnects now and then, through DNS and its balancer, and spreads onto backends that came up
//! after it connected.
//!
//! ```text
//!  accept ──(max_connection_age ± 10 %)──▶ GOAWAY(last call id), draining: no new call
//!                                          calls in flight go on ──(grace)──▶ closed
//!                                          last call ends first ───────────▶ FIN, linger
//! ```
//!
//! The age rides on the connection's one timer (`timers.rs`), so it costs a busy connection
//! nothing per call. Draining is the same as for a server shutting down: a call whose OPEN
//! arrives after the GOAWAY is refused unstarted (END's NOT_PROCESSED), and the client sends
//! it again on its new connection.

use super::conn::Connection;
use crate::dispatch::Dispatch;
use crate::timer::deadline_after;
use sockrpc_protocol::Code;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;

/// `age` ± 10 %, from the std hasher's random keys (one draw per connection): connections
/// opened together, at a server's start or after a network blip, do not all go at once.
pub(super) fn jittered(age: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let draw = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    spread(age, draw)
}

/// `age` scaled by a factor in [0.9, 1.1] that `draw` picks.
fn spread(age: Duration, draw: u64) -> Duration {
    // The top 53 bits as a fraction in [0, 1).
    let unit = (draw >> 11) as f64 / (1u64 << 53) as f64;
    // What `mul_f64` computes, without its panic past `Duration::MAX` (an age of "never").
    Duration::try_from_secs_f64(age.as_secs_f64() * (0.9 + 0.2 * unit)).unwrap_or(Duration::MAX)
}

impl<D: Dispatch> Connection<D> {
    /// The age timer went off: send the connection away, or, once its grace is over, close it.
    /// `Some` closes the connection.
    pub(super) fn on_age(&mut self, cx: &mut Context<'_>, now: Instant) -> Option<Poll<()>> {
        if self.aged {
            tracing::debug!(peer = ?self.conn_info.peer, "closing connection: max connection age grace over");
            let reason = (
                Code::Unavailable,
                "max connection age: grace period over".to_owned(),
            );
            return Some(self.close(cx, Some(reason)));
        }
        self.aged = true;
        self.timers.due.age = self
            .config
            .max_age_grace
            .map(|grace| deadline_after(now, grace));
        if !self.draining {
            tracing::debug!(peer = ?self.conn_info.peer, "max connection age: sending the connection away");
            self.send_away("max connection age reached", true);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_age_is_spread_ten_percent_either_way() {
        let age = Duration::from_secs(100);
        assert_eq!(spread(age, 0), Duration::from_secs(90));
        let top = spread(age, u64::MAX);
        // Just under 1.1 in exact arithmetic; 1.1 once rounded to an f64.
        assert!(top <= Duration::from_secs(110) && top > Duration::from_millis(109_999));
        assert_eq!(spread(age, 1 << 63), Duration::from_secs(100));
        for _ in 0..100 {
            let drawn = jittered(age);
            assert!(drawn >= Duration::from_secs(90) && drawn <= Duration::from_secs(110));
        }
    }
}
