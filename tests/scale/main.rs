//! Issue 13: one channel over several servers, on real sockets over 127.0.0.1–127.0.0.3.
//!
//! - kill: SIGKILL one of three servers during 10,000 calls — only calls in flight on it fail,
//!   the rest spread over the survivors, nothing hangs;
//! - slow: one server 5 ms slower — p2c sends it under 10 %, round robin about a third;
//! - ring: a fourth server moves 15–35 % of keys, removing one moves only its keys;
//! - health: NOT_SERVING takes a server out of rotation, SERVING brings it back;
//! - dns: a real DNS server (hickory-server, in process) whose records change mid-test;
//! - etcd: a real etcd (Debian's `etcd-server`) with registrations under a lease.
//!
//! Every loop is bounded in count and every wait in time; nothing asserts speed.

mod child;
mod dns;
mod etcd;

mod health;
mod kill;
mod outlier;
mod ring;
mod slow;
mod support;
