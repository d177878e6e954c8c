//! A UDP client whose instance another address owns on the server draws a new one. The server
//! binds an instance's watermark to the address that made it and refuses unrun (NOT_PROCESSED)
//! the calls of that instance from anywhere else. The instance is plain text in every datagram,
//! so a host that saw it (here one on 127.0.0.2, told the victim's instance) can take the mark
//! before the victim's first call and keep it: before the client drew a new instance on that
//! refusal, every later call of the victim was refused and went over TCP, for good.

use crate::address_bound::echo_with_mark;
use crate::in_flight_share::cookie_for;
use crate::paths::call;
use crate::support::{request, UdpTestServer, BOUND, ECHO};
use sockrpc::service::udp::datagram::COOKIE_LEN;
use sockrpc::service::udp::{UdpClient, UdpOutcome};
use sockrpc_tests::echo::EchoRequest;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// The attacker's address: Linux routes all of 127/8 to loopback.
const OTHER: &str = "127.0.0.2";

/// The attacker's call ids: not the victim's (a call id another address made is never
/// answered to the victim at all, and it would retransmit in vain).
const AHEAD: u32 = 1_000;

/// The client's least time between two redraws (`client/instance.rs`), and a margin.
const REDRAW_EVERY: Duration = Duration::from_millis(1_100);

/// A socket on 127.0.0.2 with a cookie for the server at `server`.
async fn attacker(server: &UdpTestServer) -> (UdpSocket, [u8; COOKIE_LEN]) {
    let socket = UdpSocket::bind(format!("{OTHER}:0"))
        .await
        .expect("bind 127.0.0.2");
    socket.connect(server.addr).await.expect("connect");
    let cookie = cookie_for(&socket).await;
    (socket, cookie)
}

/// One echo call of `client`: `Ok(())` when answered over UDP, `Err(())` when the server
/// refused it unrun (what a channel then sends over TCP); anything else fails the test.
async fn echo(client: &UdpClient) -> Result<(), ()> {
    let deadline = Some(Instant::now() + BOUND);
    match client
        .call(&ECHO, &request(&EchoRequest::default()), deadline)
        .await
    {
        UdpOutcome::Reply(Ok(_)) => Ok(()),
        UdpOutcome::Reply(Err(status)) if status.is_not_processed() => Err(()),
        other => panic!("expected an answer or a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_instance_another_address_took_draws_a_new_one() {
    let server = UdpTestServer::start().await;
    let victim = server.client().await;
    let taken = victim.instance();
    // The attacker takes the victim's mark before the victim's first call, and keeps it.
    let (socket, cookie) = attacker(&server).await;
    call(&socket, &echo_with_mark(taken, AHEAD, AHEAD, cookie)).await;
    assert_eq!(server.handlers.echoes.load(Ordering::SeqCst), 1);

    // The victim's first call is refused unrun: a channel carries it over TCP.
    assert_eq!(
        echo(&victim).await,
        Err(()),
        "refused: {OTHER} owns the instance"
    );
    assert_eq!(server.counters().other_source, 1);
    // Then its calls go over UDP again, under a fresh instance.
    for n in 0..3 {
        assert_eq!(echo(&victim).await, Ok(()), "call {n} after the refusal");
    }
    assert_ne!(
        victim.instance(),
        taken,
        "a fresh instance after the refusal"
    );
    // The attacker keeping the old mark changes nothing any more.
    call(
        &socket,
        &echo_with_mark(taken, AHEAD + 1, AHEAD + 1, cookie),
    )
    .await;
    assert_eq!(echo(&victim).await, Ok(()));

    let stats = victim.stats();
    assert_eq!(stats.redraws, 1, "{stats:?}");
    assert_eq!(stats.refused, 1, "{stats:?}");
    assert_eq!(stats.replies, 5, "{stats:?}");
    assert_eq!(server.counters().other_source, 1);
    assert_eq!(
        server.handlers.echoes.load(Ordering::SeqCst),
        6,
        "the attacker's two calls and the victim's four answered ones ran; the refused one did not"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attacker_taking_each_new_instance_makes_it_redraw_at_most_once_a_second() {
    let server = UdpTestServer::start().await;
    let victim = server.client().await;
    let (socket, cookie) = attacker(&server).await;
    call(
        &socket,
        &echo_with_mark(victim.instance(), AHEAD, AHEAD, cookie),
    )
    .await;
    // Before the refusal that redraws: a bound on how long ago the redraw was.
    let before = Instant::now();
    assert_eq!(echo(&victim).await, Err(()));
    let second = victim.instance();

    // The attacker (on the path, say) takes the new instance too, before the victim uses it.
    call(&socket, &echo_with_mark(second, AHEAD, AHEAD, cookie)).await;
    assert_eq!(echo(&victim).await, Err(()), "{OTHER} owns the new one too");
    if before.elapsed() < Duration::from_secs(1) {
        // (Checked only when the machine was quick enough for the refusal to fall within it.)
        assert_eq!(
            victim.instance(),
            second,
            "no second redraw within a second"
        );
        assert_eq!(victim.stats().redraws, 1);
        tokio::time::sleep(REDRAW_EVERY).await;
        assert_eq!(
            echo(&victim).await,
            Err(()),
            "refused once more, then redrawn"
        );
    }
    assert_ne!(victim.instance(), second);
    assert_eq!(echo(&victim).await, Ok(()), "over UDP again");
    assert_eq!(victim.stats().redraws, 2);
    server.shutdown().await;
}
