//! Target `metadata`: the metadata block parser that OPEN, HEADERS and END frames (and UDP
//! REQUEST and REPLY datagrams) all go through.
//!
//! Why: metadata is the most structured thing a peer sends (counts, lengths, key and value
//! rules) and reaches handlers; the receiver must refuse exactly what the API refuses.
//!
//! Input layout:
//!
//! ```text
//! byte 0   bits 0-1: metadata limit (see `choose::limits`)
//! rest     one metadata block: count: u16, count × (key_len: u8, key, value_len: u16, value)
//! ```
//!
//! The block is parsed as a HEADERS body, which is exactly one block: `Frame::parse` is the
//! public door to the parser every frame kind uses. Properties checked:
//! - a block that parses is `metadata_len` bytes long (less its reserved `sockrpc-` entries, which
//!   the receiver drops by design), passes the sender's `check_metadata` under
//!   the same limits, and each entry is one `MetadataMap::insert_str` / `insert_bin` would take;
//! - it re-encodes (`encode_headers`) to a block that parses to the same map, and re-encoding
//!   that gives the same bytes;
//! - the UDP REQUEST parser, which finds a block's extent itself before handing it to the same
//!   parser, accepts exactly the same blocks and reads the same map from them.

use crate::choose;
use bytes::{BufMut, Bytes, BytesMut};
use sockrpc::protocol::frame::{
    check_metadata, encode_headers, metadata_len, Frame, FrameHeader, FrameKind, HEADER_LEN,
};
use sockrpc::protocol::is_bin_key;
use sockrpc::service::udp::datagram::parse_request;
use sockrpc::{Limits, MetadataMap};

/// The method path of the UDP REQUEST the block is also parsed in.
const PATH: &[u8] = b"/fuzz.Echo/Unary";

/// The target.
pub fn run(data: &[u8]) {
    let Some((&config, block)) = data.split_first() else {
        return;
    };
    let limits = choose::limits(0, config);
    let tcp = parse(block, &limits);
    let udp = parse_in_request(block, &limits);
    assert_eq!(tcp, udp, "TCP and UDP read a metadata block differently");
    let Some(map) = tcp else {
        return;
    };

    // Less the reserved (`sockrpc-`) entries, which the receiver drops by design.
    assert_eq!(
        metadata_len(&map),
        block.len() - crate::reserved::reserved_entry_bytes(block),
        "metadata_len disagrees"
    );
    if let Err(reason) = check_metadata(&map, &limits) {
        panic!("the sender's check refuses a block the receiver took: {reason}");
    }
    for (key, value) in map.iter() {
        let mut single = MetadataMap::new();
        let accepted = if is_bin_key(key) {
            single.insert_bin(key, Bytes::copy_from_slice(value).into())
        } else {
            match std::str::from_utf8(value) {
                Ok(text) => single.insert_str(key, text),
                Err(_) => panic!("text value of {key:?} is not UTF-8: {value:?}"),
            }
        };
        if let Err(err) = accepted {
            panic!("the parser took an entry the API refuses: {err}");
        }
        assert_eq!(
            single.iter().next(),
            Some((key, value)),
            "key not normalized"
        );
    }

    let mut wire = BytesMut::new();
    encode_headers(&mut wire, 1, &map);
    let again = parse(&wire[HEADER_LEN..], &limits);
    assert_eq!(
        again.as_ref(),
        Some(&map),
        "a re-encoded block reads differently"
    );
    let mut rewire = BytesMut::new();
    encode_headers(&mut rewire, 1, &map);
    assert_eq!(wire, rewire, "encoding is not a fixed point");
}

/// Builds an input: the metadata limit selector and a block.
pub fn input(limit: u8, block: &[u8]) -> Vec<u8> {
    let mut input = vec![limit & 3];
    input.extend_from_slice(block);
    input
}

/// Encodes `map` as a wire block (a HEADERS body).
pub fn block(map: &MetadataMap) -> Vec<u8> {
    let mut wire = BytesMut::new();
    encode_headers(&mut wire, 1, map);
    wire[HEADER_LEN..].to_vec()
}

/// Parses a block as a HEADERS body; `None` when refused.
fn parse(block: &[u8], limits: &Limits) -> Option<MetadataMap> {
    let header = FrameHeader {
        length: u32::try_from(block.len()).ok()?,
        kind: FrameKind::Headers,
        flags: 0,
        call_id: 1,
    };
    match Frame::parse(&header, Bytes::copy_from_slice(block), limits) {
        Ok(Frame::Headers { metadata, .. }) => Some(metadata),
        // Past the limit: refused (for its call alone, on a connection).
        Ok(Frame::MetadataTooLarge { .. }) => None,
        Ok(other) => panic!("a HEADERS body parsed as {other:?}"),
        Err(_) => None,
    }
}

/// Parses a block inside a UDP REQUEST body with no message, so the block must be all of the
/// rest; `None` when refused.
fn parse_in_request(block: &[u8], limits: &Limits) -> Option<MetadataMap> {
    let mut body = BytesMut::with_capacity(8 + 2 + PATH.len() + block.len());
    body.put_u64(0);
    body.put_u16(PATH.len() as u16);
    body.put_slice(PATH);
    body.put_slice(block);
    let request = parse_request(body.freeze(), 0, limits).ok()?;
    request.message.is_empty().then_some(request.metadata)
}
