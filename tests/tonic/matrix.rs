//! Compression interoperates across the four call shapes in every combination of the client's
//! and the server's encodings: each direction is compressed exactly when its receiver accepts
//! the sender's encoding, and answers are right either way. A proxy reads the frames, so the
//! test sees the COMPRESSED flag itself, not only the answers.

use crate::support::{bounded, payload, EchoStreamer, Running, Seen, Sniffer};
use futures_util::stream;
use sockrpc::{Channel, CompressionEncoding, Endpoint};
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::streamer_server::StreamerServer;
use sockrpc_tests::stream::{Chunk, ProduceRequest};

const ALL: [CompressionEncoding; 3] = [
    CompressionEncoding::Gzip,
    CompressionEncoding::Deflate,
    CompressionEncoding::Zstd,
];

/// One side's settings.
#[derive(Debug, Clone)]
struct Side {
    send: Option<CompressionEncoding>,
    accept: Vec<CompressionEncoding>,
}

impl Side {
    fn is_default(&self) -> bool {
        self.send.is_none() && self.accept.is_empty()
    }

    /// Whether this side compresses toward `peer`.
    fn compresses_toward(&self, peer: &Side) -> bool {
        self.send.is_some_and(|e| peer.accept.contains(&e))
    }
}

const SIZE: usize = 4096;

/// Runs the four shapes once through a proxy and checks what crossed the wire.
async fn run_case(client_side: &Side, server_side: &Side) {
    let case = format!("client {client_side:?}, server {server_side:?}");
    let mut service = StreamerServer::new(EchoStreamer);
    if let Some(e) = server_side.send {
        service = service.send_compressed(e);
    }
    for e in &server_side.accept {
        service = service.accept_compressed(*e);
    }
    let server = Running::start(service);
    let sniffer = Sniffer::start(server.addr).await;
    let endpoint = Endpoint::new("127.0.0.1", sniffer.addr.port()).pool_size(1);
    let channel = bounded("connect", Channel::connect(endpoint))
        .await
        .expect("connect");
    let mut client = StreamerClient::new(channel);
    if let Some(e) = client_side.send {
        client = client.send_compressed(e);
    }
    for e in &client_side.accept {
        client = client.accept_compressed(*e);
    }

    // A first call teaches the client what the server accepts.
    let warm = Chunk {
        seq: 0,
        payload: payload(SIZE),
    };
    let answer = bounded("warm-up", client.unary(warm.clone())).await;
    assert_eq!(answer.expect(&case).into_inner(), warm, "{case}");
    let warm_wire = sniffer.take();
    // The first request never goes compressed: nothing was known yet.
    assert!(
        warm_wire.requests.iter().all(|s| !s.compressed),
        "{case}: {warm_wire:?}"
    );
    assert_eq!(
        warm_wire.opens_with_fields,
        usize::from(!client_side.is_default()),
        "{case}: OPEN carries fields only from a client with settings"
    );
    assert_eq!(
        warm_wire.headers_with_fields,
        usize::from(!client_side.is_default() && !server_side.is_default()),
        "{case}: HEADERS carry fields only toward a client that sent its own"
    );

    // Unary.
    let chunk = Chunk {
        seq: 1,
        payload: payload(SIZE),
    };
    let answer = bounded("unary", client.unary(chunk.clone())).await;
    assert_eq!(answer.expect(&case).into_inner(), chunk, "{case}");

    // Server streaming: 5 chunks.
    let request = ProduceRequest {
        count: 5,
        size: SIZE as u32,
        ..Default::default()
    };
    let mut produced = bounded("produce", client.produce(request))
        .await
        .expect(&case)
        .into_inner();
    let mut got = 0;
    while let Some(chunk) = bounded("produce message", produced.message())
        .await
        .expect(&case)
    {
        assert_eq!(chunk.payload, payload(SIZE), "{case}");
        got += 1;
    }
    assert_eq!(got, 5, "{case}");

    // Client streaming: 4 chunks in, a small summary out (below the minimum size: plain).
    let chunks: Vec<Chunk> = (1..=4)
        .map(|seq| Chunk {
            seq,
            payload: payload(SIZE),
        })
        .collect();
    let summary = bounded("collect", client.collect(stream::iter(chunks.clone())))
        .await
        .expect(&case)
        .into_inner();
    assert_eq!(
        (summary.count, summary.bytes, summary.seq_sum),
        (4, 4 * SIZE as u64, 10),
        "{case}"
    );

    // Bidirectional: 3 chunks echoed.
    let mut echoed = bounded(
        "ping_pong",
        client.ping_pong(stream::iter(chunks[..3].to_vec())),
    )
    .await
    .expect(&case)
    .into_inner();
    let mut back = Vec::new();
    while let Some(chunk) = bounded("ping_pong message", echoed.message())
        .await
        .expect(&case)
    {
        back.push(chunk);
    }
    assert_eq!(back, chunks[..3], "{case}");

    let wire = sniffer.take();
    let up = client_side.compresses_toward(server_side);
    let down = server_side.compresses_toward(client_side);
    // Call ids on the one connection: 2 unary, 3 produce, 4 collect, 5 ping_pong.
    let flags = |seen: &[Seen], call: u32| -> Vec<bool> {
        seen.iter()
            .filter(|s| s.call_id == call)
            .map(|s| s.compressed)
            .collect()
    };
    assert_eq!(flags(&wire.requests, 2), [up], "{case}: unary request");
    assert_eq!(flags(&wire.answers, 2), [down], "{case}: unary answer");
    assert_eq!(flags(&wire.requests, 3), [false], "{case}: small request");
    assert_eq!(flags(&wire.answers, 3), [down; 5], "{case}: produced");
    assert_eq!(flags(&wire.requests, 4), [up; 4], "{case}: collected");
    assert_eq!(flags(&wire.answers, 4), [false], "{case}: small summary");
    assert_eq!(flags(&wire.requests, 5), [up; 3], "{case}: bidi requests");
    assert_eq!(flags(&wire.answers, 5), [down; 3], "{case}: bidi answers");
    if up || down {
        // What was compressed is much smaller than the 4 KiB it carries.
        let compressed: Vec<&Seen> = wire
            .requests
            .iter()
            .chain(&wire.answers)
            .filter(|s| s.compressed)
            .collect();
        assert!(compressed.iter().all(|s| s.len < SIZE / 4), "{case}");
    }
    drop(client);
    server.stop().await;
}

