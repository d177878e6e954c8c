//! Flow control as the transport contract asks for it: a side that does not read pushes the
//! other back (both ways), messages held back are delivered whole and in order once it reads,
//! the status waits behind the messages, a message larger than the whole window still goes
//! through, and a side that reads one message is given one.

use crate::support::*;
use bytes::Bytes;
use sockrpc::protocol::frame::STREAM_WINDOW;
use sockrpc::protocol::MetadataMap;
use sockrpc::transport::StreamSender;
use std::future::poll_fn;
use std::task::Poll;

/// grpc-java's bound: flow control surely pushes back before this many 1 KiB messages.
const MAX_TO_SEND: usize = 10 * 1024;

/// Whether `sender` may send now, without waiting.
async fn ready_now(sender: &mut StreamSender) -> bool {
    poll_fn(|cx| Poll::Ready(sender.poll_ready(cx)))
        .await
        .is_ready()
}

fn numbered(i: usize) -> Bytes {
    let mut message = vec![b'x'; 1024];
    message[..8].copy_from_slice(&(i as u64).to_be_bytes());
    Bytes::from(message)
}

fn number(message: &Bytes) -> usize {
    let mut n = [0u8; 8];
    n.copy_from_slice(&message[..8]);
    u64::from_be_bytes(n) as usize
}

/// `flowControlPushBack`, the client's side: with the server not reading, the client is held
/// back within a window's worth of 1 KiB messages; the server then reads exactly what was sent,
/// in order, and as it reads the client may send again; the half-close arrives after them all.
#[tokio::test]
async fn a_server_that_does_not_read_pushes_the_client_back() {
    let mut server = Server::start();
    let client = client(server.addr).await;
    let (mut tx, mut rx) = open(&client, &MetadataMap::new());
    let mut call = server.take_call().await;
    let responder = call.respond(MetadataMap::new(), MetadataMap::new());
    headers(&mut rx).await.expect("headers");

    let mut sent = 0;
    while ready_now(&mut tx).await {
        assert!(sent <= MAX_TO_SEND, "no push back after {sent} messages");
        poll_fn(|cx| Poll::Ready(tx.send(cx, &numbered(sent))))
            .await
            .expect("send");
        sent += 1;
    }
    assert!(sent > 0);
    assert!(
        sent <= STREAM_WINDOW / 1024 + 1,
        "{sent} KiB sent past a {STREAM_WINDOW}-byte window"
    );
    // Held back: still not ready once everything in flight has arrived.
    tokio::time::sleep(QUIET).await;
    assert!(
        !ready_now(&mut tx).await,
        "ready with the server not reading"
    );

    // The server reads them all, in order; the client gets credit back meanwhile.
    for i in 0..sent {
        let got = call.next_request().await.expect("a message").expect("ok");
        assert_eq!(number(&got), i);
    }
    assert!(
        !call.request_within_quiet().await,
        "nothing past what was sent"
    );
    bounded("credit back", async {
        while !ready_now(&mut tx).await {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    send(&mut tx, &numbered(sent))
        .await
        .expect("send after credit");
    tx.close();
    assert_eq!(
        number(&call.next_request().await.expect("message").expect("ok")),
        sent
    );
    assert!(
        call.next_request().await.is_none(),
        "half-close after them all"
    );
    responder.end();
    finish(&mut rx).await.1.expect("OK");
    server.stop().await;
}

/// `flowControlPushBack`, the server's side (and `messageProducerOnlyProducesRequested` for a
/// response): with the client not reading, the server's producer is pulled for about a window
/// of messages and no more; once the client reads, every message arrives in order, and the OK
/// status only after the last of them.
#[tokio::test]
async fn a_client_that_does_not_read_pushes_the_server_back() {
    const OFFERED: usize = 1000;
    let mut server = Server::start();
    let client = client(server.addr).await;
    let (mut tx, mut rx) = open(&client, &MetadataMap::new());
    tx.close();
    let mut call = server.take_call().await;
    let responder = call.respond(MetadataMap::new(), MetadataMap::new());
    for i in 0..OFFERED {
        responder.send(numbered(i));
    }
    headers(&mut rx).await.expect("headers");
    tokio::time::sleep(QUIET).await;
    let pulled = responder.pulled();
    assert!(pulled > 0);
    assert!(
        pulled <= STREAM_WINDOW / 1024 + 2,
        "the server took {pulled} 1 KiB messages toward a client that reads none"
    );
    tokio::time::sleep(QUIET).await;
    assert_eq!(responder.pulled(), pulled, "still held back");
    responder.end();

    for i in 0..OFFERED {
        let got = next(&mut rx).await.expect("a message").expect("ok");
        assert_eq!(number(&got), i);
    }
    assert!(next(&mut rx).await.is_none(), "OK after the last message");
    assert!(rx.trailers().is_some());
    server.stop().await;
}

/// `flowControlDoesNotDeadlockLargeMessage`: a message one byte larger than the whole stream
/// window goes through each way, and the stream then ends normally.
#[tokio::test]
async fn a_message_larger_than_the_window_goes_through_both_ways() {
    let large = Bytes::from(vec![0x5a; STREAM_WINDOW + 1]);
    let mut server = Server::start();
    let client = client(server.addr).await;
    let (mut tx, mut rx) = open(&client, &MetadataMap::new());
    let mut call = server.take_call().await;
    let responder = call.respond(MetadataMap::new(), MetadataMap::new());
    send(&mut tx, &large).await.expect("send");
    assert_eq!(
        call.next_request().await.expect("message").expect("ok"),
        large
    );
    responder.send(large.clone());
    assert_eq!(next(&mut rx).await.expect("message").expect("ok"), large);
    tx.close();
    assert!(call.next_request().await.is_none());
    responder.end();
    finish(&mut rx).await.1.expect("OK");
    server.stop().await;
}

/// `messageProducerOnlyProducesRequestedMessages`: of two messages sent, a server that reads
/// one is given one; the other waits, whole, for the next read.
#[tokio::test]
async fn a_reader_is_given_only_what_it_reads() {
    let mut server = Server::start();
    let client = client(server.addr).await;
    let (mut tx, rx) = open(&client, &MetadataMap::new());
    let mut call = server.take_call().await;
    let _responder = call.respond(MetadataMap::new(), MetadataMap::new());
    send(&mut tx, &Bytes::from_static(b"MESSAGE 1"))
        .await
        .expect("send");
    send(&mut tx, &Bytes::from_static(b"MESSAGE 2"))
        .await
        .expect("send");
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        call.next_request().await.expect("one").expect("ok"),
        Bytes::from_static(b"MESSAGE 1")
    );
    assert_eq!(
        call.next_request().await.expect("two").expect("ok"),
        Bytes::from_static(b"MESSAGE 2")
    );
    assert!(!call.request_within_quiet().await, "no third message");
    drop((tx, rx));
    call.handler_gone().await;
    drop(call);
    server.stop().await;
}
