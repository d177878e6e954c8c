//! Issue 13: one channel over several servers, on real sockets over 127.0.0.1–127.0.0.3.
//!
//! - kill: SIGKILL one of three servers during 10,000 calls — only calls in flight on it fail,
//!   the rest spread over the survivors, nothing hangs; a restarted server takes calls again;
//! - slow: one server slower (50 ms for p2c, 5 ms for round robin) — p2c sends it under 10 %,
//!   round robin about a third;
//! - ring: a fourth server moves 15–35 % of keys, removing one moves only its keys;
//! - health: NOT_SERVING takes a server out of rotation, SERVING brings it back; a streaming
//!   call through the balanced channel; health_gone: an endpoint's health watch ends when
//!   discovery removes the endpoint, and when the channel is dropped; health_shutdown: a
//!   health watch ends as its server sends the connection away, not holding the server's
//!   graceful shutdown for its grace period; health_reconnect: an endpoint whose server was
//!   killed and came back keeps one connection, its health watch on it; health_error: a
//!   health watch failing (not UNIMPLEMENTED) fails fast calls at once and backs off;
//!   health_ended: an endpoint whose watch ended (cleanly, or failing after answers) on a
//!   connection still up takes no calls until a new watch answers SERVING;
//! - fail_fast: with every endpoint down or `NOT_SERVING`, a fail-fast call fails at once and
//!   a wait-for-ready call waits (to its deadline, or for a server);
//! - given_up: a call its caller gave up on, or one refused before sending, leaves no mark
//!   on its endpoint's load (in flight, answered); never_sent: a call whose endpoint's
//!   connection went away under it goes to an endpoint connected now, not waiting for that
//!   one's reconnection, and one never sent again and again waits within its deadline, and
//!   counts for nothing in outlier ejection; room_unsent: a call whose connections close while
//!   it waits there for room is picked again, uncounted, past the attempts;
//! - pick_first: every call on the first server until it shuts down, then on the second, which
//!   keeps them when the first comes back; pick_first_conns: a connection to the server in use
//!   only (counted on the servers' side, `counted.rs`), the next tried after 250 ms while one
//!   stalls, the server in use kept while discovery still lists it, a server discovery adds
//!   while every other one is failing tried at once, not after the backoff between passes,
//!   and passes that stop at a server closing after its handshake kept apart by that backoff;
//! - outlier: a server failing UNAVAILABLE is ejected (with backoff) and readmitted;
//! - dns: a real DNS server (hickory-server, in process) whose records change mid-test (A
//!   records added and removed on the TTL, SRV priority and weight, an early lookup after a
//!   connection fails; `dns_server.rs`); dns_gone: a name deleted from DNS, or whose SRV
//!   records name no usable target, empties the set and calls say why at once; dns_config: a
//!   service config in a TXT record (gRFC A2) applied to the next calls as it changes;
//! - dns_daemon: the same against a real DNS server daemon, dnsmasq (Debian's `dnsmasq-base`,
//!   `dnsmasq_process.rs`): each address family, SRV weights and priorities, a long TXT
//!   service config, NXDOMAIN, NODATA and REFUSED, a hosts file changed under it, an answer
//!   only TCP carries whole (with the tests package's `real-dns` feature, which `.ci/run`
//!   turns on; failing, not skipped, when dnsmasq is not installed); dns_knot: against an
//!   authoritative server, Knot DNS (Debian's `knot`, `knot_process.rs`, same feature): A and
//!   AAAA together, CNAME chains, NXDOMAIN and NODATA with the zone's negative TTL, short and
//!   long TTLs, SERVFAIL, REFUSED and the server gone while serving, TC then TCP;
//! - etcd: a real etcd (Debian's `etcd-server`, `etcd_process.rs`) with registrations under a
//!   lease that survive an etcd restart and a revoked lease, and values changed, duplicated and
//!   malformed under the watch (with the tests package's `etcd` feature, which `.ci/run` turns
//!   on; skipped, with the reason printed, when the binary is not installed);
//! - churn: endpoints coming and going under fresh keys leave bounded state behind;
//! - child: the SIGKILLable server process (`tests/bin/scale_server.rs`) the kill and etcd tests
//!   spawn.
//!
//! Every loop is bounded in count and every wait in time; nothing asserts speed.

mod child;
mod churn;
mod counted;
mod dns;
mod dns_answers;
mod dns_config;
#[cfg(feature = "real-dns")]
mod dns_daemon;
mod dns_gone;
#[cfg(feature = "real-dns")]
mod dns_knot;
mod dns_large;
mod dns_server;
mod dns_silent;
#[cfg(feature = "real-dns")]
mod dnsmasq_process;
mod drained;
#[cfg(feature = "etcd")]
mod etcd;
#[cfg(feature = "etcd")]
mod etcd_process;

mod fail_fast;
mod given_up;
mod health;
mod health_ended;
mod health_error;
mod health_gone;
mod health_reconnect;
mod health_shutdown;
mod kill;
#[cfg(feature = "real-dns")]
mod knot_process;
mod never_sent;
mod outlier;
mod pick_first;
mod pick_first_conns;
mod ring;
mod room_unsent;
mod slow;
mod support;
