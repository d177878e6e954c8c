use super::*;
use bytes::Bytes;
use sockrpc_tests::mirror::Mirror;
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::streamer_server::StreamerServer;
use sockrpc_tests::stream::Chunk;

// Message bodies of every size, held by reference in the outbox from 4 KiB + 257 bytes: whole and
// in order over every stream transport.

/// Payload sizes on both sides of the outbox's by-reference threshold (`BY_REFERENCE`: 4,353
/// bytes of encoded message, field headers included), of a TLS record (16 KiB) and of the
/// socket buffers (1 MiB).
const SIZES: &[usize] = &[
    0,
    1,
    2048,
    4096,
    4347,
    4348,
    4349,
    4350,
    16_383,
    16_384,
    16_385,
    70_001,
    1 << 20,
];

/// Bound on each transport's whole exchange.
const EXCHANGE: Duration = Duration::from_secs(60);

/// A body of `len` bytes that differs from every other (`seq`) at every position.
fn body(seq: u64, len: usize) -> Bytes {
    (0..len)
        .map(|i| (i as u64).wrapping_mul(31).wrapping_add(seq * 7) as u8)
        .collect()
}

/// Every size as a unary call, all at once, then every size down one bidirectional stream
/// (sent without waiting for answers): each answer carries exactly the bytes sent.
async fn exchange(channel: Channel, transport: &str) {
    let client = StreamerClient::new(channel);
    let calls = SIZES.iter().enumerate().map(|(seq, &len)| {
        let mut client = client.clone();
        async move {
            let sent = body(seq as u64, len);
            let request = Chunk {
                seq: seq as u64,
                payload: sent.clone(),
            };
            let reply = client.unary(request).await.expect("unary call");
            assert_eq!(
                reply.into_inner().payload,
                sent,
                "{transport}: unary of {len} bytes"
            );
        }
    });
    futures_util::future::join_all(calls).await;

    let requests: Vec<Chunk> = SIZES
        .iter()
        .enumerate()
        .map(|(seq, &len)| {
            let seq = seq as u64 + 100;
            Chunk {
                seq,
                payload: body(seq, len),
            }
        })
        .collect();
    let mut client = client.clone();
    let mut answers = client
        .ping_pong(futures_util::stream::iter(requests))
        .await
        .expect("open stream")
        .into_inner();
    for (seq, &len) in SIZES.iter().enumerate() {
        let seq = seq as u64 + 100;
        let answer = answers
            .message()
            .await
            .expect("answer")
            .expect("one per message");
        assert_eq!(answer.seq, seq, "{transport}: stream answers in order");
        assert_eq!(
            answer.payload,
            body(seq, len),
            "{transport}: stream message of {len} bytes"
        );
    }
    assert!(
        answers.message().await.expect("end").is_none(),
        "{transport}: end"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_of_every_size_arrive_whole_over_tcp_unix_sockets_and_tls() {
    let ca = Ca::new("test CA");
    let tls = server_tls(ServerTlsConfig::new(ca.leaf(SERVER_NAMES).identity()));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let signal = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };
    let bind = || {
        sockrpc::transport::bind_tcp("127.0.0.1:0".parse().expect("addr"), &Default::default())
            .expect("bind")
    };
    let (plain, secure) = (bind(), bind());
    let (plain_addr, secure_addr) = (
        plain.local_addr().expect("addr"),
        secure.local_addr().expect("addr"),
    );
    let dir = std::env::temp_dir().join(format!("sockrpc-bodies-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("mirror.sock");
    let unix = sockrpc::transport::bind_unix(&path).expect("bind unix");
    let servers = [
        tokio::spawn(
            Server::builder()
                .add_service(StreamerServer::new(Mirror))
                .serve_with_listener_and_shutdown(plain, signal()),
        ),
        tokio::spawn(
            Server::builder()
                .tls_handle(tls)
                .add_service(StreamerServer::new(Mirror))
                .serve_with_listener_and_shutdown(secure, signal()),
        ),
        tokio::spawn(
            Server::builder()
                .add_service(StreamerServer::new(Mirror))
                .serve_unix_with_listener_and_shutdown(unix, signal()),
        ),
    ];
    let timeout = Duration::from_secs(30);
    let endpoints = [
        ("tcp", Endpoint::new("127.0.0.1", plain_addr.port())),
        (
            "tls",
            Endpoint::new("127.0.0.1", secure_addr.port())
                .tls(ClientTlsConfig::new().ca_certificates(ca.certificates())),
        ),
        (
            "unix",
            Endpoint::from_uri(&format!("unix://{}", path.display())).expect("unix uri"),
        ),
    ];
    for (transport, endpoint) in endpoints {
        let channel = Channel::connect(endpoint.timeout(timeout))
            .await
            .expect("connect");
        tokio::time::timeout(EXCHANGE, exchange(channel, transport))
            .await
            .unwrap_or_else(|_| panic!("{transport}: exchange took over {EXCHANGE:?}"));
    }
    stop.send(true).expect("servers listening");
    for server in servers {
        server.await.expect("server task").expect("server");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
