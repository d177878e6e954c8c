//! The eviction floor on a TLS server (`crates/sockrpc-transport/src/server/handshakes.rs`): an
//! attacker stalling TLS handshakes after the ClientHello raises it to 1.6 s (4 caps' worth of
//! evictions, none established), and a real TLS client getting in brings it down again, so a
//! stalled handshake 1.2 s old is evicted for the next real client. The preface travels inside
//! the session, so this is the establishment the floor counts on a TLS server. Paused clock.

use super::hostile_clients::{client_hello, closed_within};
use super::*;
use std::collections::VecDeque;

/// Longer than the floor ever grows (1.6 s).
const OLD: Duration = Duration::from_secs(2);

/// A TCP connection to `addr` that sends a whole ClientHello and then nothing.
async fn stalled(addr: SocketAddr, hello: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(hello).await.expect("hello");
    stream
}

async fn assert_closed(stream: &mut TcpStream, what: &str) {
    assert!(
        closed_within(stream, PROMPT).await.is_some(),
        "{what}: still open: not evicted"
    );
}

#[tokio::test(start_paused = true)]
async fn a_real_tls_client_brings_the_floor_an_attacker_raised_back_down() {
    let _ = warnings();
    let ca = Ca::new("floor at the cap CA");
    let tls = server_tls(ServerTlsConfig::new(ca.leaf(SERVER_NAMES).identity()));
    let server = TestServer::start_with(
        Server::builder()
            .tls_handle(tls)
            .max_connections(2)
            .handshake_timeout(Duration::from_secs(60)),
    )
    .await;
    let hello = client_hello(&ca);
    let trust = || ClientTlsConfig::new().ca_certificates(ca.certificates());
    let mut waiting = VecDeque::new();
    for _ in 0..2 {
        waiting.push_back(stalled(server.addr, &hello).await);
    }
    for round in 0..8 {
        tokio::time::sleep(OLD).await;
        waiting.push_back(stalled(server.addr, &hello).await);
        let mut oldest = waiting.pop_front().expect("one stalled");
        assert_closed(&mut oldest, &format!("stalled handshake, round {round}")).await;
    }
    // The floor is at 1.6 s. A real client, 2 s on, evicts the oldest and is established.
    tokio::time::sleep(OLD).await;
    let first = Channel::connect(server.endpoint(trust()).pool_size(1))
        .await
        .expect("a real client connects at the cap");
    assert_eq!(call(&first).await.expect("served"), "Hello tls!");
    let mut oldest = waiting.pop_front().expect("one stalled");
    assert_closed(&mut oldest, "the stalled handshake the client replaced").await;
    // A fresh stalled handshake replaces the other, old, one.
    let mut young = stalled(server.addr, &hello).await;
    let mut oldest = waiting.pop_front().expect("one stalled");
    assert_closed(&mut oldest, "the last old stalled handshake").await;
    // 1.2 s on: past the halved floor (800 ms), short of 1.6 s.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let second = Channel::connect(server.endpoint(trust()).pool_size(1))
        .await
        .expect("a second real client connects once the floor came down");
    assert_eq!(call(&second).await.expect("served"), "Hello tls!");
    assert_closed(&mut young, "the stalled handshake past the halved floor").await;
    drop((first, second));
    server.stop().await;
}
