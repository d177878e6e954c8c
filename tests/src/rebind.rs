//! Listening again on the address of a server a test has stopped, to bring it back.
//!
//! The stopped server's port is free, but only until another socket takes it: tests run in
//! parallel, and a connection any of them opens meanwhile may be given that port as its own
//! local port, which keeps a listener from binding it until that connection closes. A bind
//! that finds the port in use is tried again for a while instead of failing the test.

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// How long [`rebind`] keeps trying.
const PATIENCE: Duration = Duration::from_secs(10);

/// A listener on `addr`, tried again every 20 ms while the port is in use, for up to 10 s.
/// Panics with the last error past that, or at once on any other error.
pub async fn rebind(addr: SocketAddr) -> TcpListener {
    let started = Instant::now();
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(err)
                if err.kind() == std::io::ErrorKind::AddrInUse && started.elapsed() < PATIENCE =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(err) => panic!("could not listen on {addr} again: {err}"),
        }
    }
}

/// Three listeners on one port at 127.0.0.1, .2 and .3, as servers behind A records (which
/// carry no port) need. The port is drawn on 127.0.0.1 and may be taken on the others: tried
/// 20 times, then panics.
pub async fn listeners_on_one_port() -> [TcpListener; 3] {
    for _ in 0..20 {
        let first = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = first.local_addr().expect("addr").port();
        let (Ok(second), Ok(third)) = (
            TcpListener::bind(("127.0.0.2", port)).await,
            TcpListener::bind(("127.0.0.3", port)).await,
        ) else {
            continue;
        };
        return [first, second, third];
    }
    panic!("no port free on 127.0.0.1, .2 and .3 in 20 tries");
}
