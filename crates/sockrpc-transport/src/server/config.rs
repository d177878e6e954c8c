//! `ServerConfig`: what a server promises its clients and defends itself with.
//!
//! Every limit here exists because a peer can otherwise take something without giving anything
//! back: a connection slot (handshake, idle and frame timeouts, the connection cap), memory (the
//! limits, the per-connection call cap) or CPU (the ping policy).

use super::PingPolicy;
use crate::client::Keepalive;
use crate::log_limit::LogLimit;
use crate::socket::SocketConfig;
use sockrpc_protocol::Limits;
use std::{sync::Arc, time::Duration};

/// Server settings.
///
/// A config also carries the server's log budget: what a peer can make the server warn about
/// over and over (protocol errors, timeouts, refusals at the cap or by TLS, failed accepts) goes
/// out at WARN at most once per kind every 10 s, the rest at DEBUG only, counted by the next
/// WARN. Clones of a config share that budget, as the connections of one server do.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Message and metadata limits.
    pub limits: Limits,
    /// Calls one connection may have open at once; more are refused with `ResourceExhausted`.
    /// Default 4096. Announced to the client in SETTINGS (up to 65,535; a larger limit is
    /// announced as that), so a sockrpc client holds calls back instead of sending them
    /// past it.
    pub max_concurrent_calls: usize,
    /// Calls one connection may have in flight before a new one is refused at once with
    /// `RESOURCE_EXHAUSTED` (the handler never runs), without the client being told the limit
    /// beforehand: tonic's `concurrency_limit_per_connection(n)` with `load_shed(true)`, where
    /// a client sends and learns from the refusal, instead of holding calls back as it does
    /// under [`max_concurrent_calls`](ServerConfig::max_concurrent_calls). A call counts until
    /// it ends (a stream until its status). `Some(0)` refuses every call. UDP calls have no
    /// connection and are not counted. Default `None`.
    pub shed_past_calls: Option<usize>,
    /// Connections served at once, counting those still in their handshake. At the cap, a new
    /// connection evicts the oldest connection that has not yet finished its handshake (with
    /// TLS, the TLS handshake and then the preface; else the preface) if that one is older than
    /// a floor (100 ms, doubling up to 1.6 s while evictions finish no handshake, halving with
    /// each one finished): it is told with a GOAWAY where its client already has the server's
    /// PREFACE, closed, logged with a WARN naming its peer and age (rate-limited), and its slot
    /// goes to the newcomer — so connections that stall their handshake cannot keep real
    /// clients out unless more than `max_connections` of them are opened every floor (1.6 s at
    /// most). An established connection is never evicted for this: when no slot can be had
    /// so, a client connecting past the cap is
    /// accepted, told why with a GOAWAY (`RESOURCE_EXHAUSTED`) and closed at once, never left
    /// hanging in the listen backlog; in a flood past the cap, only so many are told at once
    /// (64, 16 with TLS), and the rest are closed without a word (their clients fail
    /// `UNAVAILABLE`). Default 10,000. Keep it under the process's open-file limit (`ulimit -n`)
    /// less what else the process holds open: past that limit `accept` fails (EMFILE) before
    /// the cap is reached, and new clients wait in the backlog, told nothing, until descriptors
    /// free up (`sockrpc serve` raises its limit as far as it goes and sets its cap 256 under
    /// it).
    pub max_connections: usize,
    /// How long in-flight calls may run after shutdown begins. Default 30 s.
    pub grace_period: Duration,
    /// Socket options for the listener and accepted connections.
    pub socket: SocketConfig,
    /// How often clients may PING.
    pub ping_policy: PingPolicy,
    /// Time a new connection has to send its preface before it is closed, and with TLS, the
    /// time it has to complete the TLS handshake before that. Default 10 s.
    pub handshake_timeout: Duration,
    /// A connection with no call in flight for this long is closed with a GOAWAY (gRPC's
    /// `MAX_CONNECTION_IDLE`; clients reconnect when they next need to). `None` keeps idle
    /// connections forever. Default 5 minutes.
    pub idle_timeout: Option<Duration>,
    /// A connection older than this (±10 % jitter, so connections opened together do not all
    /// go at once) is sent a GOAWAY (gRPC's `MAX_CONNECTION_AGE`): it takes no new call, its
    /// calls in flight finish, and the client opens a new connection for the next — through
    /// DNS and its balancer again, so a long-lived client spreads onto backends added since it
    /// connected. A call the client sent before the GOAWAY reached it is refused unstarted and
    /// goes on the new connection. `None` (the default): connections live as long as they are
    /// used. Its GOAWAY, as the idle timeout's, carries FLAG_RETIRE: a sockrpc client does not
    /// take a connection retired so, however young, as a refused attempt to back off from.
    pub max_connection_age: Option<Duration>,
    /// After `max_connection_age`'s GOAWAY, how long calls still running may take before the
    /// connection is closed and they fail `UNAVAILABLE` (gRPC's `MAX_CONNECTION_AGE_GRACE`).
    /// `None` (the default): as long as they take.
    pub max_connection_age_grace: Option<Duration>,
    /// Time a frame may take from its first byte to its last. A peer that starts a frame and
    /// stops sending (slowloris) is closed when it passes. Default 30 s.
    pub frame_timeout: Duration,
    /// The slowest a message split into pieces may arrive, in bytes per second: it must be
    /// whole within `frame_timeout` of its first piece's arrival plus its length at this rate,
    /// or the connection is closed with a GOAWAY (`DEADLINE_EXCEEDED`, "message not completed
    /// in time"; the client's calls fail `UNAVAILABLE` with that reason). Time the server
    /// spends not reading (its write buffer full, its streams over budget) is not counted. Each piece also has
    /// `frame_timeout`; without this floor, pieces of 16 KiB sent one per frame timeout held
    /// a 4 MiB message (and its memory) for 256 of them. Default 32 KiB/s (256 kbit/s): a
    /// 4 MiB request then has 30 s + 128 s, and a 1 MiB one 30 s + 32 s, far more than a
    /// message sent in one frame, which must arrive within `frame_timeout`. 0: no floor.
    pub min_message_rate: u64,
    /// TLS on every connection (`None`: plain text). The handshake runs on the connection's own
    /// task and must finish within `handshake_timeout`; the sockrpc preface then has another
    /// `handshake_timeout`.
    #[cfg(feature = "tls")]
    pub tls: Option<crate::tls::ServerTls>,
    /// Server-side keepalive (gRPC's `KEEPALIVE_TIME` / `KEEPALIVE_TIMEOUT`): after `interval`
    /// with nothing received from the client, the server PINGs it, and closes the connection
    /// if no PONG comes within `timeout` — a client that vanished (power loss, a dropped NAT
    /// entry) does not hold its connection and calls for ever. `None` sends no PINGs.
    /// Default: every 2 hours, 20 s to answer (gRPC's defaults).
    pub keepalive: Option<Keepalive>,
    /// The longest any call may run, server-wide: a call whose client set no deadline gets this
    /// one, and a client deadline further away is shortened to it (tonic's `timeout`). The
    /// handler is cancelled and the client told `DEADLINE_EXCEEDED` when it passes, exactly as
    /// for a client's own deadline. `None` (the default): only the client's deadline applies.
    pub timeout: Option<Duration>,
    /// The WARN budget of this server's warnings (`log_limit.rs`), shared by its clones.
    pub(crate) log_limit: Arc<LogLimit>,
}

