//! Where the two ends cross: request messages and a half-close the client sends while the
//! server's END is on its way (the server must drop them quietly), streams the client opens
//! while the server's GOAWAY is on its way and after it arrived (refused unstarted, never
//! reaching a handler), and a stream's deadline, which both ends keep.

use crate::streams::next_stream_works;
use crate::support::*;
use bytes::Bytes;
use sockrpc::protocol::{Code, MetadataMap};
use sockrpc::transport::ServerConfig;
use std::future::poll_fn;
use std::task::Poll;
use std::time::Duration;

/// Requests sent without waiting while the server ends the call: those that leave after the
/// END are dropped by the server (its late-frame rule), the rest refused by the client; the
/// connection survives and no protocol error is raised either way.
#[tokio::test]
async fn requests_crossing_the_servers_end_are_dropped_quietly() {
    let mut server = Server::start();
    let client = client(server.addr).await;
    let conn = server.take_conn().await;
    for round in 0..5 {
        let (mut tx, mut rx) = open(&client, &MetadataMap::new());
        let mut call = server.take_call().await;
        call.respond(MetadataMap::new(), MetadataMap::new()).end();
        // Send as fast as credit allows, never waiting for more; stop at the first refusal.
        for _ in 0..50 {
            let ready = poll_fn(|cx| Poll::Ready(tx.poll_ready(cx))).await;
            match ready {
                Poll::Ready(Ok(())) => {
                    let sent = poll_fn(|cx| Poll::Ready(tx.send(cx, &Bytes::from_static(b"x"))));
                    if sent.await.is_err() {
                        break;
                    }
                }
                Poll::Ready(Err(_)) => break,
                Poll::Pending => tokio::task::yield_now().await,
            }
        }
        tx.close();
        finish(&mut rx).await.1.expect("the server's OK stands");
        drop(call);
        next_stream_works(&client, &mut server).await;
        assert!(
            !client.is_closed(),
            "round {round}: {:?}",
            client.closed_reason()
        );
    }
    assert!(!client.peer_broke_protocol());
    assert!(!conn.is_terminated());
    server.stop().await;
}

/// Streams opened while the server shuts down: one opened before the client has read the
/// GOAWAY and one after are both refused unstarted (`UNAVAILABLE`, not processed: safe to send
/// again elsewhere), and neither reaches a handler; the stream already open finishes.
#[tokio::test]
async fn streams_opened_during_server_shutdown_are_refused_unstarted() {
    let mut config = ServerConfig::default();
    config.grace_period = Duration::from_secs(30);
    let mut server = Server::start_with(config);
    let client = client(server.addr).await;
    let (mut tx, mut rx) = open(&client, &MetadataMap::new());
    let mut call = server.take_call().await;
    let responder = call.respond(MetadataMap::new(), MetadataMap::new());
    headers(&mut rx).await.expect("headers");

    server.begin_shutdown();
    // Opened at once: most likely before the GOAWAY arrives.
    let early = client.open_stream(&METHOD, &MetadataMap::new(), None, None);
    bounded("the GOAWAY reaching the client", async {
        while !client.was_sent_away() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let late = client
        .open_stream(&METHOD, &MetadataMap::new(), None, None)
        .expect_err("refused after the GOAWAY");
    assert_eq!(late.code(), Code::Unavailable, "{late:?}");
    assert!(late.is_not_processed(), "{late:?}");
    match early {
        Err(err) => {
            assert_eq!(err.code(), Code::Unavailable, "{err:?}");
            assert!(err.is_not_processed(), "{err:?}");
        }
        Ok((_early_tx, mut early_rx)) => {
            let err = headers(&mut early_rx)
                .await
                .expect_err("refused by the server");
            assert_eq!(err.code(), Code::Unavailable, "{err:?}");
            assert!(err.is_not_processed(), "{err:?}");
        }
    }
    assert!(
        server.no_call().await,
        "a stream opened during shutdown reached the server"
    );

    responder.send(Bytes::from_static(b"done"));
    responder.end();
    tx.close();
    let (messages, end) = finish(&mut rx).await;
    assert_eq!(messages, [Bytes::from_static(b"done")]);
    end.expect("the open stream finishes OK");
    drop(call);
    server.stopped().await;
}

/// A stream's deadline travels to the server and both ends keep it: the client's stream fails
/// `DEADLINE_EXCEEDED`, and the server drops the handler.
#[tokio::test]
async fn a_streams_deadline_is_kept_by_both_ends() {
    let mut server = Server::start();
    let client = client(server.addr).await;
    let (_tx, mut rx) = client
        .open_stream(
            &METHOD,
            &MetadataMap::new(),
            Some(Duration::from_millis(300)),
            None,
        )
        .expect("open");
    let mut call = server.take_call().await;
    let timeout = call.timeout.expect("the OPEN carried the deadline");
    assert!(timeout <= Duration::from_millis(300), "{timeout:?}");
    assert!(timeout > Duration::ZERO);
    let _responder = call.respond(MetadataMap::new(), MetadataMap::new());
    let (_, end) = finish(&mut rx).await;
    let err = end.expect_err("past its deadline");
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    call.handler_gone().await;
    drop(call);
    next_stream_works(&client, &mut server).await;
    server.stop().await;
}
