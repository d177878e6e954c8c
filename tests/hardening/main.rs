//! Server hardening: each test shows one behaviour of the server connection over real loopback
//! sockets — panicking handlers, protocol errors after a half-close, oversized stream messages,
//! OPENs whose MESSAGE never comes, slowloris and the connection cap, read buffers pinned by
//! pending calls, PING strikes, and configuration mistakes. Each failed before the rewrite of
//! the server connection (commit 84bffd8). Later: a flood past the connection cap holds a
//! bounded number of refusals (`slowloris.rs`), and a flood of bad connections is one warning
//! per kind in the log (`warnings.rs`). The limit of calls in flight per connection counts
//! calls running in tasks of their own (`call_limit.rs`). Connections that never send their
//! preface cannot hold every slot at the cap: the oldest is evicted for a newcomer
//! (`eviction.rs`), and told why with no reset, lingering off its slot (`evicted_linger.rs`).

mod call_limit;
mod config;
mod evicted;
mod evicted_linger;
mod eviction;
mod eviction_floor;
mod half_close;
mod keepalive;
mod oversized;
mod panics;
mod pending_open;
mod ping_strikes;
mod pinned_buffers;
#[allow(dead_code)]
#[path = "../hostile/raw.rs"]
mod raw;
mod service;
mod slowloris;
mod support;
mod warnings;
mod wire;
