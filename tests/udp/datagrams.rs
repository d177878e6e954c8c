//! Raw datagrams at the server: no amplification toward unverified sources, answers never
//! answered, malformed datagrams dropped and counted.

use crate::support::{
    deadline, echo_reply, eventually, reply_of, request, UdpTestServer, XorShift, BOUND, ECHO, GROW,
};
use bytes::Bytes;
use prost::Message as _;
use sockrpc::service::udp::datagram::{self, Header, Kind, COOKIE_LEN, HEADER_LEN};
use sockrpc::{MetadataMap, MethodPath, Response, Status};
use sockrpc_tests::echo::{EchoRequest, GrowRequest};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::UdpSocket;

// ---------------------------------------------------------------------------------------------
// (4) No amplification: from a fresh socket with no cookie, nothing comes back larger than what
// caused it; a datagram shaped like an answer gets no answer at all.

fn raw_request(
    call_id: u32,
    cookie: [u8; COOKIE_LEN],
    path: &MethodPath,
    pad: usize,
    message: &[u8],
) -> Vec<u8> {
    let mut metadata = MetadataMap::new();
    if pad > 0 {
        metadata
            .insert_str("x-pad", &"p".repeat(pad))
            .expect("valid");
    }
    let header = Header {
        kind: Kind::Request,
        flags: 0,
        client_instance: 0x00C0_FFEE,
        call_id,
        cookie,
    };
    let mut out = bytes::BytesMut::new();
    datagram::encode_request(&mut out, &header, None, None, path, &metadata, message);
    out.to_vec()
}

