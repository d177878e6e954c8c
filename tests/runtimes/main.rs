//! A client kept in a `static` (a `LazyLock`, a `OnceLock`) and used from one tokio runtime
//! after another, as `#[tokio::test]` functions do, each on a runtime of its own: whatever the
//! client started on the first runtime (connection tasks, the pool's reconnecting task, a
//! balanced channel's discovery and connect tasks, a UDP socket's registration) ended with it,
//! and the next runtime must find the client working all the same.
//!
//! Each turn runs on a new runtime, current-thread and multi-thread in turn, in a thread of its
//! own; the runtime is dropped (its tasks with it) before the next turn starts, and every turn
//! is bounded in time, so a client that hangs on the next runtime fails the test instead of
//! blocking it. The servers run on a runtime of their own that outlives every turn.
//!
//! - balance: a balanced channel over real servers keeps calling, follows discovery changes
//!   made after the switch, reconnects a member whose connect task died with its runtime, and
//!   watches health again; one built outside any runtime starts on its first call's;
//! - dns: DNS discovery started on one runtime follows record changes on the next (a real DNS
//!   server in process, `tests/scale/dns_server.rs`); started outside any runtime, it looks up
//!   once a runtime polls it;
//! - etcd (feature `etcd`, as the scale tests: a real etcd, skipped when not installed): etcd
//!   discovery started on one runtime follows keys put and deleted on the next;
//! - pool: a call waiting for a connection while the runtime running the pool's reconnecting
//!   task shuts down gets a reconnect as that task ends, and that task's backoff ends with it;
//! - udp: a channel's UDP calls on one runtime after another, and a `UdpClient` whose runtime
//!   ended hands calls back unsent instead of hanging.
//!
//! Runtimes alive at the same time (tests that cargo runs in parallel threads), the first
//! ending mid-call (`together.rs` keeps it alive beside the second; `slow.rs` serves calls that
//! take as long as asked): a call in flight on what the first made fails `UNAVAILABLE` at
//! once, never past its deadline, and the next call works:
//!
//! - unary_in_flight: unary calls, current-thread and multi-thread runtimes mixed, and a pool
//!   of connections;
//! - stream_in_flight, tls_in_flight, balance_in_flight: a stream, a TLS connection, a
//!   balanced channel's members;
//! - udp_in_flight: a UDP call through the first runtime's UDP client;
//! - udp_generations: a channel's UDP side over 80 runtimes in turn lets ended ones' clients go.
//!
//! (`tests/pool/runtimes.rs` covers a plain channel's reconnect across runtimes.)

mod balance;
mod balance_in_flight;
mod dns;
#[allow(dead_code)]
#[path = "../scale/dns_server.rs"]
mod dns_server;
#[cfg(feature = "etcd")]
mod etcd;
#[cfg(feature = "etcd")]
#[allow(dead_code)]
#[path = "../scale/etcd_process.rs"]
mod etcd_process;
mod pool;
mod slow;
mod stream_in_flight;
mod support;
mod tls_in_flight;
mod together;
mod udp;
mod udp_generations;
mod udp_in_flight;
mod unary_in_flight;
