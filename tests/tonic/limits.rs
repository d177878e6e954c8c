//! Send and receive limits, separate on both sides (the transport's frame-level ones on the
//! `Server` builder and the `Endpoint`, a generated service's and client's own on top), and the
//! status message cap, configurable and marked when it cuts.

use crate::support::{bounded, payload, EchoStreamer, Running, FAIL_SEQ};
use futures_util::stream;
use sockrpc::{Channel, Code, Endpoint, Server, Status};
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::streamer_server::StreamerServer;
use sockrpc_tests::stream::{Chunk, ProduceRequest};

async fn connect(server: &Running, endpoint: impl FnOnce(Endpoint) -> Endpoint) -> StreamerClient {
    let endpoint = endpoint(Endpoint::new("127.0.0.1", server.addr.port()));
    let channel = bounded("connect", Channel::connect(endpoint))
        .await
        .expect("connect");
    StreamerClient::new(channel)
}

fn chunk(size: usize) -> Chunk {
    Chunk {
        seq: 1,
        payload: payload(size),
    }
}

fn code<T: std::fmt::Debug>(result: Result<T, Status>) -> Code {
    result.expect_err("refused").code()
}

#[tokio::test]
async fn transport_send_and_receive_limits_are_separate() {
    const MIB: usize = 1024 * 1024;
    // The server receives up to 8 MiB and sends up to 1 MiB.
    let server = Running::start_with(
        Server::builder()
            .max_decoding_message_size(8 * MIB)
            .max_encoding_message_size(MIB),
        StreamerServer::new(EchoStreamer),
    );
    // The client receives up to the default 4 MiB and sends up to 6 MiB.
    let mut big_sender = connect(&server, |e| e.max_encoding_message_size(6 * MIB)).await;
    // 5 MiB up: over the client's receive limit, under its send limit and the server's receive
    // limit; the answer is small.
    let summary = bounded(
        "collect",
        big_sender.collect(stream::iter([chunk(5 * MIB)])),
    )
    .await
    .expect("5 MiB up")
    .into_inner();
    assert_eq!(summary.bytes, 5 * MIB as u64);
    // 7 MiB: over the client's send limit, refused before sending.
    let err = bounded("unary", big_sender.unary(chunk(7 * MIB)))
        .await
        .expect_err("over the send limit");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    assert!(err.message().contains("request message"), "{err}");
    // 2 MiB echoed: the server's answer is over its own send limit.
    let err = bounded("unary", big_sender.unary(chunk(2 * MIB)))
        .await
        .expect_err("over the server's send limit");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    assert!(err.message().contains("response message"), "{err}");
    // A default client still sends no more than it would accept (4 MiB).
    let mut plain = connect(&server, |e| e).await;
    assert_eq!(
        code(bounded("unary", plain.unary(chunk(5 * MIB))).await),
        Code::ResourceExhausted
    );
    // And the connection serves on.
    bounded("unary", plain.unary(chunk(100)))
        .await
        .expect("small");
    server.stop().await;
}

#[tokio::test]
async fn generated_services_and_clients_have_their_own_limits() {
    let server = Running::start(
        StreamerServer::new(EchoStreamer)
            .max_decoding_message_size(10_000)
            .max_encoding_message_size(20_000),
    );
    let mut client = connect(&server, |e| e).await;
    // Over the service's decoding limit (far under the transport's).
    let err = bounded("unary", client.unary(chunk(15_000)))
        .await
        .expect_err("decoding limit");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    // Over the service's encoding limit: a streamed answer of 30,000-byte chunks.
    let request = ProduceRequest {
        count: 2,
        size: 30_000,
        ..Default::default()
    };
    let mut produced = bounded("produce", client.produce(request))
        .await
        .expect("opened")
        .into_inner();
    let err = bounded("message", produced.message())
        .await
        .expect_err("encoding limit");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    assert!(err.message().contains("sending limit"), "{err}");
    // Client side: its own encoding limit refuses before sending; its decoding limit refuses
    // an answer.
    let mut strict = StreamerClient::new(client.get_ref().clone())
        .max_encoding_message_size(1_000)
        .max_decoding_message_size(5_000);
    assert_eq!(
        code(bounded("unary", strict.unary(chunk(2_000))).await),
        Code::ResourceExhausted
    );
    let request = ProduceRequest {
        count: 1,
        size: 8_000,
        ..Default::default()
    };
    let mut produced = bounded("produce", strict.produce(request))
        .await
        .expect("opened")
        .into_inner();
    let err = bounded("message", produced.message())
        .await
        .expect_err("client decoding limit");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    // Within every limit, all is well.
    let answer = bounded("unary", strict.unary(chunk(900)))
        .await
        .expect("small");
    assert_eq!(answer.into_inner().payload.len(), 900);
    server.stop().await;
}

#[tokio::test]
async fn the_status_message_cap_is_configurable_and_marks_its_cut() {
    let failing = |len: usize| Chunk {
        seq: FAIL_SEQ,
        payload: "x".repeat(len).into_bytes().into(),
    };
    let server = Running::start_with(
        Server::builder().max_status_message_size(2_000),
        StreamerServer::new(EchoStreamer),
    );
    let mut client = connect(&server, |e| e).await;
    let err = bounded("unary", client.unary(failing(10_000)))
        .await
        .expect_err("fails");
    assert_eq!(err.code(), Code::InvalidArgument);
    let message = err.message();
    assert!(message.len() <= 2_000, "{}", message.len());
    let kept = message.find('…').expect("marked");
    assert!(
        message.ends_with(&format!("[truncated {} bytes]", 10_000 - kept)),
        "{message}"
    );
    // Under the cap: whole.
    let err = bounded("unary", client.unary(failing(1_500)))
        .await
        .expect_err("fails");
    assert_eq!(err.message().len(), 1_500);
    server.stop().await;

    // The default cap, 16 KiB, marks its cut too.
    let server = Running::start(StreamerServer::new(EchoStreamer));
    let mut client = connect(&server, |e| e).await;
    let err = bounded("unary", client.unary(failing(20_000)))
        .await
        .expect_err("fails");
    assert!(err.message().len() <= 16 * 1024);
    assert!(
        err.message().contains("[truncated "),
        "{}",
        err.message().len()
    );
    server.stop().await;
}

/// The server's status message cap holds over UDP too: a UDP socket's own limits (here the
/// defaults, 16 KiB) are taken within the server's. Before, a UDP reply carried the message
/// whole up to 16 KiB whatever the server was told.
#[tokio::test]
async fn the_status_message_cap_holds_over_udp() {
    let (server, endpoint) = Running::serve_with_udp(
        Server::builder()
            .max_status_message_size(200)
            .add_service(StreamerServer::new(EchoStreamer)),
    )
    .await;
    let channel = bounded("connect", Channel::connect(endpoint))
        .await
        .expect("connect");
    let mut client = StreamerClient::new(channel.clone());
    // A request and an uncut answer small enough for one datagram each.
    let failing = Chunk {
        seq: FAIL_SEQ,
        payload: "x".repeat(900).into_bytes().into(),
    };
    let err = bounded("unary over udp", client.unary(failing))
        .await
        .expect_err("fails");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().len() <= 200, "{}", err.message().len());
    assert!(err.message().contains("[truncated "), "{}", err.message());
    let stats = channel.udp_stats().expect("udp set up");
    assert_eq!(stats.replies, 1, "answered over UDP: {stats:?}");
    server.stop().await;
}
