//! `sockrpc serve --max-connection-age`: the server sends a connection away (GOAWAY) at its age
//! and calls carry on over a new one; bad values are refused with a clear message.

mod support;

use bytes::Bytes;
use sockrpc::{Body, Call, Channel, MethodPath, Request};
use std::time::{Duration, Instant};
use support::{first_line, run, sockrpc, spawn_server, tcp_addr};
use tower::ServiceExt;

/// One Echo call through `channel`; panics unless it succeeds.
async fn echo(channel: &Channel) {
    // `Payload { bytes body = 1; }`, encoded by hand: tag, length, bytes.
    let call = Call::new(
        MethodPath::from_static("/sockrpc.bench.Bench/Echo"),
        Request::new(Body::once(Bytes::from_static(&[0x0a, 2, b'h', b'i']))),
    );
    let response = channel.clone().oneshot(call).await.expect("echo answered");
    response
        .into_inner()
        .single()
        .await
        .expect("the echo's message");
}

#[test]
fn serve_max_connection_age_sends_connections_away_and_calls_go_on() {
    let (_server, lines) = spawn_server(sockrpc().args([
        "serve",
        "--tcp",
        "127.0.0.1:0",
        "--max-connection-age",
        "1500ms",
        "--max-connection-age-grace",
        "5s",
    ]));
    let addr = tcp_addr(&first_line(&lines));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let channel = Channel::connect(addr).await.expect("connect");
        echo(&channel).await;
        let first = channel.connections().pop().expect("a connection");
        // Calls every 20 ms until the server sends the first connection away: 1.5 s ± 10 %,
        // bounded at 10 s. None of them may fail.
        let started = Instant::now();
        let mut calls = 0;
        while !first.was_sent_away() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "not sent away after {calls} calls in 10 s"
            );
            echo(&channel).await;
            calls += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let age = started.elapsed();
        assert!(age >= Duration::from_millis(1200), "sent away at {age:?}");
        for _ in 0..5 {
            echo(&channel).await;
        }
        let now = channel.connections();
        assert!(
            now.iter()
                .any(|c| !c.was_sent_away() && c.calls_started() > 0),
            "calls after the GOAWAY went over a new connection"
        );
    });
}

#[test]
fn serve_refuses_a_bad_connection_age() {
    for (args, want) in [
        (vec!["--max-connection-age", "0ms"], "at least 1ms"),
        (
            vec!["--max-connection-age", "5 parsecs"],
            "the unit must be",
        ),
        (vec!["--max-connection-age", "1000h"], "must be between"),
        (
            vec!["--max-connection-age-grace", "1s"],
            "--max-connection-age",
        ),
    ] {
        let output = run(sockrpc().arg("serve").args(&args));
        assert!(!output.status.success(), "{args:?} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
}
