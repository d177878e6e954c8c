//! The server the scale tests SIGKILL (`tests/scale/child.rs`): the scale tests' Greeter that
//! answers with its own address, plus health, on `IP` (first argument), any free port. Prints
//! `SOCKRPC_SCALE_CHILD_ADDR=ADDR`. With a second argument `ENDPOINT|PREFIX|TTL_SECS` (and the
//! tests package's `etcd` feature) it also registers in etcd under a lease. Serves until killed,
//! until its parent is gone, or for 10 minutes at most.

#[allow(dead_code)]
#[path = "../scale/support.rs"]
mod support;

use std::time::Duration;

fn main() {
    let mut args = std::env::args().skip(1);
    let ip = args.next().unwrap_or_else(|| "127.0.0.1".to_owned());
    let etcd = args.next();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let server = support::Server::start(&ip, Duration::ZERO).await;
        #[cfg(feature = "etcd")]
        let _registration = match &etcd {
            Some(spec) => Some(register(spec, server.addr).await),
            None => None,
        };
        #[cfg(not(feature = "etcd"))]
        assert!(etcd.is_none(), "etcd registration needs the `etcd` feature");
        println!("SOCKRPC_SCALE_CHILD_ADDR={}", server.addr);
        let parent = sockrpc_tests::child::parent_pid();
        for _ in 0..600 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if sockrpc_tests::child::parent_pid() != parent {
                return;
            }
        }
    });
}

/// Registers `addr` as `ENDPOINT|PREFIX|TTL_SECS` says.
#[cfg(feature = "etcd")]
async fn register(
    spec: &str,
    addr: std::net::SocketAddr,
) -> sockrpc::service::discovery::etcd::Registration {
    let mut parts = spec.split('|');
    let (endpoint, prefix, ttl) = (
        parts.next().expect("endpoint"),
        parts.next().expect("prefix"),
        parts.next().and_then(|t| t.parse().ok()).expect("ttl"),
    );
    sockrpc::service::discovery::etcd::register(
        &[endpoint.to_owned()],
        prefix,
        addr,
        Duration::from_secs(ttl),
    )
    .await
    .expect("register in etcd")
}
