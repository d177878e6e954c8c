//! The client's retransmission timeouts: a first transmission's jitter is drawn once per client,
//! so consecutive calls' timeouts never fall sooner than the one before (`Shared::first_jitter`).

use super::*;
use std::collections::HashSet;

/// A client on a loopback socket connected to a bound one that never answers.
async fn client() -> (UdpClient, std::net::UdpSocket) {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let to = silent.local_addr().expect("address");
    socket.connect(to).await.expect("connect");
    let client = UdpClient::from_socket(socket, UdpClientConfig::default()).expect("client");
    (client, silent)
}

#[tokio::test]
async fn a_first_timeout_is_the_same_for_every_call_of_a_client() {
    let (client, _silent) = client().await;
    let shared = &client.inner.shared;
    let first = shared.backoff(0);
    // No sample yet: the initial RTO (100 ms), plus at most a quarter.
    assert!(first >= Duration::from_millis(100), "{first:?}");
    assert!(first < Duration::from_millis(125), "{first:?}");
    for _ in 0..50 {
        assert_eq!(shared.backoff(0), first);
    }
}

#[tokio::test]
async fn clients_differ_and_retransmissions_draw_each_time() {
    let mut firsts = HashSet::new();
    let mut clients = Vec::new();
    for _ in 0..16 {
        let (client, silent) = client().await;
        firsts.insert(client.inner.shared.backoff(0));
        clients.push((client, silent));
    }
    assert!(firsts.len() > 1, "16 clients drew one first jitter");
    let shared = &clients[0].0.inner.shared;
    let seconds: HashSet<Duration> = (0..50).map(|_| shared.backoff(1)).collect();
    assert!(
        seconds.len() > 1,
        "a retransmission's jitter was drawn once"
    );
    for second in seconds {
        assert!(second >= Duration::from_millis(200), "{second:?}");
        assert!(second < Duration::from_millis(250), "{second:?}");
    }
}
