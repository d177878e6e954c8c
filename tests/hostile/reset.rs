//! A server that sends GOAWAY and closes with the client's bytes unread resets the connection.
//! The client may then fail a write before its reader has taken in the GOAWAY, which the
//! socket still holds (Linux hands out what was received before the reset's error). The calls
//! the GOAWAY names as never started must still go again on a new connection, not fail as
//! "connection write failed".
//!
//! The client runs on a current-thread runtime, and the test blocks its thread while the fake
//! server resets the connection, so the client's next write meets the reset before its runtime
//! has looked at the socket's readiness again: the order that lost the GOAWAY.

use crate::raw::PREFACE;
use crate::server_probe::{goaway, next_request, ANSWER};
use crate::support::BOUND;
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::EchoRequest;
use std::sync::mpsc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// The first connection: reads call 1, waits until call 2's bytes are in its socket, then
/// sends GOAWAY (last call id 0: neither call started) and closes with them unread (a reset),
/// then says so on `reset`. Every later connection answers each call with its request.
fn fake_server(reset: mpsc::Sender<()>) -> std::net::SocketAddr {
    let (addr_tx, addr_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            addr_tx
                .send(listener.local_addr().expect("addr"))
                .expect("send");
            // Bounded: 8 connections, 3 × BOUND.
            let _ = tokio::time::timeout(BOUND * 3, async {
                for n in 0..8 {
                    let Ok((mut stream, _)) = listener.accept().await else {
                        return;
                    };
                    let _ = stream.write_all(PREFACE).await;
                    let mut buf = Vec::new();
                    if n == 0 {
                        if next_request(&mut stream, &mut buf).await.is_none() {
                            return;
                        }
                        // Bounded: 400 looks, 5 ms apart (well inside the test's wait).
                        let mut peek = [0u8; 64];
                        for _ in 0..400 {
                            if !buf.is_empty() || stream.peek(&mut peek).await.unwrap_or(0) > 0 {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        let _ = stream.write_all(&goaway(0, 14, b"going")).await;
                        drop(stream);
                        let _ = reset.send(());
                        continue;
                    }
                    tokio::spawn(async move {
                        while let Some((id, body)) = next_request(&mut stream, &mut buf).await {
                            let answer = crate::raw::frame(crate::raw::MESSAGE, ANSWER, id, &body);
                            if stream.write_all(&answer).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            })
            .await;
        });
    });
    addr_rx
        .recv_timeout(BOUND)
        .expect("the fake server's address")
}

#[test]
fn calls_a_goaway_names_survive_a_reset_that_fails_the_next_write() {
    let (reset_tx, reset_rx) = mpsc::channel();
    let addr = fake_server(reset_tx);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let channel = sockrpc::Channel::connect(format!("tcp://{addr}"))
            .await
            .expect("connect");
        let request = |id: u64| EchoRequest {
            payload: vec![7; 16].into(),
            id,
        };
        let mut first = EchoClient::new(channel.clone());
        let first = tokio::spawn(async move { first.echo(request(1)).await });
        // Let call 1 go out, then call 2 (each writes from its own task).
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut second = EchoClient::new(channel.clone());
        let second = tokio::spawn(async move { second.echo(request(2)).await });
        tokio::task::yield_now().await;
        // Blocks this runtime's only thread: nothing of the client runs until the reset is in.
        reset_rx
            .recv_timeout(BOUND)
            .expect("the fake server reset the connection");
        std::thread::sleep(Duration::from_millis(50));
        // A third call writes into the reset connection.
        let mut third = EchoClient::new(channel);
        let third = tokio::spawn(async move { third.echo(request(3)).await });
        for (id, call) in [(1, first), (2, second), (3, third)] {
            let reply = tokio::time::timeout(BOUND, call)
                .await
                .unwrap_or_else(|_| panic!("call {id} hung"))
                .expect("task")
                .unwrap_or_else(|err| panic!("call {id} failed: {err:?}"));
            assert_eq!(reply.into_inner().id, id);
        }
    });
}
