//! Seed inputs: small, valid, one per interesting shape, so the fuzzer starts past the magic
//! numbers and length prefixes instead of rediscovering them.
//!
//! `cargo run -p sockrpc-fuzz-targets --bin fuzz-seeds` writes them under `fuzz/corpus/`; the
//! corpus test also runs them straight from here, so a seed that stops being valid after a
//! protocol change is noticed even before the corpus is regenerated.

use crate::{datagram, frame_decoder, metadata, server_connection};
use bytes::{BufMut, Bytes, BytesMut};
use sockrpc::protocol::frame::{self, PREFACE};
use sockrpc::service::udp::datagram::{self as udp, Header, Kind};
use sockrpc::{Code, MetadataMap, MethodPath, Response, Status};
use std::time::Duration;

/// One seed input.
#[derive(Debug, Clone)]
pub struct Seed {
    /// The target it is for (a name in [`crate::TARGETS`]).
    pub target: &'static str,
    /// A file name: `seed-<what it is>`.
    pub name: String,
    /// The input.
    pub data: Vec<u8>,
}

/// Every seed of every target.
pub fn all() -> Vec<Seed> {
    let mut seeds = Vec::new();
    let mut add = |target: &'static str, name: &str, data: Vec<u8>| {
        seeds.push(Seed {
            target,
            name: format!("seed-{name}"),
            data,
        });
    };
    for (name, data) in frame_decoder_seeds() {
        add("frame_decoder", &name, data);
    }
    for (name, data) in metadata_seeds() {
        add("metadata", &name, data);
    }
    for (name, data) in datagram_seeds() {
        add("datagram", &name, data);
    }
    for (name, data) in server_connection_seeds() {
        add("server_connection", &name, data);
    }
    seeds
}

fn sample_metadata() -> MetadataMap {
    let mut map = MetadataMap::new();
    map.insert_str("x-token", "abc 123")
        .expect("valid text entry");
    map.insert_bin("trace-bin", vec![0u8, 0xff, 0x10].into())
        .expect("valid binary entry");
    map
}

/// One frame of every kind, in order; `(name, bytes)`.
fn every_frame() -> Vec<(&'static str, BytesMut)> {
    let path = MethodPath::from_static("/fuzz.Echo/Unary");
    let md = sample_metadata();
    let timeout = Some(Duration::from_millis(250));
    let mut frames = Vec::new();
    let mut add = |name, write: &dyn Fn(&mut BytesMut)| {
        let mut buf = BytesMut::new();
        write(&mut buf);
        frames.push((name, buf));
    };
    add("open", &|b| {
        frame::encode_open(b, 1, timeout, &path, &md, false)
    });
    add("open-streaming", &|b| {
        frame::encode_open_streaming(b, 3, None, &path, &md, true)
    });
    add("open-reissue", &|b| {
        frame::encode_reissue(b, 5, timeout, &path, &md, (0x1122_3344_5566_7788, 9))
    });
    add("headers", &|b| frame::encode_headers(b, 1, &md));
    add("message", &|b| frame::encode_message(b, 1, true, b"hello"));
    add("end", &|b| {
        frame::encode_end(b, 1, Code::NotFound, "gone \u{1d11e}", b"\x00\x01", &md)
    });
    add("end-not-processed", &|b| {
        frame::encode_end_flagged(b, 5, Code::Unavailable, "draining", b"", &md, true)
    });
    add("half-close", &|b| frame::encode_half_close(b, 3));
    add("cancel", &|b| frame::encode_cancel(b, 3));
    add("ping", &|b| frame::encode_ping(b, 0x0102_0304_0506_0708));
    add("pong", &|b| frame::encode_pong(b, 42));
    add("goaway", &|b| {
        frame::encode_goaway(b, 7, Code::Unavailable, "shutting down")
    });
    add("window", &|b| frame::encode_window(b, 3, 65536));
    frames
}

fn frame_decoder_seeds() -> Vec<(String, Vec<u8>)> {
    // Preface expected, message limit 100, metadata limit 100.
    let config = frame_decoder::EXPECT_PREFACE | (2 << 1) | (2 << 3);
    let after_preface = config & !frame_decoder::EXPECT_PREFACE;
    let mut stream = PREFACE.to_vec();
    for (_, frame) in every_frame() {
        stream.extend_from_slice(&frame);
    }
    let mut seeds = vec![
        (
            "all-kinds".into(),
            frame_decoder::input(config, &[], &stream),
        ),
        (
            "all-kinds-bytewise".into(),
            frame_decoder::input(config, &[0], &stream),
        ),
        (
            "all-kinds-chunked".into(),
            frame_decoder::input(config, &[2, 6, 11, 30], &stream),
        ),
    ];
    for (name, frame) in every_frame() {
        seeds.push((
            name.into(),
            frame_decoder::input(after_preface, &[], &frame),
        ));
    }
    let mut oversized = BytesMut::new();
    frame::encode_message(&mut oversized, 5, true, &[0xa5; 150]);
    frame::encode_ping(&mut oversized, 1);
    seeds.push((
        "oversized-message".into(),
        frame_decoder::input(after_preface, &[9], &oversized),
    ));
    seeds.push((
        "bad-version".into(),
        frame_decoder::input(config, &[], b"SOCKRPC\x02"),
    ));
    seeds.push((
        "huge-length".into(),
        frame_decoder::input(after_preface, &[], &[0xff, 0xff, 0xff, 0xff, 3]),
    ));
    seeds
}

