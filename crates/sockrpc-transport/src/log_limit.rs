//! A server's WARN budget for what a peer can make it log over and over.
//!
//! Some warnings are the server's to give whenever a peer misbehaves: a connection closed for a
//! protocol error, a preface or a frame not sent in time, a client refused at the connection cap
//! or by TLS, a failed `accept`, a connection evicted at the cap in its handshake. They are
//! logged at WARN, the level `sockrpc serve` logs at: a misconfigured client must be visible.
//! But a peer can repeat them at will (a port scanner, a health check that speaks something
//! else, a flood of bad connections), and one line per connection would flood the log, and the
//! disk and the CPU behind it. So per kind of warning at
//! most one goes out at WARN per [`EVERY`]; the ones in between are logged at DEBUG only, and
//! counted, and the next WARN of that kind says how many there were.
//!
//! The budget is per server: [`ServerConfig`](crate::ServerConfig) holds one [`LogLimit`], which
//! its clones share, and so do the server's connections (through their `ConnConfig`) and its TLS
//! handshakes; two servers in one process do not silence each other. It is touched only on those
//! error and close paths, never per call or per frame: it costs the hot path nothing.
//!
//! A warning goes through [`warn_limited!`], which keeps its message text and fields whichever
//! level it lands at.
//!
//! Handler panics have a budget of the same shape, at ERROR, held for the whole process by
//! `panic.rs` ([`Kind::Panicked`]): a client can repeat those too.

use std::{fmt, sync::Mutex, time::Duration};
use tokio::time::Instant;

/// At most one WARN per kind of warning per this long.
pub(crate) const EVERY: Duration = Duration::from_secs(10);

/// A kind of warning a peer can repeat at will: each has its own WARN budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A TLS handshake refused, one budget per kind of refusal (`tls/refusals.rs`).
    #[cfg(feature = "tls")]
    Tls(crate::tls::refusals::Refusal),
    /// A connection closed for not sending its preface within the handshake timeout.
    NoPreface,
    /// A connection closed for a frame not completed within the frame timeout, or a split
    /// message not completed at the server's `min_message_rate`.
    FrameTimeout,
    /// A connection closed for a protocol error.
    ProtocolError,
    /// A client refused at the connection cap.
    ConnectionLimit,
    /// An `accept` that failed.
    AcceptFailed,
    /// A connection still in its handshake evicted at the connection cap for a newer one.
    Evicted,
    /// A handler (or its response stream) panicked: its call fails `INTERNAL`, and a client
    /// that found the request that makes it panic can send it again and again (`panic.rs`).
    Panicked,
}

/// Kinds of TLS refusal, numbered first.
#[cfg(feature = "tls")]
const TLS_KINDS: usize = crate::tls::refusals::Refusal::COUNT;
#[cfg(not(feature = "tls"))]
const TLS_KINDS: usize = 0;

/// Kinds in all.
const KINDS: usize = TLS_KINDS + 7;

