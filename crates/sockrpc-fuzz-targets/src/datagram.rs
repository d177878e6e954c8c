//! Target `datagram`: the UDP datagram parsers (header, REQUEST body, REPLY body).
//!
//! Why: a UDP server reads datagrams from anyone, forged sources included, and a client reads
//! whatever arrives on its socket; one parse per datagram, no connection to close on garbage.
//!
//! Input layout:
//!
//! ```text
//! byte 0   bits 0-1: metadata limit (see `choose::limits`)
//! rest     one datagram, header first
//! ```
//!
//! Properties checked:
//! - a header that parses encodes back to the same 32 bytes;
//! - a REQUEST that parses re-encodes (`encode_request`) to a datagram of the same length, less
//!   the metadata entries with a reserved (`sockrpc-`) key, which the receiver drops by design
//!   (`request_len` agreeing), that parses to the same fields; rewriting its timeout and cookie
//!   in place, as a retransmission does, changes only those;
//! - a REPLY that parses passes `check_reply` and re-encodes (`encode_reply`, `reply_len`
//!   agreeing) to a datagram that parses to the same answer.

use crate::choose;
use bytes::{Bytes, BytesMut};
use sockrpc::protocol::frame::{check_metadata, MAX_STATUS_MESSAGE};
use sockrpc::service::udp::datagram::{
    check_reply, encode_reply, encode_request, parse_reply, parse_request, reply_len, request_len,
    set_cookie, set_timeout, Header, Kind, RequestBody, FLAG_DONE_BELOW, HEADER_LEN,
};
use sockrpc::{Limits, Response, Status};
use std::time::Duration;

/// The target.
pub fn run(data: &[u8]) {
    let Some((&config, datagram)) = data.split_first() else {
        return;
    };
    let limits = choose::limits(0, config);
    let Ok(header) = Header::parse(datagram) else {
        return;
    };
    let mut wire = BytesMut::new();
    header.encode(&mut wire);
    assert_eq!(&wire[..], &datagram[..HEADER_LEN], "header round trip");
    let body = Bytes::copy_from_slice(&datagram[HEADER_LEN..]);
    match header.kind {
        Kind::Request => request(&header, body, &limits),
        Kind::Reply => reply(&header, body, &limits),
        // Header-only kinds; the COOKIE_REQUEST padding rule is the server's, not the parser's.
        Kind::CookieRequest | Kind::Truncated | Kind::Cookie | Kind::Pending => {}
    }
}

/// Builds an input: the metadata limit selector and a datagram.
pub fn input(limit: u8, datagram: &[u8]) -> Vec<u8> {
    let mut input = vec![limit & 3];
    input.extend_from_slice(datagram);
    input
}

fn request(header: &Header, body: Bytes, limits: &Limits) {
    let Ok(parsed) = parse_request(body.clone(), header.flags, limits) else {
        return;
    };
    if let Err(reason) = check_metadata(&parsed.metadata, limits) {
        panic!("the sender's check refuses metadata the receiver took: {reason}");
    }
    let mut wire = BytesMut::new();
    encode_request(
        &mut wire,
        header,
        parsed.timeout,
        parsed.done_below,
        &parsed.path,
        &parsed.metadata,
        &parsed.message,
    );
    // request_len counts the watermark whether or not it is sent.
    let unsent = if parsed.done_below.is_none() { 4 } else { 0 };
    let len = request_len(&parsed.path, &parsed.metadata, &parsed.message) - unsent;
    assert_eq!(wire.len(), len, "request_len disagrees with encode_request");
    assert_eq!(
        wire.len(),
        HEADER_LEN + body.len() - reserved_entries(&body, header.flags),
        "re-encoding changed the size (beyond the reserved entries dropped)"
    );
    let again = reparse(&wire, limits);
    assert_eq!(again.0, *header);
    same_request(&again.1, &parsed);

    // A retransmission rewrites the timeout and the cookie in place.
    let timeout = Some(Duration::from_micros(7));
    let cookie = [0x5a; 16];
    set_timeout(&mut wire, timeout);
    set_cookie(&mut wire, &cookie);
    let (rewritten, body) = reparse(&wire, limits);
    assert_eq!(rewritten, Header { cookie, ..*header });
    same_request(&body, &RequestBody { timeout, ..parsed });
}

/// Bytes of the metadata entries in a REQUEST body (one that parsed) whose key is reserved: the
/// receiver drops them, so no re-encoding carries them.
fn reserved_entries(body: &[u8], flags: u8) -> usize {
    let at = 8 + if flags & FLAG_DONE_BELOW != 0 { 4 } else { 0 };
    let path_len = usize::from(u16::from_be_bytes([body[at], body[at + 1]]));
    crate::reserved::reserved_entry_bytes(&body[at + 2 + path_len..])
}

fn reparse(wire: &[u8], limits: &Limits) -> (Header, RequestBody) {
    let header = Header::parse(wire).expect("a re-encoded header parses");
    let body = Bytes::copy_from_slice(&wire[HEADER_LEN..]);
    match parse_request(body, header.flags, limits) {
        Ok(body) => (header, body),
        Err(err) => panic!("a re-encoded REQUEST does not parse: {err}"),
    }
}

fn same_request(a: &RequestBody, b: &RequestBody) {
    assert_eq!(a.timeout, b.timeout, "timeout");
    assert_eq!(a.path, b.path, "path");
    assert_eq!(a.metadata, b.metadata, "metadata");
    assert_eq!(a.message, b.message, "message");
    assert_eq!(a.done_below, b.done_below, "done_below");
}

fn reply(header: &Header, body: Bytes, limits: &Limits) {
    let Ok(answer) = parse_reply(body, limits) else {
        return;
    };
    if let Err(status) = check_reply(&answer, limits) {
        panic!("check_reply refuses a reply that parsed: {status:?}");
    }
    if let Err(status) = &answer {
        if status.message().len() > MAX_STATUS_MESSAGE {
            // The encoder cuts it (on purpose); nothing to compare.
            return;
        }
    }
    let mut wire = BytesMut::new();
    encode_reply(&mut wire, header, &answer);
    assert_eq!(wire.len(), reply_len(&answer), "reply_len disagrees");
    let back = match parse_reply(Bytes::copy_from_slice(&wire[HEADER_LEN..]), limits) {
        Ok(back) => back,
        Err(err) => panic!("a re-encoded REPLY does not parse: {err}"),
    };
    same_answer(&back, &answer);
}

fn same_answer(a: &Result<Response<Bytes>, Status>, b: &Result<Response<Bytes>, Status>) {
    match (a, b) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.get_ref(), b.get_ref(), "message");
            assert_eq!(a.metadata(), b.metadata(), "leading metadata");
            assert_eq!(a.trailers(), b.trailers(), "trailing metadata");
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "status"),
        _ => panic!("a reply changed kind in a round trip: {a:?} vs {b:?}"),
    }
}
