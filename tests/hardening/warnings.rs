//! A hostile client cannot flood the server's log. Why a connection was closed (a protocol
//! error, no preface in time) is a WARN, but at most one per kind every 10 s per server: the
//! rest go to DEBUG only, counted, and the next WARN of that kind says how many there were.
//! Before the budget, each bad connection logged a WARN of its own.

use crate::service::HardEcho;
use crate::support::{Running, Warnings};
use crate::wire::RawConn;
use sockrpc::Server;
use sockrpc_tests::echo::echo_server::EchoServer;
use std::time::Duration;

/// Bad connections in each flood.
const BAD: usize = 50;

/// The server's budget: one WARN per kind per this long.
const EVERY: Duration = Duration::from_secs(10);

const PROTOCOL_ERROR: &str = "closing connection: protocol error";
const NO_PREFACE: &str = "closing connection: no preface in time";

/// A connection whose first bytes are not sockrpc's preface, until the server closes it.
async fn wrong_preface(server: &Running) {
    let mut bad = RawConn::connect_silent(server.addr).await;
    bad.send(b"NOTSOCKRPC\x01\x00").await;
    let _ = bad.until_closed("a connection with a wrong preface").await;
}

/// A connection that sends nothing, until the server closes it at the handshake timeout.
async fn silent(server: &Running) {
    let mut quiet = RawConn::connect_silent(server.addr).await;
    let _ = quiet.until_closed("a silent connection").await;
}

#[tokio::test(start_paused = true)]
async fn fifty_bad_connections_are_one_warning_and_the_next_counts_the_rest() {
    let warnings = Warnings::capture();
    let server = Running::start(
        Server::builder()
            .handshake_timeout(Duration::from_secs(1))
            .add_service(EchoServer::new(HardEcho::default())),
    );
    for _ in 0..BAD {
        wrong_preface(&server).await;
    }
    let logged = warnings.lines_with(PROTOCOL_ERROR);
    assert_eq!(logged.len(), 1, "one warning for {BAD}: {logged:#?}");
    assert!(
        logged[0].contains("WARN") && logged[0].contains("peer"),
        "{logged:?}"
    );

    // Another kind has a budget of its own: silent connections, closed at the handshake
    // timeout, all at once.
    let silents: Vec<_> = (0..BAD).map(|_| silent(&server)).collect();
    futures_util::future::join_all(silents).await;
    let logged = warnings.lines_with(NO_PREFACE);
    assert_eq!(logged.len(), 1, "one warning for {BAD}: {logged:#?}");

    // A budget period on, the next of each kind is a WARN again, and counts the others.
    tokio::time::sleep(EVERY).await;
    wrong_preface(&server).await;
    silent(&server).await;
    for (kind, text) in [
        ("protocol errors", PROTOCOL_ERROR),
        ("no preface", NO_PREFACE),
    ] {
        let logged = warnings.lines_with(text);
        assert_eq!(logged.len(), 2, "{kind}: {logged:#?}");
        let later = &logged[1];
        assert!(
            later.contains("WARN")
                && later
                    .contains("(49 more of this kind since the last warning, logged at DEBUG only")
                && later.contains("suppressed=49"),
            "{kind}: {later}"
        );
    }
    server.stop().await;
}
