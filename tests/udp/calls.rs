//! Small calls over UDP, and the large answer a TCP re-issue fetches from the reply cache.

use crate::support::{
    deadline, echo_reply, reply_of, request, UdpTestServer, BIG_DETAILS, BIG_TRAILERS, ECHO, FAIL,
    GROW, PANIC, SLEEP,
};
use bytes::Bytes;
use sockrpc::service::udp::{Lookup, UdpOutcome};
use sockrpc::Code;
use sockrpc_tests::echo::{EchoRequest, FailRequest, GrowRequest, SleepRequest};
use std::sync::atomic::Ordering;

/// The address every client here sends from: the cache answers only the address that asked.
const LOCAL: Option<std::net::IpAddr> = Some(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

// ---------------------------------------------------------------------------------------------
// (1) Small calls go over UDP: answers, errors and metadata intact, no truncation.

/// An error status whose trailers are over the server's metadata limit loses them, as over TCP
/// (`respond.rs`), but keeps its code, details and message, which says what was dropped: it
/// was answered `INTERNAL` "response metadata: …", the handler's code lost. Details too large
/// for a REPLY are dropped the same way (e928449).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_with_trailers_too_large_keeps_its_code_over_udp() {
    let server = UdpTestServer::start().await;
    let client = server.client().await;
    let fail = request(&FailRequest {
        code: Code::FailedPrecondition as i32,
        message: BIG_TRAILERS.into(),
        details: Bytes::from_static(b"\x07"),
    });
    let status = reply_of(client.call(&FAIL, &fail, deadline()).await).expect_err("fails");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().starts_with(BIG_TRAILERS)
            && status.message().contains("[trailing metadata dropped: "),
        "{status:?}"
    );
    assert_eq!(status.details(), b"\x07");
    assert!(status.metadata().get_str("x-big").is_none(), "{status:?}");

    // Details over what a REPLY carries are dropped; the status still comes back in a datagram
    // (a REPLY, not TRUNCATED), with its code and the handler's message, noted.
    let fail = request(&FailRequest {
        code: Code::FailedPrecondition as i32,
        message: BIG_DETAILS.into(),
        details: Bytes::new(),
    });
    let status = reply_of(client.call(&FAIL, &fail, deadline()).await).expect_err("fails");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(
        status.message(),
        format!("{BIG_DETAILS} [status details of 70000 bytes over the limit of 65535; dropped]"),
    );
    assert!(status.details().is_empty(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_calls_succeed_over_udp() {
    let server = UdpTestServer::start().await;
    let client = server.client().await;
    for id in 0..20u64 {
        let mut req = request(&EchoRequest {
            payload: Bytes::from(format!("hello {id}")),
            id,
        });
        req.metadata_mut()
            .insert_str("x-note", "kept")
            .expect("valid");
        let response = reply_of(client.call(&ECHO, &req, deadline()).await).expect("echo");
        let reply = echo_reply(&response);
        assert_eq!(reply.id, id);
        assert_eq!(&reply.payload[..], format!("hello {id}").as_bytes());
        assert_eq!(response.trailers().get_str("x-note"), Some("kept"));
    }

    // An error status comes back whole, over UDP too.
    let fail = request(&FailRequest {
        code: Code::NotFound as i32,
        message: "no such thing: tab\t 𝄞".into(),
        details: Bytes::from_static(b"\x00\x01\x02"),
    });
    let status = reply_of(client.call(&FAIL, &fail, deadline()).await).expect_err("fails");
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.message(), "no such thing: tab\t 𝄞");
    assert_eq!(status.details(), b"\x00\x01\x02");

    // A handler that waits runs in a task of its own; with the RTO now at its 25 ms floor
    // the client retransmits while it sleeps, and those retransmissions never run it again.
    let slow = request(&SleepRequest {
        millis: 150,
        token: String::new(),
    });
    reply_of(client.call(&SLEEP, &slow, deadline()).await).expect("sleep");
    assert_eq!(server.handlers.sleeps.load(Ordering::SeqCst), 1);

    let stats = client.stats();
    assert_eq!(stats.calls, 22, "{stats:?}");
    assert_eq!(stats.replies, 22, "{stats:?}");
    assert_eq!(stats.truncations, 0, "{stats:?}");
    assert_eq!(stats.not_suitable, 0, "{stats:?}");
    assert_eq!(stats.cookie_requests, 1, "one cookie exchange: {stats:?}");
    assert!(client.srtt().is_some());
    let counters = server.counters();
    assert_eq!(counters.executed, 22, "{counters:?}");
    assert_eq!(counters.truncated, 0, "{counters:?}");
    assert!(
        stats.retransmits == 0 || counters.in_progress_duplicates + counters.resent > 0,
        "retransmissions were answered without running the call: {stats:?} {counters:?}"
    );
    assert_eq!(server.handlers.echoes.load(Ordering::SeqCst), 20);

    // A request too big for a datagram is not sent at all: the caller uses TCP.
    let big = request(&EchoRequest {
        payload: Bytes::from(vec![1u8; 2000]),
        id: 0,
    });
    assert!(!client.fits(&ECHO, &big));
    assert!(matches!(
        client.call(&ECHO, &big, deadline()).await,
        UdpOutcome::NotSuitable
    ));
    assert_eq!(server.counters().requests, counters.requests);
    server.shutdown().await;
}

/// Each call's connection info names its own source, however calls from two sockets
/// interleave (the server reuses one shared record while calls keep coming from one source).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_is_told_its_own_source() {
    let server = UdpTestServer::start().await;
    let clients = [server.client().await, server.client().await];
    let local = server.addr;
    let whoami = request(&EchoRequest {
        payload: Bytes::from_static(b"whoami"),
        id: 0,
    });
    // a, a, b, b, a, b: repeats and switches both.
    for which in [0, 0, 1, 1, 0, 1] {
        let client = &clients[which];
        let response = reply_of(client.call(&ECHO, &whoami, deadline()).await).expect("whoami");
        let said = String::from_utf8(echo_reply(&response).payload.to_vec()).expect("utf-8");
        let source = client.local_addr().expect("local address");
        // The client's socket is bound to the unspecified address: compare ports, and the
        // family's loopback the server saw.
        assert_eq!(
            said,
            format!(
                "Udp Some({}) Some({local})",
                std::net::SocketAddr::new(local.ip(), source.port())
            ),
            "client {which}"
        );
    }
    server.shutdown().await;
}

