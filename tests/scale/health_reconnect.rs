//! With health checking, an endpoint whose server was killed and came back keeps one
//! connection, and its health watch runs on it. The watch used to hold on to the member's old
//! channel (its pool reconnects by itself) while the member's connect task set a new one: two
//! connections per endpoint after each reconnect, the watch on the stale one. grpc-go binds the
//! health stream to the current transport and starts it again when the transport changes.

use super::child::Child;
use super::support::{hello, until_health, Server, GREETER};
use sockrpc::service::balance::{BalanceBuilder, Health};
use sockrpc::service::discovery;
use sockrpc_health::GrpcHealthProbe;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// TCP connections in state ESTABLISHED whose local end is `addr` (the server's side of each
/// connection to it), from `/proc/net/tcp`.
fn established_to(addr: SocketAddr) -> usize {
    let IpAddr::V4(ip) = addr.ip() else {
        panic!("an IPv4 address: {addr}");
    };
    // `/proc/net/tcp` writes the address as the bytes in memory, in hex: 127.0.0.1 is
    // 0100007F on a little-endian machine.
    let local = format!(
        "{:08X}:{:04X}",
        u32::from_ne_bytes(ip.octets()),
        addr.port()
    );
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl, local_address, rem_address, st; "01" is ESTABLISHED.
            fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&"01")
        })
        .count()
}

/// Waits (bounded: 10 s) until `addr` has `want` connections; the count then.
async fn settle(addr: SocketAddr, want: usize) -> usize {
    let mut count = established_to(addr);
    for _ in 0..200 {
        if count == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        count = established_to(addr);
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_servers_endpoint_keeps_one_connection_and_its_watch_moves_to_it() {
    let first = Child::spawn("127.0.0.1", None);
    let addr = first.addr;
    let channel = BalanceBuilder::default()
        .health_check(GrpcHealthProbe::new(GREETER))
        .build(discovery::fixed([format!("tcp://{addr}")]).expect("endpoint"));
    channel
        .ready(1, Duration::from_secs(10))
        .await
        .expect("serving");
    assert_eq!(hello(&channel, None).await.expect("a call"), addr);
    assert_eq!(settle(addr, 1).await, 1, "one connection at first");
    // Killed: its connections reset, nothing is sent away.
    first.kill();
    for _ in 0..500 {
        if channel.stats().iter().all(|s| !s.connected) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Down for a while: the member's pool and its connect task both fail an attempt and back
    // off, then both come up on the restarted server, about a second after the kill.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let back = Server::on(sockrpc_tests::rebind::rebind(addr).await, Duration::ZERO);
    channel
        .ready(1, Duration::from_secs(15))
        .await
        .expect("serving again");
    for _ in 0..20 {
        assert_eq!(hello(&channel, None).await.expect("a call"), addr);
    }
    // Both the member's old pool (reconnecting by itself) and its connect task may have come
    // up; the one the member does not keep closes. Then one connection, for calls and watch.
    let count = settle(addr, 1).await;
    assert_eq!(count, 1, "connections to the restarted server");
    // The watch is on the server that runs now: it hears that server's change.
    back.health.set_not_serving(GREETER);
    until_health(&channel, Health::NotServing).await;
    assert_eq!(settle(addr, 1).await, 1, "connections after the change");
    back.shutdown().await;
}
