//! Why a TLS server refused a connection, logged where an operator looks, without a flood.
//!
//! A refusal (a plain-text client on the TLS port, bytes that are not TLS, a client without
//! ALPN `sockrpc/1`, a certificate refused, a handshake not finished in time) is logged at
//! WARN, the level `sockrpc serve` logs at: a misconfigured client must be visible. But port
//! scanners and health checks that speak something else refuse themselves over and over, so per
//! kind of refusal at most one WARN goes out per [`EVERY`]; the ones in between are logged at
//! DEBUG only, and counted, and the next WARN of that kind says how many there were.
//!
//! The limit is per server (per [`ServerTls`](super::ServerTls) and its clones), so two servers
//! in one process do not silence each other.

use std::{
    fmt,
    net::SocketAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

/// At most one WARN per kind of refusal per this long.
pub(crate) const EVERY: Duration = Duration::from_secs(10);

/// A kind of refusal: each has its own WARN budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A plain-text sockrpc client on the TLS port (told so in its own protocol).
    PlainText,
    /// The first bytes were neither TLS nor sockrpc.
    NotTls,
    /// The client does not offer ALPN `sockrpc/1`.
    Alpn,
    /// The handshake failed: a certificate refused, nothing in common, a broken message.
    Handshake,
    /// The handshake did not finish within the handshake timeout.
    Timeout,
}

const KINDS: usize = 5;

impl Refusal {
    fn index(self) -> usize {
        match self {
            Refusal::PlainText => 0,
            Refusal::NotTls => 1,
            Refusal::Alpn => 2,
            Refusal::Handshake => 3,
            Refusal::Timeout => 4,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::PlainText => "plain-text sockrpc client on a TLS port: refused",
            Refusal::NotTls => "not TLS: connection closed",
            Refusal::Alpn => "TLS handshake refused: no ALPN sockrpc/1",
            Refusal::Handshake => "TLS handshake failed",
            Refusal::Timeout => "TLS handshake not completed in time: connection closed",
        })
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// When this kind last went out at WARN.
    last: Option<Instant>,
    /// How many of this kind went to DEBUG only since.
    suppressed: u64,
}

/// The WARN budget of each kind of refusal.
#[derive(Debug)]
pub(crate) struct Refusals {
    slots: Mutex<[Slot; KINDS]>,
    every: Duration,
}

impl Default for Refusals {
    fn default() -> Refusals {
        Refusals::new(EVERY)
    }
}

impl Refusals {
    pub(crate) fn new(every: Duration) -> Refusals {
        Refusals {
            slots: Mutex::new([Slot::default(); KINDS]),
            every,
        }
    }

    /// `Some(n)` when a refusal of `kind` at `now` goes out at WARN (`n`: how many of its kind
    /// did not since the last that did); `None` when it is one too many for now.
    fn admit(&self, kind: Refusal, now: Instant) -> Option<u64> {
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

    /// Logs a refusal of `kind` of the client at `peer`, `reason` saying why: at WARN unless
    /// one of its kind went out at WARN less than [`EVERY`] ago, else at DEBUG.
    pub(crate) fn log(&self, kind: Refusal, peer: Option<SocketAddr>, reason: &str) {
        match self.admit(kind, Instant::now()) {
            Some(0) => tracing::warn!(?peer, "{kind}: {reason}"),
            Some(suppressed) => tracing::warn!(
                ?peer,
                suppressed,
                "{kind}: {reason} ({suppressed} more refusals of this kind since the last \
                 warning, logged at DEBUG only: at most one warning per kind every {}s)",
                self.every.as_secs()
            ),
            None => tracing::debug!(?peer, "{kind}: {reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_kind_per_period_and_the_rest_counted() {
        let refusals = Refusals::new(Duration::from_secs(10));
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        assert_eq!(refusals.admit(Refusal::NotTls, at(0)), Some(0));
        for secs in 1..=9 {
            assert_eq!(refusals.admit(Refusal::NotTls, at(secs)), None);
        }
        // Another kind has its own budget.
        assert_eq!(refusals.admit(Refusal::Alpn, at(5)), Some(0));
        assert_eq!(refusals.admit(Refusal::Alpn, at(6)), None);
        // A period on, the next one goes out and says how many did not.
        assert_eq!(refusals.admit(Refusal::NotTls, at(10)), Some(9));
        assert_eq!(refusals.admit(Refusal::NotTls, at(11)), None);
        assert_eq!(refusals.admit(Refusal::NotTls, at(25)), Some(1));
        assert_eq!(refusals.admit(Refusal::Alpn, at(100)), Some(1));
        assert_eq!(refusals.admit(Refusal::Timeout, at(100)), Some(0));
    }
}
