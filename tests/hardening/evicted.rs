//! What a connection evicted at the connection cap is told, and that eviction cannot starve
//! slow handshakes (`crates/sockrpc-transport/src/server/handshakes.rs`, `evict.rs`).
//!
//! A plain client has the server's PREFACE as soon as it connects and may write calls before
//! the server reads its own preface; evicted then, it used to see a bare close ("connection
//! closed by the server") and could not tell that none of its calls ran. It now gets a GOAWAY
//! (last call id 0, the connection limit named), so its calls go again or fail as not processed
//! with that reason. And when every handshake takes longer than the 100 ms floor (a loaded
//! server), newcomers used to evict each one before it finished: the floor now grows while
//! evictions outrun establishments, so some finish. A proxy that holds what the client sends for
//! a while stands in for the slow handshake (the server reads the preface only then); the tests
//! run on tokio's paused clock.

use crate::raw::{ServerFrame, GOAWAY};
use crate::service::HardEcho;
use crate::support::{bounded, Running, Warnings};
use crate::wire::{goaway_of, RawConn, UNAVAILABLE};
use sockrpc::{Code, Server};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::EchoRequest;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A WARN capture on this thread, for a test that evicts but reads no warnings. A test thread
/// with no subscriber that is the first to reach the eviction WARN while another test captures
/// on its own thread can cache that callsite as never wanted (tracing-core's `has_just_one`
/// path, tokio-rs/tracing#3611); the capturing test (`eviction.rs`) then sees no WARN. It
/// failed so in 6 of 30 runs of `hardening evict`; every test that evicts holds one of these.
pub(crate) fn quiet() -> Warnings {
    Warnings::capture()
}

pub(crate) fn capped_server(cap: usize) -> Running {
    Running::start(
        Server::builder()
            .max_connections(cap)
            .handshake_timeout(Duration::from_secs(60))
            .idle_timeout(None)
            .add_service(EchoServer::new(HardEcho::default())),
    )
}

/// A TCP proxy to `server` that passes what the server sends at once and what a client sends
/// only `delay` after it connected: to the server, every client's handshake takes `delay`.
pub(crate) async fn delaying_proxy(server: SocketAddr, delay: Duration) -> Delaying {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let addr = listener.local_addr().expect("proxy address");
    let (connected, upstream) = watch::channel(0usize);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let connected = connected.clone();
            tokio::spawn(async move {
                let Ok(upstream) = TcpStream::connect(server).await else {
                    return;
                };
                connected.send_modify(|n| *n += 1);
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = upstream.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                });
                tokio::time::sleep(delay).await;
                let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
            });
        }
    });
    Delaying { addr, upstream }
}

/// A [`delaying_proxy`]: its address, and what it has connected to the server.
pub(crate) struct Delaying {
    pub(crate) addr: SocketAddr,
    upstream: watch::Receiver<usize>,
}

impl Delaying {
    /// Waits (bounded) until the proxy has connected `n` clients to the server in all. Each is
    /// then in the server's accept queue, ahead of any connection opened after, and its `delay`
    /// runs from that instant of the paused clock: a test orders its next connections from
    /// there, not from when it asked for the client's (on a loaded machine, the paused clock
    /// can move on while that connection is still on its way through the kernel).
    pub(crate) async fn connected(&mut self, n: usize) {
        bounded(
            "the proxy connects to the server",
            self.upstream.wait_for(|c| *c >= n),
        )
        .await
        .expect("the proxy runs");
    }
}

/// `frames` (what an evicted connection got before it closed) hold its GOAWAY: last call id 0
/// (none ran), UNAVAILABLE, the connection limit named.
pub(crate) fn assert_told_evicted(frames: &[ServerFrame], what: &str) {
    let goaway = frames
        .iter()
        .find(|f| f.kind == GOAWAY)
        .unwrap_or_else(|| panic!("{what}: closed without a GOAWAY: {frames:?}"));
    assert_eq!(
        &goaway.body[..4],
        &[0, 0, 0, 0],
        "{what}: last call id 0: none ran"
    );
    let (code, reason) = goaway_of(goaway);
    assert_eq!(code, UNAVAILABLE, "{what}: {reason}");
    assert!(reason.contains("connection limit"), "{what}: {reason}");
}

/// One echo call on a fresh generated client connected to `addr`, within 5 s.
pub(crate) async fn call_through(addr: SocketAddr, id: u64) -> Result<u64, sockrpc::Status> {
    let call = async {
        let mut client = EchoClient::connect(format!("tcp://{addr}")).await?;
        let request = EchoRequest {
            payload: Default::default(),
            id,
        };
        Ok(client.echo(request).await?.into_inner().id)
    };
    tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .unwrap_or_else(|_| Err(sockrpc::Status::deadline_exceeded("call timed out")))
}

#[tokio::test(start_paused = true)]
async fn an_evicted_connection_gets_a_goaway_naming_the_connection_limit() {
    let _warnings = quiet();
    const CAP: usize = 4;
    let server = capped_server(CAP);
    let mut stalled = Vec::new();
    for _ in 0..CAP {
        stalled.push(RawConn::connect_silent(server.addr).await);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _newcomer = RawConn::connect(server.addr).await;
    let (frames, _) = stalled[0].until_closed("the evicted connection").await;
    assert_told_evicted(&frames, "the evicted connection");
    drop(stalled);
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_client_evicted_right_after_it_connected_has_its_call_retried_or_told_why() {
    let _warnings = quiet();
    let server = capped_server(1);
    let mut proxy = delaying_proxy(server.addr, Duration::from_millis(300)).await;
    // Through the proxy: connected (the server's PREFACE passes at once), its preface and call
    // held for 300 ms, so the server still counts it in its handshake. Its 150 ms are counted
    // from when the proxy connected it to the server.
    let call = tokio::spawn(call_through(proxy.addr, 7));
    proxy.connected(1).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    // A newcomer, straight to the server, evicts it.
    let newcomer = RawConn::connect_silent(server.addr).await;
    match bounded("the evicted client's call", call)
        .await
        .expect("call task")
    {
        Ok(id) => assert_eq!(id, 7),
        Err(status) => {
            assert!(
                matches!(status.code(), Code::Unavailable | Code::ResourceExhausted)
                    && status.message().contains("connection limit"),
                "told why, not a bare close: {status:?}"
            );
        }
    }
    drop(newcomer);
    server.stop().await;
}

/// Every handshake takes 300 ms (the proxy's delay), a new client comes every 50 ms, the cap is
/// 4: with a fixed 100 ms floor each connection was evicted at 100 to 150 ms and no call ever
/// got through. The growing floor lets some handshakes finish.
#[tokio::test(start_paused = true)]
async fn slow_handshakes_at_the_cap_still_complete_while_newcomers_keep_coming() {
    let _warnings = quiet();
    const CLIENTS: u64 = 60;
    const CAP: usize = 4;
    let server = capped_server(CAP);
    let proxy = delaying_proxy(server.addr, Duration::from_millis(300)).await;
    let mut calls = Vec::new();
    for id in 0..CLIENTS {
        calls.push(tokio::spawn(call_through(proxy.addr, id)));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut served = 0;
    for call in calls {
        if let Ok(Ok(_)) = bounded("a slow client's call", call).await {
            served += 1;
        }
    }
    // The last `CAP` clients are never evicted (no newcomer comes after them): more than those
    // must get through.
    assert!(served > CAP, "only {served} of {CLIENTS} calls got through");
    server.stop().await;
}
