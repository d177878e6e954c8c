//! Stream messages, like new calls, wait while the connection's write buffer is past its
//! high-water mark (8 MiB). Each stream's window bounds what one stream sends ahead, but not
//! what many streams send together: without this wait, a server that stops reading lets a
//! client buffer a message per open stream (4,096 streams × up to 4 MiB).

use super::{release_and_finish, wait_until, Proxy, BOUND};
use bytes::Bytes;
use futures_util::StreamExt;
use sockrpc::{Endpoint, Server};
use sockrpc_tests::mirror::Mirror;
use sockrpc_tests::serve::Running;
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::streamer_server::StreamerServer;
use sockrpc_tests::stream::Chunk;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// Streams open on the one connection, each with one message of a MiB to send.
const STREAMS: usize = 128;
const MIB: usize = 1 << 20;
/// Messages of a MiB that may leave the streams while the server reads nothing: the 8 MiB the
/// write buffer holds, what the client's and the proxy's sockets take (tens of MiB where the
/// kernel lets a receive buffer grow to 32 MiB), and a message per stream caught between its
/// check and its send (13 in all here). Without the wait every stream's message is buffered.
const HELD_BACK: usize = STREAMS / 2;

fn payload(stream: usize) -> Bytes {
    (0..MIB).map(|i| (i * 7 + stream) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_messages_past_a_full_write_buffer_wait_for_the_server_to_read() {
    let server = Running::start(Server::builder().add_service(StreamerServer::new(Mirror)));
    let proxy = Proxy::start(server.addr).await;
    let endpoint = Endpoint::from_uri(&format!("tcp://{}", proxy.addr)).expect("endpoint");
    let channel = sockrpc::Channel::connect(endpoint).await.expect("connect");
    let client = StreamerClient::new(channel.clone());
    let (go, gate) = tokio::sync::watch::channel(false);
    let offered = Arc::new(AtomicUsize::new(0));
    let (opened_tx, mut opened) = tokio::sync::mpsc::channel::<()>(STREAMS);

    let mut streams = JoinSet::new();
    for stream in 0..STREAMS {
        let mut client = client.clone();
        let gate = gate.clone();
        let offered = Arc::clone(&offered);
        let opened_tx = opened_tx.clone();
        // Made before the gate opens, so that every stream is ready to send at once.
        let big = payload(stream);
        streams.spawn(async move {
            let expected = big.clone();
            // A small first message, then the big one once the gate opens (the feeder asks for
            // it only when the stream may send).
            let requests = futures_util::stream::iter(0..2u64).then(move |seq| {
                let mut gate = gate.clone();
                let offered = Arc::clone(&offered);
                let big = big.clone();
                async move {
                    if seq == 0 {
                        return Chunk {
                            seq,
                            payload: Bytes::from_static(b"open"),
                        };
                    }
                    let _ = gate.wait_for(|go| *go).await;
                    offered.fetch_add(1, Ordering::SeqCst);
                    Chunk { seq, payload: big }
                }
            });
            let mut answers = client.ping_pong(requests).await?.into_inner();
            let first = answers.message().await?.expect("the first echo");
            assert_eq!(first.seq, 0);
            let _ = opened_tx.send(()).await;
            let big = answers.message().await?.expect("the big echo");
            assert_eq!(big.seq, 1);
            assert!(big.payload == expected, "stream {stream}: echoed whole");
            assert!(answers.message().await?.is_none(), "then the end");
            Ok::<_, sockrpc::Status>(())
        });
    }
    drop(opened_tx);
    for _ in 0..STREAMS {
        tokio::time::timeout(BOUND, opened.recv())
            .await
            .expect("every stream opens")
            .expect("no stream failed to open");
    }

    // The server stops reading; every stream now has a MiB to send.
    proxy.hold.send_replace(true);
    go.send_replace(true);
    wait_until("the streams fill the write buffer", || {
        offered.load(Ordering::SeqCst) >= 8
    })
    .await;
    // Room for any stream that would send past the mark to do so.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = offered.load(Ordering::SeqCst);
    eprintln!("{sent} of {STREAMS} messages of a MiB left their streams while held");
    assert!(
        sent <= HELD_BACK,
        "{sent} of {STREAMS} streams sent a MiB into a buffer nobody drains"
    );
    assert!(
        streams.try_join_next().is_none(),
        "no stream ended while held"
    );

    let done = release_and_finish(&proxy, &mut streams, "held streams").await;
    assert_eq!(done, STREAMS);
    assert_eq!(offered.load(Ordering::SeqCst), STREAMS);
    server.stop().await;
}
