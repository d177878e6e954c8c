//! The hostile server's metadata and handshake: HEADERS repeated without end, metadata blocks
//! past the limit (their call fails alone) or breaking the key and value rules (a protocol
//! error), reserved keys, absurd or malformed SETTINGS, and peers that do not speak sockrpc at
//! all (silent, HTTP/1.1, a TLS alert, another version). Each call ends with a clear status,
//! within bounds, and the client's memory holds.

use crate::raw::{block, frame, header, MESSAGE, PREFACE, SETTINGS, WINDOW};
use crate::server_probe::{
    answering, assert_grew_less, call, client, end, fail_at_once_as_protocol_errors, failed,
    fake_server, next_frame, rss, settings, Fake, Reply, ANSWER, HEADERS, MIB,
};
use crate::support::{bounded, BOUND};
use sockrpc::Code;
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::ProduceRequest;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// OPEN flags: a folded request message, encoding fields.
const OPEN_MESSAGE: u8 = 0x20;
const OPEN_ENCODING: u8 = 0x08;
const OPEN: u8 = 1;

/// The request message folded at the end of an OPEN body (docs/PROTOCOL.md, *OPEN*).
fn folded_message(flags: u8, body: &[u8]) -> Vec<u8> {
    let path_len = usize::from(u16::from_be_bytes([body[8], body[9]]));
    let mut at = 10 + path_len;
    let count = u16::from_be_bytes([body[at], body[at + 1]]);
    at += 2;
    for _ in 0..count {
        at += 1 + usize::from(body[at]);
        at += 2 + usize::from(u16::from_be_bytes([body[at], body[at + 1]]));
    }
    if flags & OPEN_ENCODING != 0 {
        at += 1 + usize::from(body[at]);
    }
    body[at..].to_vec()
}

/// The next request, folded into its OPEN or in a MESSAGE of its own.
async fn any_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(u32, Vec<u8>)> {
    loop {
        let (kind, flags, id, body) = next_frame(stream, buf).await?;
        if kind == OPEN && flags & OPEN_MESSAGE != 0 {
            return Some((id, folded_message(flags, &body)));
        }
        if kind == MESSAGE && flags & 1 != 0 {
            return Some((id, body));
        }
    }
}

