//! Why a TLS server refused a connection, logged where an operator looks, without a flood.
//!
//! A refusal (a plain-text client on the TLS port, bytes that are not TLS, a client without
//! ALPN `sockrpc/1`, a certificate refused, a handshake not finished in time) is logged at
//! WARN, the level `sockrpc serve` logs at: a misconfigured client must be visible. But port
//! scanners and health checks that speak something else refuse themselves over and over, so
//! each kind of refusal here has its own budget in the server's
//! [`LogLimit`](crate::log_limit::LogLimit): at most one WARN per 10 s, the rest at DEBUG only,
//! counted by the next WARN. This file names the kinds and says each one's reason; the budget is
//! the one the server's other warnings use.

use crate::log_limit::{warn_limited, Kind, LogLimit};
use std::{fmt, net::SocketAddr};

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

impl Refusal {
    /// Kinds of refusal: [`Refusal::index`] is below it.
    pub(crate) const COUNT: usize = 5;

    /// This kind's number, for its slot in the budget.
    pub(crate) fn index(self) -> usize {
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

/// Logs a refusal of `kind` of the client at `peer`, `reason` saying why: at WARN unless one of
/// its kind went out at WARN on this server (`limit`) less than 10 s ago, else at DEBUG.
pub(crate) fn log(limit: &LogLimit, kind: Refusal, peer: Option<SocketAddr>, reason: &str) {
    warn_limited!(limit, Kind::Tls(kind), { ?peer, }, "{kind}: {reason}");
}
