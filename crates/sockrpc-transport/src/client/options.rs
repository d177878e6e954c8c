//! A connection's settings: what `ClientConnection::spawn_with` is given (limits, keepalive, who
//! to tell when it closes), apart from the connection's machinery so that callers building a
//! pool or an endpoint read them in one place.

use sockrpc_protocol::Limits;
use std::{sync::Arc, time::Duration};
use tokio::sync::Notify;

/// The default time a client waits for a connection to be set up (gRPC's minimum connect
/// timeout).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Keepalive: PING the server every `interval` and close the connection when no PONG comes back
/// within `timeout`, so a peer that vanished without a reset (power loss, a dropped route) is
/// noticed in `interval + timeout` rather than TCP's many minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Keepalive {
    /// Time between PINGs. Keep it at or above the server's minimum ping interval, or the server
    /// answers with GOAWAY ("too many pings").
    pub interval: Duration,
    /// Time to wait for the PONG.
    pub timeout: Duration,
    /// Also PING while no call is in flight (gRPC's `KEEPALIVE_PERMIT_WITHOUT_CALLS`).
    pub while_idle: bool,
}

impl Keepalive {
    /// PING every `interval`, wait `timeout` for the PONG, only while calls are in flight.
    pub fn new(interval: Duration, timeout: Duration) -> Keepalive {
        Keepalive {
            interval,
            timeout,
            while_idle: false,
        }
    }

    /// Sets whether to PING with no call in flight.
    pub fn while_idle(mut self, on: bool) -> Keepalive {
        self.while_idle = on;
        self
    }
}

/// Settings for one connection.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ConnectionOptions {
    /// Message and metadata limits.
    pub limits: Limits,
    /// Keepalive PINGs; `None` sends none (PINGs from the server are still answered).
    pub keepalive: Option<Keepalive>,
    /// Notified when the connection ends, so a pool can replace it.
    pub on_close: Option<Arc<Notify>>,
}

impl ConnectionOptions {
    /// Options with `limits` and nothing else.
    pub fn new(limits: Limits) -> ConnectionOptions {
        ConnectionOptions {
            limits,
            ..ConnectionOptions::default()
        }
    }

    /// Sets keepalive.
    pub fn keepalive(mut self, keepalive: Option<Keepalive>) -> Self {
        self.keepalive = keepalive;
        self
    }

    /// Sets the close notification.
    pub fn on_close(mut self, notify: Arc<Notify>) -> Self {
        self.on_close = Some(notify);
        self
    }
}