/// Receives one datagram within `wait`, if one comes.
async fn recv_within(socket: &UdpSocket, wait: Duration) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 65536];
    match tokio::time::timeout(wait, socket.recv(&mut buf)).await {
        Ok(Ok(n)) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unverified_sources_never_get_more_bytes_than_they_sent() {
    let server = UdpTestServer::start().await;
    let raw = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    raw.connect(server.addr).await.expect("connect");
    let mut call_id = 0u32;
    let mut kinds = Vec::new();
    let (mut total_sent, mut total_received) = (0usize, 0usize);
    // No cookie, and a made-up one: both are "unverified".
    for cookie in [[0u8; COOKIE_LEN], [0x5a; COOKIE_LEN]] {
        for grow in [0u64, 100, 400, 1000, 1200, 5000, 60_000] {
            for pad in [0usize, 100, 400, 900] {
                call_id += 1;
                let message = GrowRequest { size: grow }.encode_to_vec();
                let sent = raw_request(call_id, cookie, &GROW, pad, &message);
                raw.send(&sent).await.expect("send");
                total_sent += sent.len();
                // Exactly one answer per request: REPLY if it is no larger, else TRUNCATED.
                let got = recv_within(&raw, BOUND).await.expect("an answer");
                let header = Header::parse(&got).expect("server header");
                assert_eq!(header.call_id, call_id);
                assert!(
                    got.len() <= sent.len(),
                    "grow {grow}, pad {pad}: sent {} bytes, got {} ({:?})",
                    sent.len(),
                    got.len(),
                    header.kind
                );
                assert_ne!(header.flags & datagram::FLAG_STALE_COOKIE, 0);
                total_received += got.len();
                kinds.push(header.kind);
            }
        }
    }
    assert!(total_received <= total_sent);
    assert!(
        kinds.contains(&Kind::Reply),
        "small answers still come back"
    );
    assert!(kinds.contains(&Kind::Truncated));

    // A bare COOKIE_REQUEST (no padding) is answered with a COOKIE no larger than it.
    let mut bare = bytes::BytesMut::new();
    Header {
        kind: Kind::CookieRequest,
        flags: 0,
        client_instance: 1,
        call_id: 0,
        cookie: [0; COOKIE_LEN],
    }
    .encode(&mut bare);
    raw.send(&bare).await.expect("send");
    let cookie = recv_within(&raw, BOUND).await.expect("cookie");
    assert!(cookie.len() <= bare.len());
    assert_eq!(Header::parse(&cookie).expect("header").kind, Kind::Cookie);

    // Answers are never answered: REPLY, TRUNCATED and COOKIE shapes, well-formed.
    let before = server.counters();
    let mut reply = bytes::BytesMut::new();
    let answer: Result<Response<Bytes>, Status> = Ok(Response::new(Bytes::from(vec![0u8; 500])));
    let header = |kind| Header {
        kind,
        flags: 0,
        client_instance: 1,
        call_id: 77,
        cookie: [0; COOKIE_LEN],
    };
    datagram::encode_reply(&mut reply, &header(Kind::Reply), &answer);
    let mut truncated = bytes::BytesMut::new();
    datagram::encode_header_only(&mut truncated, &header(Kind::Truncated));
    let mut cookie_shaped = bytes::BytesMut::new();
    datagram::encode_header_only(&mut cookie_shaped, &header(Kind::Cookie));
    for shaped in [&reply[..], &truncated[..], &cookie_shaped[..]] {
        raw.send(shaped).await.expect("send");
    }
    assert!(
        recv_within(&raw, Duration::from_millis(200))
            .await
            .is_none(),
        "an answer-shaped datagram was answered"
    );
    let after = server.counters();
    assert_eq!(after.ignored_answers - before.ignored_answers, 3);
    assert_eq!(after.executed, before.executed);
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// (5) Malformed datagrams are dropped and counted; the server keeps serving a good client.

/// A REQUEST header (no cookie) followed by `body`, written out by hand from docs/UDP.md.
fn by_hand(kind: u8, flags: u8, call_id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0x55, 0x01, kind, flags];
    out.extend_from_slice(&42u64.to_be_bytes());
    out.extend_from_slice(&call_id.to_be_bytes());
    out.extend_from_slice(&[0u8; 16]);
    assert_eq!(out.len(), HEADER_LEN);
    out.extend_from_slice(body);
    out
}

/// A REQUEST body: no deadline, `path`, a raw metadata block, then `message`.
fn request_body(path: &[u8], path_len: u16, metadata: &[u8], message: &[u8]) -> Vec<u8> {
    let mut out = 0u64.to_be_bytes().to_vec();
    out.extend_from_slice(&path_len.to_be_bytes());
    out.extend_from_slice(path);
    out.extend_from_slice(metadata);
    out.extend_from_slice(message);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_datagrams_are_dropped_and_counted() {
    let server = UdpTestServer::start().await;
    let client = server.client().await;
    let hello = request(&EchoRequest {
        payload: Bytes::from_static(b"before"),
        id: 1,
    });
    reply_of(client.call(&ECHO, &hello, deadline()).await).expect("served before");

    let mut bad: Vec<Vec<u8>> = Vec::new();
    // Random bytes of random lengths (seeded; none happens to start with a valid header).
    let mut rng = XorShift(0xDEAD_BEEF_CAFE_F00D);
    for _ in 0..100 {
        let len = (rng.next() % 300) as usize;
        bad.push((0..len).map(|_| rng.next() as u8).collect());
    }
    // Every cut of a header, the empty datagram included.
    let good = raw_request(5, [0; COOKIE_LEN], &ECHO, 0, b"");
    for cut in 0..HEADER_LEN {
        bad.push(good[..cut].to_vec());
    }
    let echo = b"/sockrpc.test.Echo/Echo";
    let no_metadata = [0u8, 0];
    bad.extend([
        // Wrong magic, wrong version, unknown kind, flags set, call id 0.
        [&[0x54u8][..], &good[1..]].concat(),
        [&good[..1], &[0x02u8][..], &good[2..]].concat(),
        by_hand(0x7f, 0, 1, &request_body(echo, 23, &no_metadata, b"")),
        by_hand(0x01, 0x80, 1, &request_body(echo, 23, &no_metadata, b"")),
        by_hand(0x01, 0, 0, &request_body(echo, 23, &no_metadata, b"")),
        // Bodies whose lengths lie: path longer than the datagram, metadata count with no
        // entries, a value length past the end, a key length past the end.
        by_hand(0x01, 0, 1, &request_body(echo, 900, &no_metadata, b"")),
        by_hand(0x01, 0, 1, &request_body(echo, 23, &[0xff, 0xff], b"")),
        by_hand(
            0x01,
            0,
            1,
            &request_body(echo, 23, &[0, 1, 1, b'k', 0xff, 0xff], b""),
        ),
        by_hand(0x01, 0, 1, &request_body(echo, 23, &[0, 1, 200, b'k'], b"")),
        // A body cut inside the timeout; a path that is not /Service/Method; a metadata key
        // with a space; a text value with a control byte.
        by_hand(0x01, 0, 1, &[0, 0, 0]),
        by_hand(0x01, 0, 1, &request_body(b"nopath", 6, &no_metadata, b"")),
        by_hand(
            0x01,
            0,
            1,
            &request_body(echo, 23, &[0, 1, 3, b'a', b' ', b'b', 0, 1, b'v'], b""),
        ),
        by_hand(
            0x01,
            0,
            1,
            &request_body(echo, 23, &[0, 1, 1, b'k', 0, 1, 0x07], b""),
        ),
        // A COOKIE_REQUEST with a call id, and one whose padding is not zero.
        by_hand(0x02, 0, 3, &[0u8; 32]),
        by_hand(0x02, 0, 0, &[1u8; 32]),
    ]);
    // A REQUEST from client instance 0, which no client draws.
    let mut no_instance = by_hand(0x01, 0, 1, &request_body(echo, 23, &no_metadata, b""));
    no_instance[4..12].fill(0);
    bad.push(no_instance);
    for datagram in &bad {
        assert!(
            refused_as_malformed(datagram),
            "test datagram is accidentally acceptable: {datagram:?}"
        );
    }

    let raw = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    raw.connect(server.addr).await.expect("connect");
    let before = server.counters().malformed;
    for datagram in &bad {
        raw.send(datagram).await.expect("send");
    }
    let expected = before + bad.len() as u64;
    eventually("every malformed datagram counted", || {
        server.counters().malformed >= expected
    })
    .await;
    assert_eq!(server.counters().malformed, expected);
    assert!(
        recv_within(&raw, Duration::from_millis(200))
            .await
            .is_none(),
        "a malformed datagram was answered"
    );

    // The server is unharmed: the good client keeps being served.
    for id in 2..12u64 {
        let req = request(&EchoRequest {
            payload: Bytes::from_static(b"after"),
            id,
        });
        let response = reply_of(client.call(&ECHO, &req, deadline()).await).expect("served after");
        assert_eq!(echo_reply(&response).id, id);
    }
    assert_eq!(server.handlers.echoes.load(Ordering::SeqCst), 11);
    assert!(!server.task.is_finished());
    server.shutdown().await;
}

/// Whether the server must drop `datagram` as malformed, by the rules of docs/UDP.md (a sanity
/// check on the test's own datagrams: a random one could, in principle, be well-formed).
fn refused_as_malformed(datagram: &[u8]) -> bool {
    let Ok(header) = Header::parse(datagram) else {
        return true;
    };
    if header.kind.is_from_server() {
        // Ignored, but counted as an answer, not as malformed.
        return false;
    }
    let allowed = if header.kind == Kind::Request {
        datagram::FLAG_DONE_BELOW
    } else {
        0
    };
    if header.flags & !allowed != 0 {
        return true;
    }
    let body = &datagram[HEADER_LEN..];
    match header.kind {
        Kind::Request => {
            header.call_id == 0
                || header.client_instance == 0
                || datagram::parse_request(
                    Bytes::copy_from_slice(body),
                    header.flags,
                    &sockrpc::Limits::default(),
                )
                .is_err()
        }
        Kind::CookieRequest => header.call_id != 0 || body.iter().any(|&b| b != 0),
        _ => false,
    }
}