/// An echo server by hand that opens with `hello` after its preface, at once or (`late`) once
/// the client has sent something.
async fn echo_after(hello: Vec<u8>, late: bool) -> Fake {
    fake_server(move |mut stream| {
        let hello = hello.clone();
        async move {
            let mut buf = Vec::new();
            if late {
                // After the client's first call is on its way, so that the call meets it
                // (the connection then fails: what else the client sent does not matter).
                let mut first = [0u8; 64];
                let _ = stream.read(&mut first).await;
            }
            let _ = stream.write_all(&[&PREFACE[..], &hello].concat()).await;
            // Bounded: 1,000 calls per connection.
            for _ in 0..1000 {
                let Some((id, body)) = any_request(&mut stream, &mut buf).await else {
                    return;
                };
                tokio::time::sleep(Duration::from_millis(2)).await;
                if stream
                    .write_all(&frame(MESSAGE, ANSWER, id, &body))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    })
    .await
}

/// A metadata block of `entries` entries whose values are `value_len` bytes.
fn big_block(entries: usize, value_len: usize) -> Vec<u8> {
    let keys: Vec<Vec<u8>> = (0..entries).map(|i| format!("k{i}").into_bytes()).collect();
    let value = vec![b'v'; value_len];
    let pairs: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (&k[..], &value[..])).collect();
    block(&pairs)
}

/// HEADERS sent this many times, each with a 15 KiB block: 60 MiB kept if the client piled
/// them up.
const REPEATS: usize = 4000;

/// A server that answers the first call with [`REPEATS`] HEADERS, then (when `answer`) its
/// message, and keeps the connection open.
async fn repeating_headers(answer: bool) -> Fake {
    fake_server(move |mut stream| async move {
        let _ = stream.write_all(PREFACE).await;
        let mut buf = Vec::new();
        let Some((id, _)) = any_request(&mut stream, &mut buf).await else {
            return;
        };
        // Written 100 at a time: the fake server shares this process's memory.
        let hundred = frame(HEADERS, 0, id, &big_block(15, 1000)).repeat(100);
        for _ in 0..REPEATS / 100 {
            if stream.write_all(&hundred).await.is_err() {
                return;
            }
        }
        if answer {
            let _ = stream.write_all(&frame(MESSAGE, ANSWER, id, b"")).await;
        }
        while next_frame(&mut stream, &mut buf).await.is_some() {}
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_repeated_on_a_unary_call_do_not_pile_up() {
    if !crate::server_probe::measured_alone(
        module_path!(),
        "headers_repeated_on_a_unary_call_do_not_pile_up",
    ) {
        return;
    }
    let fake = repeating_headers(true).await;
    let mut client = client(fake.addr).await;
    let before = rss();
    let (result, _) = call(&mut client, 1, BOUND).await;
    let status = failed("HEADERS repeated", result, Code::Internal);
    assert!(status.message().contains("HEADERS"), "{status:?}");
    assert_grew_less("HEADERS repeated on a unary call", before, 24 * MIB);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_repeated_on_a_stream_do_not_pile_up() {
    if !crate::server_probe::measured_alone(
        module_path!(),
        "headers_repeated_on_a_stream_do_not_pile_up",
    ) {
        return;
    }
    let fake = repeating_headers(false).await;
    let mut client = bounded("connect", StreamerClient::connect(fake.addr.to_string()))
        .await
        .expect("connect");
    let before = rss();
    let response = bounded("the head", client.produce(ProduceRequest::default()))
        .await
        .expect("the first HEADERS is the answer's head");
    let mut messages = response.into_inner();
    let status = bounded("the stream's end", messages.message())
        .await
        .expect_err("a second HEADERS breaks the call");
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert_grew_less("HEADERS repeated on a stream", before, 24 * MIB);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_metadata_from_the_server_is_a_clear_error() {
    let cases: [(&str, Reply); 5] = [
        (
            "a block over 16 KiB whose last entry runs past the body",
            |id| {
                // 17 entries of about 1 KiB each (over the limit: its call alone would fail), but
                // the block is cut short: malformed, a protocol error.
                let mut block = big_block(17, 1015);
                block.truncate(block.len() - 1);
                frame(HEADERS, 0, id, &block)
            },
        ),
        ("a key that is not lowercase ASCII", |id| {
            frame(HEADERS, 0, id, &block(&[(b"\xff\xfeKey", b"v")]))
        }),
        ("an empty key", |id| {
            frame(HEADERS, 0, id, &block(&[(b"", b"v")]))
        }),
        ("a control character in a text value", |id| {
            end(id, 0, b"", b"", &block(&[(b"k", b"bell\x07")]))
        }),
        ("a count larger than the block", |id| {
            frame(HEADERS, 0, id, &[0xff, 0xff, 1, b'k', 0, 1, b'v'])
        }),
    ];
    fail_at_once_as_protocol_errors(&cases).await;
}

/// A well-formed block over the client's limit, as HEADERS or in an END, fails that call alone
/// (`RESOURCE_EXHAUSTED`, as HTTP/2 makes a header list too large a stream error); the next
/// call on the connection is answered. Until session 35 it closed the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_over_the_limit_from_the_server_fails_only_its_call() {
    let fake = fake_server(|mut stream| async move {
        let _ = stream.write_all(PREFACE).await;
        let mut buf = Vec::new();
        // Bounded: three calls. The first gets HEADERS over 16 KiB (17 entries of about
        // 1 KiB), the second trailers as large; the third is answered.
        for round in 0..3 {
            let Some((id, body)) = any_request(&mut stream, &mut buf).await else {
                return;
            };
            let big = big_block(17, 1015);
            let reply = match round {
                0 => [
                    frame(HEADERS, 0, id, &big),
                    frame(MESSAGE, ANSWER, id, &body),
                ]
                .concat(),
                1 => [frame(MESSAGE, 1, id, &body), end(id, 0, b"", b"", &big)].concat(),
                _ => frame(MESSAGE, ANSWER, id, &body),
            };
            if stream.write_all(&reply).await.is_err() {
                return;
            }
        }
        while next_frame(&mut stream, &mut buf).await.is_some() {}
    })
    .await;
    let mut client = client(fake.addr).await;
    for (id, what) in [(1, "response headers"), (2, "response trailers")] {
        let (result, _) = call(&mut client, id, BOUND).await;
        let status = failed(what, result, Code::ResourceExhausted);
        assert!(status.message().contains(what), "{status:?}");
    }
    let (result, _) = call(&mut client, 3, BOUND).await;
    assert_eq!(result.expect("the next call is answered").id, 3);
    assert_eq!(fake.accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_entries_and_reserved_keys_are_bounded_and_dropped() {
    let fake = answering(|id| {
        // 400 entries with empty values: within 16 KiB (with HTTP/2's 32 bytes per entry);
        // a reserved key in headers and trailers.
        let keys: Vec<[u8; 3]> = (0..400u32)
            .map(|i| [b'a' + (i % 26) as u8, b'-', b'x'])
            .collect();
        let mut pairs: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (&k[..], &b""[..])).collect();
        pairs.push((b"sockrpc-not-processed", b"1"));
        let mut out = frame(HEADERS, 0, id, &block(&pairs));
        out.extend_from_slice(&frame(MESSAGE, 1, id, b"\x10\x01"));
        out.extend_from_slice(&end(
            id,
            0,
            b"",
            b"",
            &block(&[(b"sockrpc-x", b"y"), (b"t", b"1")]),
        ));
        out
    })
    .await;
    let mut client = client(fake.addr).await;
    let response = bounded(
        "the call",
        client.echo(crate::server_probe::echo_request(1, BOUND)),
    )
    .await
    .expect("answered");
    let metadata = response.metadata();
    assert!(metadata.get_str("a-x").is_some(), "{metadata:?}");
    assert!(
        metadata.get_str("sockrpc-not-processed").is_none(),
        "{metadata:?}"
    );
    assert!(metadata.get_str("sockrpc-x").is_none(), "{metadata:?}");
    assert_eq!(response.get_ref().id, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_settings_leave_calls_working() {
    let cases: [(&str, Vec<u8>); 5] = [
        ("limit 0 (none announced)", settings(0, 0)),
        (
            "limit 65,535, every capability bit",
            settings(u16::MAX, u16::MAX),
        ),
        ("limit 1", settings(1, 0)),
        (
            "twice: 1, then 65,535",
            [settings(1, 1), settings(u16::MAX, 1)].concat(),
        ),
        (
            "twice: 65,535, then 1",
            [settings(u16::MAX, 0), settings(1, 0)].concat(),
        ),
    ];
    for (name, hello) in cases {
        let fake = echo_after(hello, false).await;
        let client = client(fake.addr).await;
        // Eight calls at once: a limit of 1 holds seven back, one at a time.
        let calls: Vec<_> = (0..8u64)
            .map(|i| {
                let mut client = client.clone();
                tokio::spawn(async move { call(&mut client, i, BOUND).await })
            })
            .collect();
        for (i, task) in calls.into_iter().enumerate() {
            let (result, _) = task.await.expect("call task");
            let reply = result.unwrap_or_else(|status| panic!("{name}: call {i}: {status:?}"));
            assert_eq!(reply.id, i as u64, "{name}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_settings_close_the_connection() {
    // 8 bytes is a SETTINGS with a metadata limit since session 36 (`control_limit.rs`).
    let cases: [(&str, Vec<u8>); 4] = [
        ("3 bytes", frame(WINDOW, SETTINGS, 0, &[0, 1, 0])),
        ("6 bytes", frame(WINDOW, SETTINGS, 0, &[0, 1, 0, 0, 0, 0])),
        ("68 bytes", frame(WINDOW, SETTINGS, 0, &[0; 68])),
        ("reserved bits in the header", {
            let mut out = header(4, WINDOW, SETTINGS, 0x8000, 0);
            out.extend_from_slice(&[0, 1, 0, 0]);
            out
        }),
    ];
    for (name, hello) in cases {
        let fake = echo_after(hello, true).await;
        // The SETTINGS follows the preface at once: the eager connect may already see the
        // connection closed for it (UNAVAILABLE, naming the protocol error), or the call does.
        let started = std::time::Instant::now();
        let connected = bounded(
            "connect",
            EchoClient::connect(format!("tcp://{}", fake.addr)),
        )
        .await;
        let mut client = match connected {
            Ok(client) => client,
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{name}: {status:?}");
                assert!(
                    status.message().contains("protocol error"),
                    "{name}: {status:?}"
                );
                assert!(
                    started.elapsed() < BOUND,
                    "{name}: took {:?}",
                    started.elapsed()
                );
                continue;
            }
        };
        // The call meets the protocol error on the connection (INTERNAL), or, when the close
        // came first, hears at once that the server broke the protocol on a connection that
        // carried nothing (UNAVAILABLE): never a wait through the reconnect backoff.
        let (result, took) = call(&mut client, 1, Duration::from_secs(30)).await;
        match result {
            Err(status) if status.code() == Code::Unavailable => assert!(
                status.message().contains("protocol error"),
                "{name}: {status:?}"
            ),
            other => drop(failed(name, other, Code::Internal)),
        }
        assert!(took < BOUND, "{name}: took {took:?}");
    }
}

/// The race the test above allows, made certain: the call comes after the connection closed
/// for a malformed SETTINGS it never carried a call on. It must hear at once that the server
/// broke the protocol (the next attempt would meet the same), not wait out a reconnect backoff:
/// here a minute, so a wait would end only at the call's 30 s deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_after_a_protocol_error_on_an_unused_connection_fails_at_once() {
    // The preface first, so the connect completes; the malformed SETTINGS a moment later.
    let fake = fake_server(|mut stream| async move {
        let _ = stream.write_all(PREFACE).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = stream
            .write_all(&frame(WINDOW, SETTINGS, 0, &[0, 1, 0]))
            .await;
        let mut rest = [0u8; 4096];
        // Bounded: reads until the client closes, at most 100 reads.
        for _ in 0..100 {
            if matches!(stream.read(&mut rest).await, Ok(0) | Err(_)) {
                return;
            }
        }
    })
    .await;
    let endpoint = sockrpc::Endpoint::from_uri(&format!("tcp://{}", fake.addr))
        .expect("endpoint")
        .backoff(sockrpc::transport::backoff::Backoff::starting_at(
            Duration::from_secs(60),
        ));
    let channel = bounded("connect", sockrpc::Channel::connect(endpoint))
        .await
        .expect("the preface alone: the connect succeeds");
    // The SETTINGS follows 100 ms after the preface: give the close time to land (loopback).
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut client = EchoClient::new(channel);
    let (result, took) = call(&mut client, 1, Duration::from_secs(30)).await;
    let status = failed("after the close", result, Code::Unavailable);
    assert!(status.message().contains("protocol error"), "{status:?}");
    assert!(took < BOUND, "took {took:?}");
    assert_eq!(
        fake.accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one connection: no second attempt inside the backoff"
    );
}

/// A peer that answers the client's first bytes with `bytes` (or says nothing), then reads and
/// drops what comes, open.
async fn not_sockrpc(bytes: &'static [u8]) -> Fake {
    fake_server(move |mut stream| async move {
        // As an HTTP or TLS server does, it answers what the client sent.
        let mut buf = [0u8; 4096];
        if !bytes.is_empty() {
            let _ = stream.read(&mut buf).await;
            let _ = stream.write_all(bytes).await;
        }
        // Reads and drops what comes until the client closes, or BOUND.
        let _ = tokio::time::timeout(BOUND, async {
            while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
        })
        .await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_is_not_a_sockrpc_server_is_unavailable() {
    let cases: [(&str, &'static [u8], &str); 4] = [
        (
            "an HTTP/1.1 server",
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            "sockrpc",
        ),
        ("a TLS alert", b"\x15\x03\x03\x00\x02\x02\x46", "TLS"),
        ("sockrpc version 2", b"SOCKRPC\x02", "version"),
        (
            "random bytes",
            b"\x00\x01\x02\x03\x04\x05\x06\x07\x08",
            "sockrpc",
        ),
    ];
    for (name, bytes, says) in cases {
        let fake = not_sockrpc(bytes).await;
        // A minute between attempts: a call that waited for a second attempt (its connection
        // closed before the call was on it) would wait out its deadline.
        let endpoint = sockrpc::Endpoint::from_uri(&format!("tcp://{}", fake.addr))
            .expect("endpoint")
            .backoff(sockrpc::transport::backoff::Backoff::starting_at(
                Duration::from_secs(60),
            ));
        let mut client = EchoClient::new(sockrpc::Channel::lazy(endpoint).expect("channel"));
        let (result, took) = call(&mut client, 1, Duration::from_secs(30)).await;
        let status = failed(name, result, Code::Unavailable);
        eprintln!("{name}: {took:?} {status:?}");
        assert!(status.message().contains(says), "{name}: {status:?}");
        assert!(took < BOUND, "{name}: took {took:?}");
        assert_eq!(
            fake.accepted.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "{name}: one connection, refused at once"
        );
    }
    // A peer that accepts and says nothing: the call's deadline ends it.
    let fake = not_sockrpc(b"").await;
    let mut client = client(fake.addr).await;
    let deadline = Duration::from_millis(300);
    let (result, took) = call(&mut client, 1, deadline).await;
    failed("a silent peer", result, Code::DeadlineExceeded);
    assert!(took >= deadline, "ended early: {took:?}");
}