#[tokio::test]
async fn every_combination_of_encodings_interoperates() {
    let choices: Vec<Option<CompressionEncoding>> =
        std::iter::once(None).chain(ALL.map(Some)).collect();
    let mut cases = 0;
    for client_send in &choices {
        for server_send in &choices {
            // Each accepts what the other sends.
            let matching = (
                Side {
                    send: *client_send,
                    accept: server_send.iter().copied().collect(),
                },
                Side {
                    send: *server_send,
                    accept: client_send.iter().copied().collect(),
                },
            );
            // Neither accepts what the other sends (but accepts the rest).
            let others = |not: Option<CompressionEncoding>| -> Vec<CompressionEncoding> {
                ALL.into_iter().filter(|e| Some(*e) != not).collect()
            };
            let mismatched = (
                Side {
                    send: *client_send,
                    accept: others(*server_send),
                },
                Side {
                    send: *server_send,
                    accept: others(*client_send),
                },
            );
            for (client_side, server_side) in [matching, mismatched] {
                run_case(&client_side, &server_side).await;
                cases += 1;
            }
        }
    }
    // A client with no compression settings at all, against a server that compresses
    // everything it can: plain both ways, and no encoding fields either way.
    let plain = Side {
        send: None,
        accept: vec![],
    };
    let eager = Side {
        send: Some(CompressionEncoding::Gzip),
        accept: ALL.to_vec(),
    };
    run_case(&plain, &eager).await;
    run_case(&eager, &plain).await;
    assert_eq!(cases, 32);
}

/// Middleware that copies the call (retries, hedging) keeps what its OPEN says about
/// compression: both directions still compress.
#[tokio::test]
async fn compression_survives_the_retry_layer() {
    use sockrpc_middleware::retry::RetryLayer;
    use tower::Layer;
    let server = Running::start(
        StreamerServer::new(EchoStreamer)
            .send_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Gzip),
    );
    let sniffer = Sniffer::start(server.addr).await;
    let endpoint = Endpoint::new("127.0.0.1", sniffer.addr.port()).pool_size(1);
    let channel = bounded("connect", Channel::connect(endpoint))
        .await
        .expect("connect");
    let mut client = StreamerClient::new(RetryLayer::new().layer(channel))
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip);
    let chunk = Chunk {
        seq: 1,
        payload: payload(SIZE),
    };
    for _ in 0..2 {
        let answer = bounded("unary", client.unary(chunk.clone())).await;
        assert_eq!(answer.expect("unary").into_inner(), chunk);
    }
    let wire = sniffer.take();
    let requests: Vec<bool> = wire.requests.iter().map(|s| s.compressed).collect();
    let answers: Vec<bool> = wire.answers.iter().map(|s| s.compressed).collect();
    // The first request goes plain (nothing known yet), the second compressed.
    assert_eq!(requests, [false, true]);
    assert_eq!(answers, [true, true]);
    server.stop().await;
}
