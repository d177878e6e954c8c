//! Streams are polled on their connection's task (`server/local.rs` in sockrpc-transport), each
//! at most once per pass of the connection: a stream that wakes itself on every poll, never
//! ready and never waiting, must not keep the connection from reading and answering its other
//! calls. Without that budget the connection would poll the spinning stream forever and the
//! unary calls below would never be answered.

use crate::support::{bounded, fed_by, tagged, unary_promptly, wait_until, Running, WHOLE};
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::Chunk;
use std::time::Duration;
use tokio::sync::mpsc;

/// Spins the server counts before the unary calls start: the stream is running by then.
const SPINS_FIRST: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_wakes_itself_does_not_hold_up_its_connection() {
    let server = Running::start();
    let channel = server.channel().await;
    let mut client = StreamerClient::new(channel.clone());
    let probe = server.streamer.probe("spin");
    tokio::time::timeout(WHOLE, async {
        let (requests, rx) = mpsc::channel::<Chunk>(1);
        let mut request = tagged(fed_by(rx), "spin");
        request
            .metadata_mut()
            .insert_str("x-spin", "1")
            .expect("valid metadata");
        let responses = bounded("open the spinning PingPong", client.ping_pong(request))
            .await
            .expect("PingPong opens")
            .into_inner();
        wait_until("the server's stream spins", || probe.spins() > SPINS_FIRST).await;
        for seq in 0..3 {
            unary_promptly(&channel, seq, Duration::from_secs(5)).await;
        }
        assert!(
            !probe.cancelled(),
            "the stream was still spinning meanwhile"
        );
        // Dropping the response stream cancels the call: the connection drops the spinner.
        drop(responses);
        drop(requests);
        wait_until("the spinning stream is dropped", || probe.cancelled()).await;
        unary_promptly(&channel, 3, Duration::from_secs(5)).await;
    })
    .await
    .expect("the test finishes within its bound");
    server.stop().await;
}