impl Kind {
    fn index(self) -> usize {
        match self {
            #[cfg(feature = "tls")]
            Kind::Tls(refusal) => refusal.index(),
            Kind::NoPreface => TLS_KINDS,
            Kind::FrameTimeout => TLS_KINDS + 1,
            Kind::ProtocolError => TLS_KINDS + 2,
            Kind::ConnectionLimit => TLS_KINDS + 3,
            Kind::AcceptFailed => TLS_KINDS + 4,
            Kind::Evicted => TLS_KINDS + 5,
            Kind::Panicked => TLS_KINDS + 6,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// When this kind last went out at WARN.
    last: Option<Instant>,
    /// How many of this kind went to DEBUG only since.
    suppressed: u64,
}

/// A kind never logged yet.
const UNUSED: Slot = Slot {
    last: None,
    suppressed: 0,
};

/// The WARN budget of each kind of warning, for one server.
pub(crate) struct LogLimit {
    slots: Mutex<[Slot; KINDS]>,
    every: Duration,
}

impl fmt::Debug for LogLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogLimit")
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

impl Default for LogLimit {
    fn default() -> LogLimit {
        LogLimit::new(EVERY)
    }
}

impl LogLimit {
    /// A budget of one WARN per kind per `every`.
    pub(crate) const fn new(every: Duration) -> LogLimit {
        LogLimit {
            slots: Mutex::new([UNUSED; KINDS]),
            every,
        }
    }

    /// `Some(n)` when a warning of `kind` now goes out at WARN (`n`: how many of its kind did
    /// not since the last that did); `None` when it is one too many for now, and is counted.
    pub(crate) fn admit(&self, kind: Kind) -> Option<u64> {
        let now = Instant::now();
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let slot = &mut slots[kind.index()];
        match slot.last {
            Some(last) if now.saturating_duration_since(last) < self.every => {
                slot.suppressed += 1;
                None
            }
            _ => {
                slot.last = Some(now);
                Some(std::mem::take(&mut slot.suppressed))
            }
        }
    }

    /// The period of the budget, in whole seconds (for the WARN that counts the others).
    pub(crate) fn every_secs(&self) -> u64 {
        self.every.as_secs()
    }
}

/// Logs an event at WARN if its kind still has budget on the server's [`LogLimit`], else at
/// DEBUG; a WARN that follows suppressed ones carries their number (field `suppressed`) and says
/// so after the message.
///
/// `warn_limited!(limit, kind, { fields, }, "message {}", args)`: `limit` a `LogLimit` (or a
/// reference or `Arc` to one), `kind` a [`Kind`], the fields as `tracing` takes them, each
/// followed by a comma, then the message and its arguments.
macro_rules! warn_limited {
    ($limit:expr, $kind:expr, { $($fields:tt)* }, $($message:tt)+) => {{
        let limit: &$crate::log_limit::LogLimit = &$limit;
        match limit.admit($kind) {
            Some(0) => tracing::warn!($($fields)* $($message)+),
            Some(suppressed) => tracing::warn!(
                $($fields)* suppressed,
                "{} ({} more of this kind since the last warning, logged at DEBUG only: at most \
                 one warning per kind every {}s)",
                format_args!($($message)+),
                suppressed,
                limit.every_secs()
            ),
            None => tracing::debug!($($fields)* $($message)+),
        }
    }};
}

pub(crate) use warn_limited;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_warning_per_kind_per_period_and_the_rest_counted() {
        let limit = LogLimit::new(Duration::from_secs(10));
        let second = || tokio::time::advance(Duration::from_secs(1));
        assert_eq!(limit.admit(Kind::ProtocolError), Some(0));
        for _ in 1..=9 {
            second().await;
            assert_eq!(limit.admit(Kind::ProtocolError), None);
        }
        // At 9 s another kind has its own budget.
        assert_eq!(limit.admit(Kind::NoPreface), Some(0));
        assert_eq!(limit.admit(Kind::NoPreface), None);
        // A period on, the next one goes out and says how many did not.
        second().await;
        assert_eq!(limit.admit(Kind::ProtocolError), Some(9));
        assert_eq!(limit.admit(Kind::ProtocolError), None);
        tokio::time::advance(Duration::from_secs(15)).await;
        assert_eq!(limit.admit(Kind::ProtocolError), Some(1));
        assert_eq!(limit.admit(Kind::NoPreface), Some(1));
        assert_eq!(limit.admit(Kind::AcceptFailed), Some(0));
        // Two servers, two budgets.
        let other = LogLimit::new(Duration::from_secs(10));
        assert_eq!(other.admit(Kind::ProtocolError), Some(0));
    }

    #[cfg(feature = "tls")]
    #[tokio::test(start_paused = true)]
    async fn each_tls_refusal_has_its_own_budget_beside_the_plain_kinds() {
        use crate::tls::refusals::Refusal;
        let limit = LogLimit::default();
        let tls = [
            Refusal::PlainText,
            Refusal::NotTls,
            Refusal::Alpn,
            Refusal::Handshake,
            Refusal::Timeout,
        ];
        let plain = [
            Kind::NoPreface,
            Kind::FrameTimeout,
            Kind::ProtocolError,
            Kind::ConnectionLimit,
            Kind::AcceptFailed,
            Kind::Evicted,
            Kind::Panicked,
        ];
        let kinds: Vec<Kind> = tls.into_iter().map(Kind::Tls).chain(plain).collect();
        assert_eq!(kinds.len(), KINDS);
        for kind in &kinds {
            assert_eq!(limit.admit(*kind), Some(0), "{kind:?}");
        }
        for kind in &kinds {
            assert_eq!(limit.admit(*kind), None, "{kind:?}");
        }
        tokio::time::advance(EVERY).await;
        for kind in &kinds {
            assert_eq!(limit.admit(*kind), Some(1), "{kind:?}");
        }
    }
}