/// A handler that panics, on its first poll (inline, on the receive loop) or after an await (in
/// a task of its own), fails its own call with `INTERNAL`, once: a retransmission gets the same
/// answer from the cache, and the server goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_fails_its_own_call_only() {
    sockrpc_tests::panics::quiet_deliberate_panics();
    let server = UdpTestServer::start().await;
    let client = server.client().await;
    let at_once = request(&FailRequest {
        code: Code::Ok as i32,
        message: PANIC.into(),
        details: Bytes::new(),
    });
    let later = request(&SleepRequest {
        millis: 30,
        token: PANIC.into(),
    });
    for (path, req) in [(&FAIL, &at_once), (&SLEEP, &later)] {
        let status = reply_of(client.call(path, req, deadline()).await).expect_err("panicked");
        assert_eq!(status.code(), Code::Internal, "{path}: {status:?}");
        assert_eq!(status.message(), "handler panicked");
    }
    let after = request(&EchoRequest {
        payload: Bytes::from_static(b"still here"),
        id: 7,
    });
    let response = reply_of(client.call(&ECHO, &after, deadline()).await).expect("echo");
    assert_eq!(&echo_reply(&response).payload[..], b"still here");
    let counters = server.counters();
    assert_eq!(counters.panics, 2, "{counters:?}");
    // The sleeping handler ran once, whatever the client retransmitted while it slept.
    assert_eq!(server.handlers.sleeps.load(Ordering::SeqCst), 1);
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// (2) A large answer: TRUNCATED; the TCP re-issue gets the cached answer; the handler ran once.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_answer_is_truncated_and_cached_for_the_tcp_reissue() {
    let server = UdpTestServer::start().await;
    let client = server.client().await;
    let grow = request(&GrowRequest { size: 5000 });
    let (instance, call_id, _hold) = match client.call(&GROW, &grow, deadline()).await {
        UdpOutcome::Truncated {
            instance,
            call_id,
            hold,
        } => (instance, call_id, hold),
        other => panic!("expected Truncated, got {other:?}"),
    };
    assert_eq!(instance, client.instance());
    assert_eq!(client.stats().truncations, 1);
    assert_eq!(server.counters().truncated, 1);

    // What the TCP path does: the re-issue names the UDP call in the OPEN frame, and the
    // router answers from the cache, for the same method only.
    let path = GROW.as_bytes().as_ref();
    let cached = match server
        .cache
        .wait(LOCAL, instance, call_id, path, deadline())
        .await
    {
        Lookup::Done(answer) => answer.expect("grow succeeded"),
        other => panic!("expected the cached answer, got {other:?}"),
    };
    let reply = echo_reply(&cached);
    assert_eq!(reply.payload.len(), 5000);
    assert!(reply.payload.iter().all(|&b| b == 7));
    assert!(matches!(
        server.cache.lookup(LOCAL, instance, call_id + 1, path),
        Lookup::Missing
    ));
    assert!(matches!(
        server
            .cache
            .lookup(LOCAL, instance, call_id, ECHO.as_bytes()),
        Lookup::OtherMethod
    ));
    assert_eq!(
        server.handlers.grows.load(Ordering::SeqCst),
        1,
        "ran exactly once"
    );

    // An answer that fits still comes straight back.
    let fits = request(&GrowRequest { size: 1000 });
    let response = reply_of(client.call(&GROW, &fits, deadline()).await).expect("grow");
    assert_eq!(echo_reply(&response).payload.len(), 1000);
    assert_eq!(server.handlers.grows.load(Ordering::SeqCst), 2);
    server.shutdown().await;
}
