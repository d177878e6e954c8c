//! Many calls on one socket: the server reads requests in batches and answers each batch in a
//! few segmented sends; the client reads bundles of answers and sends the requests of calls
//! that start together in one send. Every call must still get its own answer, once.

use crate::support::{
    deadline, echo_reply, eventually, reply_of, request, UdpTestServer, ECHO, SLEEP,
};
use bytes::Bytes;
use sockrpc::service::udp::{UdpClient, UdpClientConfig, UdpServerConfig};
use sockrpc_tests::echo::{EchoRequest, SleepRequest};
use std::time::Duration;

/// No retransmission can happen in these tests: every answer comes from the first send.
fn patient() -> UdpClientConfig {
    let mut config = UdpClientConfig::default();
    config.initial_rto = Duration::from_secs(5);
    config.min_rto = Duration::from_secs(5);
    config.max_rto = Duration::from_secs(5);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_calls_in_flight_on_one_socket_each_get_their_own_answer() {
    const TASKS: u64 = 64;
    const CALLS_EACH: u64 = 8;
    let server = UdpTestServer::start().await;
    let client = UdpClient::connect(server.addr, patient())
        .await
        .expect("client");
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let client = client.clone();
        tasks.spawn(async move {
            for call in 0..CALLS_EACH {
                let id = task * CALLS_EACH + call;
                // Sizes vary, so a batch of answers holds runs of several sizes.
                let payload = Bytes::from(vec![(id % 251) as u8; (id % 7) as usize * 100]);
                let req = request(&EchoRequest {
                    payload: payload.clone(),
                    id,
                });
                let response = reply_of(client.call(&ECHO, &req, deadline()).await)
                    .unwrap_or_else(|status| panic!("call {id}: {status:?}"));
                let reply = echo_reply(&response);
                assert_eq!(reply.id, id);
                assert_eq!(reply.payload, payload, "call {id}");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("task");
    }
    let stats = client.stats();
    let counters = server.counters();
    assert_eq!(stats.replies, TASKS * CALLS_EACH, "{stats:?}");
    assert_eq!(stats.retransmits, 0, "{stats:?}");
    assert_eq!(stats.duplicates, 0, "{stats:?}");
    assert_eq!(counters.executed, TASKS * CALLS_EACH, "{counters:?}");
    assert_eq!(counters.replies, TASKS * CALLS_EACH, "{counters:?}");
    server.shutdown().await;
}

/// A server bound to a wildcard address answers from the address the request was sent to: a
/// client connected to 127.0.0.2 drops anything from another address (the kernel's choice for
/// an answer to 127.0.0.1 would be 127.0.0.1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_a_wildcard_address_answers_from_the_address_it_was_reached_at() {
    let server = UdpTestServer::start_on("0.0.0.0:0", UdpServerConfig::default()).await;
    let reached = std::net::SocketAddr::from(([127, 0, 0, 2], server.addr.port()));
    let client = UdpClient::connect(reached, UdpClientConfig::default())
        .await
        .expect("client");
    let req = request(&EchoRequest {
        payload: Bytes::from_static(b"from where?"),
        id: 7,
    });
    let soon = Some(tokio::time::Instant::now() + Duration::from_secs(3));
    let response = reply_of(client.call(&ECHO, &req, soon).await).expect("answered");
    assert_eq!(echo_reply(&response).id, 7);
    server.shutdown().await;
}

/// The same batching over IPv6 (::1), and a server bound to the IPv6 wildcard (GRO and
/// destination addresses on its socket) answering a client that reached it at ::1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_flight_over_ipv6_each_get_their_own_answer() {
    for bind in ["[::1]:0", "[::]:0"] {
        let server = UdpTestServer::start_on(bind, UdpServerConfig::default()).await;
        let reached =
            std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, server.addr.port()));
        let client = UdpClient::connect(reached, patient())
            .await
            .expect("client");
        let mut tasks = tokio::task::JoinSet::new();
        for id in 0..32u64 {
            let client = client.clone();
            tasks.spawn(async move {
                let req = request(&EchoRequest {
                    payload: Bytes::from(vec![7u8; 64]),
                    id,
                });
                let response = reply_of(client.call(&ECHO, &req, deadline()).await)
                    .unwrap_or_else(|status| panic!("call {id}: {status:?}"));
                assert_eq!(echo_reply(&response).id, id);
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("task");
        }
        assert_eq!(client.stats().retransmits, 0, "{bind}");
        assert_eq!(server.counters().executed, 32, "{bind}");
        server.shutdown().await;
    }
}

/// A call that queued its request while others were in flight and is then not polled (held in
/// a `select!` while its owner does something else) holds up no other call: requests leave on
/// the client's own flush task, not on the first caller's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_is_not_polled_holds_up_no_other_call() {
    use std::future::Future;
    let server = UdpTestServer::start().await;
    let client = UdpClient::connect(server.addr, patient())
        .await
        .expect("client");
    // One call stays in flight (its handler sleeps), so every later send is coalesced.
    let slow = {
        let client = client.clone();
        tokio::spawn(async move {
            let req = request(&SleepRequest {
                millis: 1500,
                token: String::new(),
            });
            client.call(&SLEEP, &req, deadline()).await
        })
    };
    eventually("the slow call running", || {
        server
            .handlers
            .sleeps
            .load(std::sync::atomic::Ordering::SeqCst)
            == 1
    })
    .await;
    // Polled once (its request queued), then left alone.
    let held_req = request(&EchoRequest {
        payload: Bytes::from_static(b"held"),
        id: 1,
    });
    let mut held = Box::pin(client.call(&ECHO, &held_req, deadline()));
    // The first poll may already find the answer (the server can be that quick): keep it,
    // since a finished future must not be polled again.
    let mut held_early = None;
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(outcome) = held.as_mut().poll(cx) {
            held_early = Some(outcome);
        }
        std::task::Poll::Ready(())
    })
    .await;
    // Meanwhile other calls go through, each well within the RTO (5 s): nothing waits on `held`.
    for id in 2..12u64 {
        let req = request(&EchoRequest {
            payload: Bytes::from_static(b"free"),
            id,
        });
        let soon = Some(tokio::time::Instant::now() + Duration::from_secs(2));
        let response = reply_of(client.call(&ECHO, &req, soon).await).expect("answered");
        assert_eq!(echo_reply(&response).id, id);
    }
    assert_eq!(client.stats().retransmits, 0);
    let held = match held_early {
        Some(outcome) => outcome,
        None => held.await,
    };
    let held = reply_of(held).expect("the held call, answered when polled again");
    assert_eq!(echo_reply(&held).id, 1);
    let _ = slow.await.expect("slow call");
    server.shutdown().await;
}
