//! Unary calls that find the connection's write buffer past its high-water mark (8 MiB: a
//! server that reads slower than calls are made, or not at all) wait for it to drain, unsent,
//! as an HTTP/2 stream waits for its connection's flow-control window: none fails with
//! `RESOURCE_EXHAUSTED`, memory stays bounded, and a waiting call gives up at its deadline.

use super::{loopback, wait_until, TestServer, BOUND};
use bytes::Bytes;
use sockrpc::server::PingPolicy;
use sockrpc::{Code, Endpoint};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::EchoRequest;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Calls of one MiB each: far past the write buffer's 8 MiB and what the sockets hold.
const CALLS: usize = 48;
const MIB: usize = 1 << 20;

/// A proxy to `upstream` whose client-to-server direction stops reading while `open` is false:
/// the server, as the client sees it, stops reading its socket.
async fn gate(upstream: SocketAddr, open: watch::Receiver<bool>) -> SocketAddr {
    let listener = TcpListener::bind(loopback()).await.expect("bind gate");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.expect("accept");
        let server = TcpStream::connect(upstream)
            .await
            .expect("connect upstream");
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        let mut open = open;
        let up = async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                if open.wait_for(|open| *open).await.is_err() {
                    return;
                }
                match cr.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if sw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        };
        let down = async move {
            let _ = tokio::io::copy(&mut sr, &mut cw).await;
        };
        tokio::join!(up, down);
    });
    addr
}

fn payload(id: usize) -> Bytes {
    (0..MIB).map(|i| (i * 13 + id) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_a_full_write_buffer_wait_for_the_server_to_read() {
    let server = TestServer::start(loopback(), PingPolicy::default()).expect("server");
    let (open, opened) = watch::channel(true);
    let addr = gate(server.addr, opened).await;
    let endpoint = Endpoint::from_uri(&format!("tcp://{addr}")).expect("endpoint");
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

    open.send(false).expect("gate");
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

    // A call that waits past its deadline gives up, unsent.
    let started = conn.calls_started();
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

    open.send(true).expect("gate");
    let mut done = 0;
    while let Some(result) = tokio::time::timeout(BOUND * 3, calls.join_next())
        .await
        .expect("calls finish once the server reads")
    {
        result
            .expect("task")
            .expect("a call past the high-water mark failed");
        done += 1;
    }
    assert_eq!(done, CALLS);
    assert_eq!(conn.waiting(), 0);
    server.stop().await;
}
