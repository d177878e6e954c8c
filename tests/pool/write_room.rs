//! Unary calls that find the connection's write buffer past its high-water mark (8 MiB: a
//! server that reads slower than calls are made, or not at all) wait for it to drain, unsent,
//! as an HTTP/2 stream waits for its connection's flow-control window: none fails with
//! `RESOURCE_EXHAUSTED`, memory stays bounded, and a waiting call gives up at its deadline.

use super::{loopback, release_and_finish, wait_until, Proxy, TestServer, BOUND};
use bytes::Bytes;
use sockrpc::server::PingPolicy;
use sockrpc::{Code, Endpoint};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::EchoRequest;
use std::time::Duration;
use tokio::task::JoinSet;

/// Calls of one MiB each: far past the write buffer's 8 MiB and what the sockets hold.
const CALLS: usize = 48;
const MIB: usize = 1 << 20;

fn payload(id: usize) -> Bytes {
    (0..MIB).map(|i| (i * 13 + id) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_a_full_write_buffer_wait_for_the_server_to_read() {
    let server = TestServer::start(loopback(), PingPolicy::default()).expect("server");
    let proxy = Proxy::start(server.addr).await;
    let endpoint = Endpoint::from_uri(&format!("tcp://{}", proxy.addr)).expect("endpoint");
    let channel = sockrpc::Channel::connect(endpoint).await.expect("connect");
    let mut client = EchoClient::new(channel.clone());
    // One call through first: the connection is up and has the server's SETTINGS.
    client
        .echo(EchoRequest {
            payload: Bytes::from_static(b"first"),
            id: 0,
        })
        .await
        .expect("first call");

    proxy.hold.send_replace(true);
    let mut calls = JoinSet::new();
    for id in 1..=CALLS {
        let mut client = client.clone();
        calls.spawn(async move {
            let sent = payload(id);
            let request = EchoRequest {
                payload: sent.clone(),
                id: id as u64,
            };
            let reply = client.echo(request).await?.into_inner();
            assert_eq!(reply.payload, sent, "call {id} came back whole");
            Ok::<_, sockrpc::Status>(())
        });
    }
    let conn = channel.connections()[0].clone();
    wait_until("calls wait for the write buffer to drain", || {
        conn.waiting() > 0
    })
    .await;
    // Sent: the 8 MiB the buffer holds and what the sockets took, not all 48 MiB.
    assert!(
        (conn.calls_started() as usize) < CALLS,
        "{} of {CALLS} calls were sent into a buffer nobody drains",
        conn.calls_started()
    );
    assert!(
        calls.try_join_next().is_none(),
        "no call ended while the server was not reading"
    );

    // The sockets fill piece by piece (large requests go out in pieces, one per flush), and
    // calls that found room meanwhile start: wait until that settles. Bounded: 100 looks.
    let mut started = conn.calls_started();
    let mut still = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = conn.calls_started();
        still = if now == started { still + 1 } else { 0 };
        started = now;
        if still >= 5 {
            break;
        }
    }
    assert!(
        still >= 5,
        "calls kept starting into a buffer nobody drains"
    );
    // A call that waits past its deadline gives up, unsent.
    let mut request = sockrpc::Request::new(EchoRequest {
        payload: payload(0),
        id: 999,
    });
    request.set_timeout(Duration::from_millis(200));
    let status = tokio::time::timeout(BOUND, client.echo(request))
        .await
        .expect("the waiting call ends")
        .expect_err("the buffer did not drain before its deadline");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains("waiting for room"), "{status:?}");
    assert_eq!(
        conn.calls_started(),
        started,
        "the call that gave up was not sent"
    );

    let done = release_and_finish(&proxy, &mut calls, "calls past the high-water mark").await;
    assert_eq!(done, CALLS);
    assert_eq!(conn.waiting(), 0);
    server.stop().await;
}
