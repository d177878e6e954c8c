//! TLS handshakes stopped after the ClientHello cannot lock real clients out: at the connection
//! cap, a new connection evicts the oldest connection still in its handshake (closed, logged
//! at WARN with its peer and age) and takes its slot. Before the fix each held its slot for the
//! whole handshake timeout, and 16 of them kept every client of a server capped at 16 refused.

use super::hostile_clients::{client_hello, closed_within};
use super::*;

/// The server's connection cap here.
const CAP: usize = 16;

/// Long enough that no connection here is closed by the handshake timeout.
const HANDSHAKE: Duration = Duration::from_secs(30);

/// A TCP connection to `addr` that sends a whole ClientHello and then nothing.
async fn stalled_after_hello(addr: SocketAddr, hello: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(hello).await.expect("hello");
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_stalled_after_the_client_hello_are_evicted_oldest_first_for_real_clients() {
    let _ = warnings();
    let ca = Ca::new("stalled at the cap CA");
    let tls = server_tls(ServerTlsConfig::new(ca.leaf(SERVER_NAMES).identity()));
    let server = TestServer::start_with(
        Server::builder()
            .tls_handle(tls)
            .max_connections(CAP)
            .handshake_timeout(HANDSHAKE),
    )
    .await;
    let hello = client_hello(&ca);
    let mut stalled = Vec::new();
    for _ in 0..CAP {
        stalled.push(stalled_after_hello(server.addr, &hello).await);
    }
    let oldest = stalled[0].local_addr().expect("address");
    // Connections younger than 100 ms are not evicted (their clients may be just done).
    tokio::time::sleep(Duration::from_millis(200)).await;

    // A real client connects and is served at once: it took the oldest stalled slot.
    let started = Instant::now();
    let trust = ClientTlsConfig::new().ca_certificates(ca.certificates());
    let channel = Channel::connect(server.endpoint(trust).pool_size(1))
        .await
        .expect("a real client connects at the cap");
    assert_eq!(call(&channel).await.expect("served"), "Hello tls!");
    assert!(started.elapsed() < PROMPT, "took {:?}", started.elapsed());

    // Two more stalled newcomers take the next two oldest slots; the real client's connection
    // is established, not theirs to take.
    for _ in 0..2 {
        stalled.push(stalled_after_hello(server.addr, &hello).await);
    }
    for (i, stream) in stalled.iter_mut().take(3).enumerate() {
        let closed = closed_within(stream, PROMPT).await;
        assert!(
            closed.is_some(),
            "stalled handshake {i} (of the oldest) left open"
        );
    }
    assert!(started.elapsed() < HANDSHAKE, "evicted, not timed out");
    let younger = stalled
        .iter_mut()
        .skip(3)
        .map(|stream| async move { closed_within(stream, Duration::from_millis(500)).await });
    let closed: Vec<_> = futures_util::future::join_all(younger).await;
    assert!(
        closed.iter().all(Option::is_none),
        "younger stalled handshakes closed: {closed:?}"
    );
    assert_eq!(call(&channel).await.expect("still served"), "Hello tls!");

    let logged = warned(&["evicted at the connection limit", &peer_field(oldest)]).await;
    assert_eq!(logged.len(), 1, "{logged:#?}");
    assert!(logged[0].contains("age="), "{logged:?}");
    drop(stalled);
    drop(channel);
    server.stop().await;
}
