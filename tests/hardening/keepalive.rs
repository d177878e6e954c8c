//! Server-side keepalive: a client the server has heard nothing from for the keepalive interval
//! is PINGed, and closed when the PONG does not come in time — a client that vanished without
//! a FIN does not hold its connection for ever. A client that answers is left alone. Both on
//! tokio's paused clock.

use crate::raw::{frame, GOAWAY, PING};
use crate::service::HardEcho;
use crate::support::{bounded, Running};
use crate::wire::{goaway_of, RawConn, PONG, UNAVAILABLE};
use sockrpc::transport::Keepalive;
use sockrpc::Server;
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::EchoRequest;
use std::time::Duration;
use tokio::time::Instant;

const INTERVAL: Duration = Duration::from_secs(3);
const TIMEOUT: Duration = Duration::from_secs(1);

fn server() -> Running {
    Running::start(
        Server::builder()
            .idle_timeout(None)
            .keepalive(Some(Keepalive::new(INTERVAL, TIMEOUT)))
            .add_service(EchoServer::new(HardEcho::default())),
    )
}

#[tokio::test(start_paused = true)]
async fn server_keepalive_closes_a_client_that_stops_answering() {
    let server = server();
    let start = Instant::now();
    let mut conn = RawConn::connect(server.addr).await;
    let ping = conn.next_frame("the keepalive PING").await;
    assert_eq!(ping.kind, PING, "{ping:?}");
    assert!(
        Instant::now() >= start + INTERVAL,
        "a PING only after the interval"
    );
    // No PONG: the server gives up one timeout later.
    let goaway = conn.next_frame("the GOAWAY").await;
    let (code, reason) = goaway_of(&goaway);
    assert_eq!(goaway.kind, GOAWAY);
    assert_eq!(code, UNAVAILABLE, "{reason}");
    assert!(reason.contains("keepalive"), "{reason:?}");
    assert!(Instant::now() >= start + INTERVAL + TIMEOUT);
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn server_keepalive_spares_a_client_that_answers() {
    let server = server();
    let mut conn = RawConn::connect(server.addr).await;
    for round in 0..3 {
        let ping = conn.next_frame("a keepalive PING").await;
        assert_eq!(ping.kind, PING, "round {round}: {ping:?}");
        conn.send(&frame(PONG, 0, 0, &ping.body)).await;
    }
    drop(conn);
    // A generated client answers PINGs by itself: after several intervals it still calls on
    // the connection it opened.
    let mut client = bounded(
        "connect",
        EchoClient::connect(format!("tcp://{}", server.addr)),
    )
    .await
    .expect("connect");
    tokio::time::sleep(INTERVAL * 4).await;
    bounded(
        "a call after four intervals",
        client.echo(EchoRequest::default()),
    )
    .await
    .expect("the connection is alive and serving");
    server.stop().await;
}
