//! Behaviour 7: PING strikes are cleared by data the server sends, as in gRPC, not by calls the
//! client opens. PINGs that each follow an answer are never past the limit; PINGs interleaved
//! with OPENs the server never answers are strikes, and the connection is closed with GOAWAY
//! `too_many_pings`.
//!
//! Before the fix, every OPEN cleared the strikes, so a client could PING without limit by
//! opening a call (that it never completes) before each PING.

use crate::raw::{concat, echo_message, ECHO_PATH, END, GOAWAY};
use crate::service::HardEcho;
use crate::support::Running;
use crate::wire::{end_code, goaway_of, open_with, ping, RawConn, OK, PONG, RESOURCE_EXHAUSTED};
use sockrpc::server::PingPolicy;
use sockrpc::Server;
use sockrpc_tests::echo::echo_server::EchoServer;
use std::time::Duration;

const ROUNDS: u32 = 8;

fn strict() -> PingPolicy {
    let mut policy = PingPolicy::default();
    // Every PING in these tests comes sooner than this after the previous one.
    policy.min_interval = Duration::from_secs(3600);
    policy.permit_without_calls = false;
    policy.max_strikes = 2;
    policy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_strikes_are_cleared_only_by_data_the_server_sends() {
    let policy = strict();
    let server = Running::start(
        Server::builder()
            .ping_policy(policy)
            .add_service(EchoServer::new(HardEcho::default())),
    );

    // Each PING follows an answered call: the answer clears the strikes, so this client never
    // gets past one strike, however many rounds.
    let mut answered = RawConn::connect(server.addr).await;
    for round in 0..ROUNDS {
        let call_id = 2 * round + 1;
        answered
            .send(&concat(&[
                &open_with(call_id, ECHO_PATH, Duration::ZERO, 0),
                &echo_message(call_id, u64::from(round), b"x"),
            ]))
            .await;
        let frames = answered.call_until_end(call_id, "an answered call").await;
        assert_eq!(end_code(frames.last().expect("END")), OK);
        answered.send(&ping(u64::from(round))).await;
        let pong = answered.next_frame("PONG after an answer").await;
        assert_eq!(pong.kind, PONG, "round {round}: {pong:?}");
        assert_eq!(pong.body, u64::from(round).to_be_bytes());
    }

    // Each PING follows an OPEN the server never answers (its MESSAGE never comes): nothing was
    // sent, so the strikes add up and the connection is closed.
    let mut unanswered = RawConn::connect(server.addr).await;
    let mut pongs = 0;
    let mut closed = None;
    for round in 0..ROUNDS {
        let call_id = 2 * round + 1;
        unanswered
            .send(&concat(&[
                &open_with(call_id, ECHO_PATH, Duration::ZERO, 0),
                &ping(u64::from(round)),
            ]))
            .await;
        let frame = unanswered.next_frame("PONG or GOAWAY").await;
        match frame.kind {
            PONG => pongs += 1,
            GOAWAY => {
                closed = Some(goaway_of(&frame));
                break;
            }
            END => panic!(
                "an OPEN without MESSAGE was answered: code {}",
                end_code(&frame)
            ),
            _ => panic!("unexpected {frame:?}"),
        }
    }
    let (code, reason) = closed.expect("PINGs between unanswered OPENs must run out of strikes");
    assert_eq!(code, RESOURCE_EXHAUSTED, "GOAWAY code ({reason})");
    assert_eq!(reason, "too_many_pings");
    // The first PING is no strike; `max_strikes` more are tolerated; the next one closes.
    assert_eq!(
        pongs,
        policy.max_strikes + 1,
        "PINGs answered before the close"
    );
    let (frames, _) = unanswered.until_closed("after too_many_pings").await;
    assert!(frames.is_empty(), "nothing after the GOAWAY: {frames:?}");

    // The well-behaved connection was never affected.
    answered
        .send(&concat(&[
            &open_with(99, ECHO_PATH, Duration::ZERO, 0),
            &echo_message(99, 99, b"still here"),
        ]))
        .await;
    let frames = answered
        .call_until_end(99, "a call after the other was closed")
        .await;
    assert_eq!(end_code(frames.last().expect("END")), OK);
    drop(answered);
    server.stop().await;
}