/// The deadline a call gets: the client's, shortened to the server's `timeout` if that is set
/// and sooner.
pub(crate) fn cap_timeout(client: Option<Duration>, server: Option<Duration>) -> Option<Duration> {
    match (client, server) {
        (Some(client), Some(server)) => Some(client.min(server)),
        (client, server) => client.or(server),
    }
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            limits: Limits::default(),
            max_concurrent_calls: 4096,
            shed_past_calls: None,
            max_connections: 10_000,
            grace_period: Duration::from_secs(30),
            socket: SocketConfig::default(),
            ping_policy: PingPolicy::default(),
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(300)),
            max_connection_age: None,
            max_connection_age_grace: None,
            frame_timeout: Duration::from_secs(30),
            min_message_rate: 32 * 1024,
            #[cfg(feature = "tls")]
            tls: None,
            keepalive: Some(Keepalive::new(
                Duration::from_secs(2 * 60 * 60),
                Duration::from_secs(20),
            )),
            timeout: None,
            log_limit: Arc::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_timeout_shortens_a_later_client_deadline_and_fills_a_missing_one() {
        let (short, long) = (Duration::from_secs(1), Duration::from_secs(9));
        assert_eq!(cap_timeout(Some(long), Some(short)), Some(short));
        assert_eq!(cap_timeout(Some(short), Some(long)), Some(short));
        assert_eq!(cap_timeout(None, Some(short)), Some(short));
        assert_eq!(cap_timeout(Some(long), None), Some(long));
        assert_eq!(cap_timeout(None, None), None);
    }
}