fn metadata_seeds() -> Vec<(String, Vec<u8>)> {
    let mut one = MetadataMap::new();
    one.insert_str("k", "v").expect("valid");
    let mut repeated = MetadataMap::new();
    repeated.append_str("multi", "a").expect("valid");
    repeated.append_str("multi", "b").expect("valid");
    repeated
        .insert_bin("x-bin", vec![0u8; 4].into())
        .expect("valid");
    let mut upper = metadata::block(&one);
    upper[3] = b'K'; // Uppercase is folded on receipt.
    vec![
        (
            "empty".into(),
            metadata::input(1, &metadata::block(&MetadataMap::new())),
        ),
        (
            "one-text".into(),
            metadata::input(1, &metadata::block(&one)),
        ),
        (
            "text-and-bin".into(),
            metadata::input(2, &metadata::block(&sample_metadata())),
        ),
        (
            "repeated".into(),
            metadata::input(3, &metadata::block(&repeated)),
        ),
        ("uppercase-key".into(), metadata::input(1, &upper)),
        (
            "over-limit".into(),
            metadata::input(0, &metadata::block(&one)),
        ),
    ]
}

fn datagram_seeds() -> Vec<(String, Vec<u8>)> {
    let header = |kind| Header {
        kind,
        flags: 0,
        client_instance: 0x1122_3344_5566_7788,
        call_id: if kind == Kind::CookieRequest { 0 } else { 9 },
        cookie: [7; 16],
    };
    let path = MethodPath::from_static("/fuzz.Echo/Unary");
    let mut seeds = Vec::new();
    let mut request = BytesMut::new();
    udp::encode_request(
        &mut request,
        &header(Kind::Request),
        Some(Duration::from_millis(30)),
        None,
        &path,
        &sample_metadata(),
        b"request",
    );
    seeds.push(("request".to_string(), request));
    let mut acked = BytesMut::new();
    udp::encode_request(
        &mut acked,
        &header(Kind::Request),
        None,
        Some(8),
        &path,
        &sample_metadata(),
        b"request",
    );
    seeds.push(("request-done-below".to_string(), acked));
    let ok: Result<Response<Bytes>, Status> = Ok(Response::from_parts(
        sample_metadata(),
        Bytes::from_static(b"reply"),
        sample_metadata(),
    ));
    let mut error = Status::with_details(Code::NotFound, "gone", &b"\x01\x02"[..]);
    *error.metadata_mut() = sample_metadata();
    for (name, answer) in [("reply-ok", ok), ("reply-error", Err(error))] {
        let mut reply = BytesMut::new();
        let flagged = Header {
            flags: udp::FLAG_STALE_COOKIE,
            ..header(Kind::Reply)
        };
        udp::encode_reply(&mut reply, &flagged, &answer);
        seeds.push((name.to_string(), reply));
    }
    let mut cookie_request = BytesMut::new();
    udp::encode_cookie_request(&mut cookie_request, 0x1122_3344_5566_7788);
    seeds.push(("cookie-request".to_string(), cookie_request));
    for (name, kind) in [
        ("truncated", Kind::Truncated),
        ("cookie", Kind::Cookie),
        ("pending", Kind::Pending),
    ] {
        let mut only = BytesMut::new();
        udp::encode_header_only(&mut only, &header(kind));
        seeds.push((name.to_string(), only));
    }
    seeds
        .into_iter()
        .map(|(name, wire)| (name, datagram::input(2, &wire)))
        .collect()
}

/// Frames for the server-connection seeds, written in order.
struct Script(BytesMut);

impl Script {
    fn new() -> Script {
        Script(BytesMut::new())
    }

    fn open(mut self, id: u32, method: &str, timeout_ms: u64, streaming: bool) -> Script {
        let path = MethodPath::try_from_bytes(server_connection::path(method))
            .expect("a valid method path");
        let timeout = (timeout_ms > 0).then(|| Duration::from_millis(timeout_ms));
        let md = sample_metadata();
        frame::encode_open_streaming(&mut self.0, id, timeout, &path, &md, streaming);
        self
    }

    fn message(mut self, id: u32, end: bool, body: &[u8]) -> Script {
        frame::encode_message(&mut self.0, id, end, body);
        self
    }

    fn raw(mut self, write: impl FnOnce(&mut BytesMut)) -> Script {
        write(&mut self.0);
        self
    }

    fn unary(self, id: u32, body: &[u8]) -> Script {
        self.open(id, "Unary", 0, false).message(id, true, body)
    }
}

