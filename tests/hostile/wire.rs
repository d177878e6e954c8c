//! Must show 5: bad input. Malformed prefaces, frames, call ids and cut-off input close only
//! their own connection, with a GOAWAY reason where one is sent, while a witness keeps being
//! served.

use crate::raw::{
    case, concat, echo_message, frame, header, open, open_body, read_until_closed, read_while_open,
    server_frames, xorshift_bytes, Closed, ECHO_PATH, END, END_STREAM, GOAWAY, MESSAGE, OPEN, PING,
    PREFACE,
};
use crate::support::{attack, bounded, fresh_call, start_echo, EchoImpl, Witness, BOUND};
use prost::Message as _;
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::{EchoReply, EchoRequest};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_well_formed_call_is_answered_positive_control() {
    // Proves the raw encoder above speaks the protocol, so the hostile cases fail for their
    // intended reason: a hand-made OPEN + MESSAGE gets MESSAGE + END(OK) and the connection
    // stays open until we close our side.
    let server = start_echo(EchoImpl::default());
    let mut stream = bounded("connect", TcpStream::connect(server.addr))
        .await
        .expect("connect");
    let request = concat(&[
        PREFACE,
        &open(
            1,
            ECHO_PATH,
            &[(b"x-Trace", b"abc"), (b"k-bin", b"\xff\x00")],
        ),
        &echo_message(1, 77, b"raw"),
    ]);
    stream.write_all(&request).await.expect("write");
    let got = read_while_open(&mut stream, Duration::from_millis(300), "control").await;
    let frames = server_frames(&got);
    let message = frames
        .iter()
        .find(|f| f.kind == MESSAGE && f.call_id == 1)
        .unwrap_or_else(|| panic!("no MESSAGE for call 1: {frames:?}"));
    let reply = EchoReply::decode(&message.body[..]).expect("reply decodes");
    assert_eq!((reply.id, &reply.payload[..]), (77, &b"raw"[..]));
    let end = frames
        .iter()
        .find(|f| f.kind == END && f.call_id == 1)
        .unwrap_or_else(|| panic!("no END for call 1: {frames:?}"));
    assert_eq!(&end.body[..4], &0u32.to_be_bytes(), "END code is OK");
    stream.shutdown().await.expect("half-close");
    let (_, closed) = read_until_closed(&mut stream, "control after FIN").await;
    assert!(matches!(closed, Closed::Eof), "{closed:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_length_prefixes_are_refused_from_four_bytes() {
    let max = 0xFFFF_FFFFu32.to_be_bytes();
    attack(vec![
        case(
            "0xFFFFFFFF after the preface",
            concat(&[PREFACE, &max]),
            Some("4294967295"),
        ),
        case(
            "0xFFFFFFFF header after the preface",
            concat(&[PREFACE, &header(u32::MAX, MESSAGE, 0, 0, 1)]),
            Some("4294967295"),
        ),
        case(
            "0xFFFFFFFF without a preface",
            header(u32::MAX, MESSAGE, 0, 0, 1),
            Some("bad preface"),
        ),
        case(
            "MESSAGE one byte over the skip limit",
            concat(&[PREFACE, &header(64 * 1024 * 1024 + 1, MESSAGE, 0, 0, 1)]),
            Some("exceeds the limit"),
        ),
        case(
            // One over its own limit is skipped, failing its call alone
            // (`tests/hostile/control_limit.rs`); past the skip bound it is an attack.
            "OPEN over the skip limit",
            concat(&[
                PREFACE,
                &header(
                    (sockrpc::protocol::Limits::default().max_skippable_message() + 1) as u32,
                    OPEN,
                    0,
                    0,
                    1,
                ),
            ]),
            Some("exceeds the limit"),
        ),
        case(
            "PING with a 9-byte body",
            concat(&[PREFACE, &header(9, PING, 0, 0, 0), &[0; 9]]),
            Some("exceeds the limit"),
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_close_the_connection() {
    let mut cases = Vec::new();
    for seed in 1..=8u64 {
        let noise = xorshift_bytes(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), 4096);
        cases.push(case(format!("random seed {seed}"), noise.clone(), None));
        cases.push(case(
            format!("preface + random seed {seed}"),
            concat(&[PREFACE, &noise]),
            None,
        ));
    }
    attack(cases).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_preface_or_version_is_refused() {
    attack(vec![
        case(
            "HTTP request line",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            Some("bad preface"),
        ),
        case(
            "HTTP/2 client preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            Some("bad preface"),
        ),
        case(
            "right magic, version 2",
            b"SOCKRPC\x02".to_vec(),
            Some("unsupported protocol version 2"),
        ),
        case(
            "right magic, version 0, then a frame",
            concat(&[b"SOCKRPC\x00", &open(1, ECHO_PATH, &[])]),
            Some("unsupported protocol version 0"),
        ),
        case(
            "lower-case magic",
            b"sockrpc\x01".to_vec(),
            Some("bad preface"),
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kinds_reserved_bits_and_bad_call_ids_are_refused() {
    attack(vec![
        case(
            "unknown kind 0x7f",
            concat(&[PREFACE, &header(0, 0x7f, 0, 0, 1)]),
            Some("unknown frame kind 0x7f"),
        ),
        case(
            "unknown kind 0x00",
            concat(&[PREFACE, &header(0, 0, 0, 0, 1)]),
            Some("unknown frame kind 0x00"),
        ),
        case(
            "unknown kind 0xff after a good call",
            concat(&[
                PREFACE,
                &open(1, ECHO_PATH, &[]),
                &echo_message(1, 1, b"x"),
                &header(4, 0xff, 0, 0, 3),
                b"abcd",
            ]),
            Some("unknown frame kind 0xff"),
        ),
        case(
            "reserved field set on PING",
            concat(&[PREFACE, &header(8, PING, 0, 0x0100, 0), &[0; 8]]),
            Some("reserved header field is 0x0100"),
        ),
        case(
            "reserved field set on OPEN",
            concat(&[PREFACE, &{
                let body = open_body(ECHO_PATH, &[]);
                let mut f = header(body.len() as u32, OPEN, 0, 1, 1);
                f.extend_from_slice(&body);
                f
            }]),
            Some("reserved header field is 0x0001"),
        ),
        case(
            "MESSAGE with call id 0",
            concat(&[PREFACE, &frame(MESSAGE, 0, 0, b"x")]),
            Some("wrong call id"),
        ),
        case(
            "PING with call id 5",
            concat(&[PREFACE, &frame(PING, 0, 5, &[0; 8])]),
            Some("wrong call id"),
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_open_frames_are_refused() {
    // A malformed path fails its call only (`bad_path.rs`).
    let mut cases = Vec::new();
    for (key, value) in [
        (&b"Bad Key"[..], &b"v"[..]),
        (b"", b"v"),
        (b"k\xff", b"v"),
        (b"caf\xc3\xa9", b"v"),
        (b"x:y", b"v"),
        (b"text", b"line\nbreak"),
        (b"text", b"\x00"),
    ] {
        cases.push(case(
            format!(
                "OPEN with metadata {:?}={:?}",
                String::from_utf8_lossy(key),
                String::from_utf8_lossy(value)
            ),
            concat(&[
                PREFACE,
                &open(1, ECHO_PATH, &[(b"good", b"ok"), (key, value)]),
            ]),
            Some("invalid metadata key or value"),
        ));
    }
    cases.push(case(
        "OPEN body too short for its timeout",
        concat(&[PREFACE, &frame(OPEN, 0, 1, &[0, 0, 0])]),
        Some("body ends early"),
    ));
    cases.push(case(
        "OPEN path length past the body",
        concat(&[
            PREFACE,
            &frame(OPEN, 0, 1, &{
                let mut b = 0u64.to_be_bytes().to_vec();
                b.extend_from_slice(&500u16.to_be_bytes());
                b.extend_from_slice(b"/a/b");
                b
            }),
        ]),
        Some("body ends early"),
    ));
    cases.push(case(
        "OPEN metadata count past the body",
        concat(&[
            PREFACE,
            &frame(OPEN, 0, 1, &{
                let mut b = open_body(ECHO_PATH, &[]);
                let n = b.len();
                b[n - 2..].copy_from_slice(&9u16.to_be_bytes());
                b
            }),
        ]),
        Some("body ends early"),
    ));
    cases.push(case(
        "OPEN with trailing bytes",
        concat(&[
            PREFACE,
            &frame(OPEN, 0, 1, &{
                let mut b = open_body(ECHO_PATH, &[]);
                b.push(0);
                b
            }),
        ]),
        Some("trailing bytes"),
    ));
    attack(cases).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_or_backwards_call_ids_are_refused() {
    attack(vec![
        case(
            "call id 1 reused after it completed",
            concat(&[
                PREFACE,
                &open(1, ECHO_PATH, &[]),
                &echo_message(1, 1, b"first"),
                &open(1, ECHO_PATH, &[]),
            ]),
            Some("call id 1 reused"),
        ),
        case(
            "call id 1 reused while open",
            concat(&[PREFACE, &open(1, ECHO_PATH, &[]), &open(1, ECHO_PATH, &[])]),
            Some("call id 1 reused"),
        ),
        case(
            "call ids going backwards",
            concat(&[PREFACE, &open(5, ECHO_PATH, &[]), &open(3, ECHO_PATH, &[])]),
            Some("out of order"),
        ),
    ])
    .await;

    // The call before the reuse was answered in full before the GOAWAY.
    let server = start_echo(EchoImpl::default());
    let mut stream = bounded("connect", TcpStream::connect(server.addr))
        .await
        .expect("connect");
    stream
        .write_all(&concat(&[
            PREFACE,
            &open(1, ECHO_PATH, &[]),
            &echo_message(1, 9, b"first"),
            &open(1, ECHO_PATH, &[]),
        ]))
        .await
        .expect("write");
    let (got, _) = read_until_closed(&mut stream, "reuse").await;
    let frames = server_frames(&got);
    let kinds: Vec<(u8, u32)> = frames.iter().map(|f| (f.kind, f.call_id)).collect();
    assert_eq!(
        kinds,
        vec![(MESSAGE, 1), (END, 1), (GOAWAY, 0)],
        "{frames:?}"
    );
    assert_eq!(&frames[2].body[..4], &1u32.to_be_bytes(), "last_call_id");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_off_frames_wait_then_close_after_the_clients_fin() {
    let server = start_echo(EchoImpl::default());
    fresh_call(server.addr, 1).await;
    let witness = Witness::start(server.addr).await;
    let cuts: Vec<(&str, Vec<u8>)> = vec![
        ("preface cut", b"SOCK".to_vec()),
        (
            "header cut",
            concat(&[PREFACE, &header(10, OPEN, 0, 0, 1)[..6]]),
        ),
        ("OPEN body cut", {
            let f = open(1, ECHO_PATH, &[(b"k", b"v")]);
            concat(&[PREFACE, &f[..f.len() - 5]])
        }),
        ("MESSAGE body cut", {
            let m = echo_message(1, 1, &[7; 1000]);
            concat(&[PREFACE, &open(1, ECHO_PATH, &[]), &m[..500]])
        }),
        (
            "MESSAGE announced at 4 MiB, 1 KiB sent",
            concat(&[
                PREFACE,
                &open(1, ECHO_PATH, &[]),
                &header(4 << 20, MESSAGE, END_STREAM, 0, 1),
                &[1; 1024],
            ]),
        ),
    ];
    for (name, bytes) in cuts {
        let mut stream = bounded("connect", TcpStream::connect(server.addr))
            .await
            .expect("connect");
        stream.write_all(&bytes).await.expect("write");
        // Partial input is not an error: the server waits for the rest...
        let got = read_while_open(&mut stream, Duration::from_millis(200), name).await;
        assert!(
            server_frames(&got).is_empty(),
            "{name}: server answered a partial frame"
        );
        // ...and closes once the client half-closes.
        stream.shutdown().await.expect("half-close");
        let (got, closed) = read_until_closed(&mut stream, name).await;
        assert!(matches!(closed, Closed::Eof), "{name}: {closed:?}");
        assert!(
            server_frames(&got).iter().all(|f| f.kind == GOAWAY),
            "{name}: server sent a call frame after FIN"
        );
    }
    witness.finish().await;
    fresh_call(server.addr, 2).await;
    server.stop().await;
}

/// A peer that connects and never sends the preface (slowloris) loses its connection after the
/// handshake timeout; a well-behaved client is served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_after_the_handshake_timeout() {
    let listener =
        sockrpc::transport::bind_tcp("127.0.0.1:0".parse().expect("address"), &Default::default())
            .expect("bind");
    let addr = listener.local_addr().expect("address");
    let server = tokio::spawn(
        sockrpc::Server::builder()
            .handshake_timeout(Duration::from_millis(200))
            .add_service(EchoServer::new(EchoImpl::default()))
            .serve_with_listener(listener),
    );
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    // A partial preface does not count either.
    let mut partial = TcpStream::connect(addr).await.expect("connect");
    partial.write_all(b"SOCK").await.expect("write");
    let mut client = bounded("connect", EchoClient::connect(addr.to_string()))
        .await
        .expect("connect");
    for stream in [&mut silent, &mut partial] {
        let mut buf = vec![0u8; 1024];
        let closed = tokio::time::timeout(BOUND, async {
            loop {
                match stream.read(&mut buf).await {
                    // The server's own preface arrives first; then the close.
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "a silent connection was kept open");
    }
    // The well-behaved client, connected before the timeout, is still served after it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    bounded("echo", client.echo(EchoRequest::default()))
        .await
        .expect("served");
    server.abort();
}
