//! Client-side load balancing: one channel over many servers.
//!
//! [`Channel::balance`](crate::Channel::balance) takes a [`Discovery`](crate::discovery::Discovery)
//! (a stream of endpoint inserts, removals and weight changes) and returns a [`Balanced`]
//! channel: a `tower::Service<Call>` like [`Channel`](crate::Channel), so generated clients
//! and middleware take it unchanged. Each endpoint is its own pool of connections; per call a
//! [`Picker`] chooses among the endpoints that are connected, healthy and not ejected:
//!
//! - [`P2c`]: two random choices, the one with less peak-EWMA latency × in-flight (default);
//! - [`RoundRobin`]: in turn;
//! - [`PickFirst`]: every call to the first endpoint that connects, kept until it fails
//!   (grpc-go's default); the channel connects to one endpoint at a time, in order, and holds
//!   no connection to the others;
//! - [`HashRing`]: consistent hashing on a metadata entry or a function of the call, with
//!   virtual nodes, weights and fail-over to the next distinct endpoint.
//!
//! Health: [`HealthProbe`] (implemented for `grpc.health.v1` by `sockrpc-health`) takes
//! `NOT_SERVING` endpoints out of rotation, and those whose watch ended or failed until a new
//! one answers `SERVING`; [`OutlierConfig`] ejects endpoints whose calls
//! keep failing, with backoff. A call refused unprocessed (END's NOT_PROCESSED, GOAWAY, a
//! connection lost before the call was sent) goes to another endpoint transparently.
//!
//! Files: `channel.rs` (the balanced channel), `follow.rs` (following discovery, reconnecting
//! members), `reconnect.rs` (a member's reconnect backoff, kept across connect tasks),
//! `member.rs` (one endpoint's state), `picker.rs`, `p2c.rs`, `pick_first.rs`,
//! `peak_ewma.rs`, `round_robin.rs`, `hash_ring.rs`, `in_order.rs` (connecting one endpoint
//! at a time, for pick first), `outlier.rs`, `health.rs` (a member's health
//! watch, following its connection), `totals.rs` (calls answered per key, departed keys
//! bounded), `shutdown.rs` (closing the channel: [`Balanced::close`], [`Balanced::close_now`],
//! [`Balanced::closed`]).

mod builder;
mod channel;
mod follow;
mod hash_ring;
mod health;
mod in_order;
mod member;
mod outlier;
mod p2c;
mod peak_ewma;
mod pick_first;
mod picker;
mod reconnect;
mod round_robin;
mod shutdown;
mod totals;
mod unsent;
mod wait;

pub use builder::BalanceBuilder;
pub use channel::Balanced;
pub use hash_ring::{stable_hash, HashKey, HashRing, KeyFn, DEFAULT_VIRTUAL_NODES};
pub use health::HealthProbe;
pub use member::{EndpointStats, Health, Member, Members};
pub use outlier::OutlierConfig;
pub use p2c::P2c;
pub use peak_ewma::{PeakEwma, DEFAULT_DECAY, DEFAULT_RTT};
pub use pick_first::PickFirst;
pub use picker::Picker;
pub use round_robin::RoundRobin;
pub use totals::DEPARTED_KEPT;

#[cfg(test)]
mod health_tests;
#[cfg(test)]
mod in_order_tests;
#[cfg(test)]
mod seen_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod watch_tests;