fn server_connection_seeds() -> Vec<(String, Vec<u8>)> {
    let scripts: Vec<(&str, Script)> = vec![
        ("unary", Script::new().unary(1, b"hello")),
        ("unary-two", Script::new().unary(1, b"a").unary(2, b"b")),
        ("unary-error", Script::new().unary(1, b"e-please")),
        ("unary-sleep", Script::new().unary(1, b"sleepy")),
        (
            "unary-interleaved",
            Script::new()
                .open(1, "Unary", 0, false)
                .open(2, "Unary", 0, false)
                .message(2, true, b"two")
                .message(1, true, b"one"),
        ),
        (
            "wait-deadline",
            Script::new()
                .open(1, "Wait", 20, false)
                .message(1, true, b"x"),
        ),
        (
            "wait-cancel",
            Script::new()
                .open(1, "Wait", 0, false)
                .message(1, true, b"x")
                .raw(|b| frame::encode_cancel(b, 1)),
        ),
        (
            "server-stream",
            Script::new()
                .open(1, "Stream", 0, false)
                .message(1, true, b"abc"),
        ),
        (
            "server-stream-flood",
            Script::new()
                .open(1, "Stream", 0, false)
                .message(1, true, &[b'f'; 250])
                .raw(|b| frame::encode_window(b, 1, 40_000)),
        ),
        (
            "bidi",
            Script::new()
                .open(1, "Stream", 1000, true)
                .message(1, false, b"one")
                .message(1, false, b"two")
                .raw(|b| frame::encode_window(b, 1, 100))
                .raw(|b| frame::encode_half_close(b, 1)),
        ),
        (
            "bidi-oversized",
            Script::new()
                .open(1, "Stream", 0, true)
                .message(1, false, &[b'x'; 300])
                .message(1, false, b"after")
                .raw(|b| frame::encode_half_close(b, 1)),
        ),
        (
            "client-stream-to-unary",
            Script::new()
                .open(1, "Unary", 0, true)
                .message(1, false, b"one")
                .message(1, true, b"two"),
        ),
        (
            "pings",
            Script::new()
                .open(1, "Wait", 0, false)
                .raw(|b| frame::encode_ping(b, 1))
                .raw(|b| frame::encode_ping(b, 2))
                .raw(|b| frame::encode_ping(b, 3))
                .raw(|b| frame::encode_ping(b, 4)),
        ),
        (
            "client-goaway",
            Script::new()
                .unary(1, b"x")
                .raw(|b| frame::encode_goaway(b, 1, Code::Ok, "bye")),
        ),
        (
            "unknown-method",
            Script::new()
                .open(1, "Nope", 0, false)
                .message(1, true, b""),
        ),
        (
            "unknown-service",
            Script::new().raw(|b| {
                let path = MethodPath::from_static("/no.Such/Method");
                frame::encode_open(b, 1, None, &path, &MetadataMap::new(), false);
                frame::encode_message(b, 1, true, b"x");
            }),
        ),
        (
            "oversized-message",
            Script::new()
                .open(1, "Unary", 0, false)
                .message(1, true, &[1; 300]),
        ),
        (
            "too-many-calls",
            (1..=6).fold(Script::new(), |s, id| s.open(id, "Wait", 0, false)),
        ),
        (
            "reused-call-id",
            Script::new().unary(2, b"a").unary(2, b"b"),
        ),
        (
            "udp-reissue",
            Script::new()
                .raw(|b| {
                    let path = MethodPath::try_from_bytes(server_connection::path("Unary"))
                        .expect("a valid method path");
                    let md = MetadataMap::new();
                    frame::encode_reissue(b, 1, None, &path, &md, (0x1122_3344_5566_7788, 9));
                })
                .message(1, true, b"again"),
        ),
        (
            "reserved-bits",
            Script::new().raw(|b| {
                frame::encode_ping(b, 1);
                b[6] = 1;
            }),
        ),
    ];
    let mut seeds: Vec<(String, Vec<u8>)> = scripts
        .into_iter()
        .map(|(name, script)| {
            (
                name.to_string(),
                server_connection::input(true, 0, &script.0),
            )
        })
        .collect();
    let unary = Script::new().unary(1, b"hello").0;
    seeds.push((
        "unary-bytewise".into(),
        server_connection::input(true, 1, &unary),
    ));
    seeds.push((
        "unary-chunked".into(),
        server_connection::input(true, 9, &unary),
    ));
    let mut no_preface = PREFACE.to_vec();
    no_preface.extend_from_slice(&unary);
    seeds.push((
        "own-preface".into(),
        server_connection::input(false, 0, &no_preface),
    ));
    seeds.push((
        "not-sockrpc".into(),
        server_connection::input(false, 0, b"GET / HTTP/1.1\r\n"),
    ));
    let mut reply = BytesMut::new();
    reply.put_slice(b"SOCKRPC\x07");
    seeds.push((
        "bad-version".into(),
        server_connection::input(false, 0, &reply),
    ));
    seeds
}
