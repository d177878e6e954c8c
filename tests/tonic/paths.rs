//! Where compression does not go: messages after a `CompressionSwitch` was turned off (on a
//! server's answer stream and on a client's request stream), and calls over UDP, which carry
//! no encoding fields.

use crate::support::{bounded, payload, EchoStreamer, Running, Sniffer};
use futures_util::stream::{self, StreamExt};
use sockrpc::{Channel, CompressionEncoding, CompressionSwitch, Endpoint, Request, Server};
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::streamer_server::StreamerServer;
use sockrpc_tests::stream::{Chunk, ProduceRequest};

const SIZE: usize = 4096;

fn gzip_both_ways() -> StreamerServer<EchoStreamer> {
    StreamerServer::new(EchoStreamer)
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip)
}

#[tokio::test]
async fn a_compression_switch_turns_compression_off_for_the_messages_that_follow() {
    let server = Running::start(gzip_both_ways());
    let sniffer = Sniffer::start(server.addr).await;
    let endpoint = Endpoint::new("127.0.0.1", sniffer.addr.port()).pool_size(1);
    let channel = bounded("connect", Channel::connect(endpoint))
        .await
        .expect("connect");
    let mut client = StreamerClient::new(channel)
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip);
    let chunk = |seq| Chunk {
        seq,
        payload: payload(SIZE),
    };
    bounded("warm-up", client.unary(chunk(0)))
        .await
        .expect("warm-up");
    sniffer.take();

    // The server turns its switch off from chunk 2 on.
    let mut request = Request::new(ProduceRequest {
        count: 4,
        size: SIZE as u32,
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert_str("x-plain-from", "2")
        .expect("metadata");
    let mut produced = bounded("produce", client.produce(request))
        .await
        .expect("produce")
        .into_inner();
    while bounded("next", produced.message())
        .await
        .expect("message")
        .is_some()
    {}
    // The client turns its own off while producing its third chunk.
    let switch = CompressionSwitch::new();
    let turn_off = switch.clone();
    let chunks = stream::iter(0..4u64).map(move |seq| {
        if seq == 2 {
            turn_off.set(false);
        }
        chunk(seq)
    });
    let mut request = Request::new(chunks);
    request.extensions_mut().insert(switch);
    let summary = bounded("collect", client.collect(request))
        .await
        .expect("collect")
        .into_inner();
    assert_eq!(summary.count, 4);

    let wire = sniffer.take();
    let answers: Vec<bool> = wire.answers.iter().map(|s| s.compressed).collect();
    let requests: Vec<bool> = wire
        .requests
        .iter()
        .filter(|s| s.len != 0 && s.call_id == 3)
        .map(|s| s.compressed)
        .collect();
    // Produce (call 2): four chunks and nothing else compressed; then collect's small summary.
    assert_eq!(answers, [true, true, false, false, false], "{wire:?}");
    assert_eq!(requests, [true, true, false, false], "{wire:?}");
    server.stop().await;
}

#[tokio::test]
async fn udp_calls_go_uncompressed() {
    let (server, endpoint) =
        Running::serve_with_udp(Server::builder().add_service(gzip_both_ways())).await;
    let channel = bounded("connect", Channel::connect(endpoint))
        .await
        .expect("connect");
    let mut client = StreamerClient::new(channel.clone())
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip)
        .compression_min_size(0);
    // A streamed answer goes over TCP and teaches the client that the server takes gzip.
    let request = ProduceRequest {
        count: 1,
        size: 10,
        ..Default::default()
    };
    let mut produced = bounded("produce", client.produce(request))
        .await
        .expect("produce")
        .into_inner();
    while bounded("next", produced.message())
        .await
        .expect("message")
        .is_some()
    {}
    // Small unary calls now go over UDP: plain, or the server could not read them.
    for seq in 1..=5 {
        let chunk = Chunk {
            seq,
            payload: payload(600),
        };
        let answer = bounded("unary over udp", client.unary(chunk.clone()))
            .await
            .expect("answered");
        assert_eq!(answer.into_inner(), chunk);
    }
    let stats = channel.udp_stats().expect("udp set up");
    assert!(stats.replies >= 5, "{stats:?}");
    // Plain over UDP, but not past the sending limit: refused before anything is sent.
    let mut strict = client.max_encoding_message_size(300);
    let chunk = Chunk {
        seq: 6,
        payload: payload(600),
    };
    let status = bounded("over the limit", strict.unary(chunk))
        .await
        .expect_err("over the sending limit");
    assert_eq!(
        status.code(),
        sockrpc::Code::ResourceExhausted,
        "{status:?}"
    );
    assert!(
        status.message().contains("sending limit of 300"),
        "{status:?}"
    );
    let after = channel.udp_stats().expect("udp set up");
    assert_eq!(after.calls, stats.calls, "{after:?}");
    server.stop().await;
}
