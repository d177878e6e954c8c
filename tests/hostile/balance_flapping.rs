//! A balanced channel's member whose server completes the handshake and then drops every
//! connection at once (a process crashing behind a port that still accepts, a proxy in front of
//! nothing): it must be reconnected with backoff, as the pool paces its own reconnects
//! (`pool/maintain.rs`), not at the channel's upkeep rate for ever. Before the fix the member's
//! connect task kept its backoff only until a connection came up, and the next task (started by
//! the upkeep every 250 ms, or by a call, once the connection was gone) began afresh: about four
//! connections a second, with nobody calling, as long as the channel lived, and the member's
//! failure cleared by each handshake, so it never counted as failing.

use crate::support::{bounded, start_echo, start_serving, EchoImpl};
use sockrpc::protocol::frame::{encode_settings, PREFACE};
use sockrpc::service::balance::BalanceBuilder;
use sockrpc::service::discovery;
use sockrpc::Request;
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::EchoRequest;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// Accepts, sends the server's preface and SETTINGS, and closes 5 ms later; counts accepts.
async fn flapping() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut hello = bytes::BytesMut::new();
                hello.extend_from_slice(&PREFACE);
                encode_settings(&mut hello, 0, 100);
                let _ = stream.write_all(&hello).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            });
        }
    });
    (addr, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_dropping_each_connection_after_its_handshake_is_reconnected_with_backoff() {
    let server = start_echo(EchoImpl::default());
    let (flap, accepted) = flapping().await;
    let endpoints = [flap, server.addr].map(|a| format!("tcp://{a}"));
    let channel = BalanceBuilder::default().build(discovery::fixed(endpoints).expect("endpoints"));
    let mut client = EchoClient::new(channel.clone());
    // Calls are answered by the healthy server meanwhile (a call meeting the flapping one's
    // connection as it closes fails, as a call on a broken connection may).
    let mut answered = 0;
    for id in 0..20 {
        let mut request = Request::new(EchoRequest {
            payload: vec![1].into(),
            id,
        });
        request.set_timeout(Duration::from_secs(5));
        if bounded("a call", client.echo(request)).await.is_ok() {
            answered += 1;
        }
    }
    assert!(answered >= 10, "{answered} of 20 calls answered");
    bounded("the first connection to the flapping server", async {
        while accepted.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    // Nobody calls now: reconnects follow the backoff (1 s, ×1.6, ±20 %): a few in 3 s, not
    // one per upkeep tick (12).
    let before = accepted.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let reconnects = accepted.load(Ordering::SeqCst) - before;
    assert!(
        reconnects <= 5,
        "{reconnects} connections to a server that drops each at once, in 3 s without a call: \
         {:?}",
        channel.stats()
    );
    server.stop().await;
}

/// A healthy server whose idle timeout (1.5 s, short of the 10 s a connection takes to prove
/// itself unused) retires each idle connection with a GOAWAY: the member reconnects, and is
/// never counted failing for it, as grpc-go resets a subchannel's backoff once it was READY and
/// as the pool takes a GOAWAY after a second for a retirement (`pool/maintain.rs`). Before the
/// fix each retirement counted as a failed attempt: the backoff grew past the idle timeout
/// within a few cycles, and the member was then marked failing for the rest of each wait, in
/// which a fail-fast call fails at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_retiring_idle_connections_is_never_counted_failing() {
    let server = start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .idle_timeout(Some(Duration::from_millis(1500)))
            .add_service(EchoServer::new(EchoImpl::default()))
            .serve_with_listener_and_shutdown(listener, shutdown)
    });
    let endpoints = [format!("tcp://{}", server.addr)];
    let channel = BalanceBuilder::default().build(discovery::fixed(endpoints).expect("endpoints"));
    bounded("the first connection", async {
        while !channel.stats().iter().any(|m| m.connected) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    // Nobody calls: the server retires the connection every 1.5 s (6 times in 9 s), the
    // member reconnects each time, and never fails.
    let mut retired = 0;
    let mut was_connected = true;
    for _ in 0..450 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let stats = channel.stats();
        let member = &stats[0];
        assert!(
            member.failure.is_none(),
            "a healthy server retiring idle connections counted failing: {stats:?}"
        );
        if was_connected && !member.connected {
            retired += 1;
        }
        was_connected = member.connected;
    }
    assert!(
        retired >= 2,
        "the server's idle timeout retired {retired} connections"
    );
    let mut client = EchoClient::new(channel.clone());
    let mut request = Request::new(EchoRequest {
        payload: vec![1].into(),
        id: 1,
    });
    request.set_timeout(Duration::from_secs(5));
    bounded("a fail-fast call", client.echo(request))
        .await
        .expect("a fail-fast call to the healthy server");
    server.stop().await;
}
