//! What a message put back together from pieces (`FLAG_MORE`) keeps allocated once delivered:
//! about its own size. Receivers count a message by its length (a server's inbound budget and
//! connection window, a client's queue of answers), so a message that kept twice its length
//! alive would let a connection hold twice what those bounds say.
//!
//! Counted with dhat's global allocator (as `allocs.rs`), in a binary of its own: the count is
//! of live bytes, and nothing else may allocate meanwhile. Free buffers kept for reuse
//! (`codec/recycle.rs`) are the process's, bounded on their own, not the message's.

use bytes::BytesMut;
use sockrpc::protocol::codec::recycle;
use sockrpc::protocol::frame::Frame;
use sockrpc::transport::FrameDecoder;
use sockrpc::Limits;
use tokio_util::codec::Decoder;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const PIECE: usize = 64 * 1024;
const MESSAGE: u8 = 3;
const END_STREAM: u8 = 0x01;
const MORE: u8 = 0x02;

fn frame(kind: u8, flags: u8, call_id: u32, body: &[u8]) -> BytesMut {
    let mut out = BytesMut::from(&(body.len() as u32).to_be_bytes()[..]);
    out.extend_from_slice(&[kind, flags, 0, 0]);
    out.extend_from_slice(&call_id.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// One dhat profiler at a time: the tests of this binary take turns.
static PROFILER: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_message_from_pieces_keeps_about_its_own_size_alive() {
    let _turn = PROFILER.lock().unwrap_or_else(|e| e.into_inner());
    let _profiler = dhat::Profiler::builder().testing().build();
    let mut decoder = FrameDecoder::new(Limits::default());
    let mut preface = BytesMut::from(&b"SOCKRPC\x01"[..]);
    assert!(decoder.decode(&mut preface).expect("preface").is_none());
    // Sizes just past a doubling of what the assembly held: five full pieces and one byte,
    // and nine full pieces and one byte.
    for pieces in [5usize, 9] {
        let before = dhat::HeapStats::get().curr_bytes;
        let pooled_before = recycle::pooled_bytes();
        let mut delivered = None;
        for i in 0..=pieces {
            let last = i == pieces;
            let (flags, len) = if last { (END_STREAM, 1) } else { (MORE, PIECE) };
            let mut wire = frame(MESSAGE, flags, 1, &vec![7u8; len]);
            if let Some(frame) = decoder.decode(&mut wire).expect("a piece") {
                delivered = Some(frame);
            }
        }
        // The free buffers the assembly grew out of went back to the recycled pool, which the
        // process keeps (bounded: `recycle::POOL_BYTES`); the message keeps the rest.
        let pooled = recycle::pooled_bytes() as i64 - pooled_before as i64;
        assert!(recycle::pooled_bytes() <= recycle::POOL_BYTES);
        let held = (dhat::HeapStats::get().curr_bytes as i64 - before as i64 - pooled) as usize;
        let Some(Frame::Message { body, .. }) = &delivered else {
            panic!("no message: {delivered:?}");
        };
        assert_eq!(body.len(), pieces * PIECE + 1);
        assert!(
            held <= body.len() + body.len() / 4,
            "a message of {} bytes keeps {held} bytes alive",
            body.len()
        );
    }
}

/// What a piece's header alone makes a receiver allocate: a peer that announces a piece and
/// sends a few bytes of it, then stalls, holds that for a frame timeout on each connection.
/// The decoder may read a piece straight into its assembly, so room for it is made when its
/// header arrives: never more than the read buffer could come to (`reader.rs`: a 16 KiB chunk
/// and a reservation of at most 256 KiB), or thousands of connections that each sent one
/// header hold twice that, or the whole of a previous message's size.
#[test]
fn a_piece_announced_and_not_sent_makes_no_more_room_than_a_read() {
    const ANNOUNCED: usize = 256 * 1024;
    // What a read could reserve, in a buffer of the recycled pool's class for it (classes
    // are a quarter apart: `recycle.rs`).
    const READ_AT_MOST: i64 = (256 + 16) * 1024 * 5 / 4;
    let _turn = PROFILER.lock().unwrap_or_else(|e| e.into_inner());
    let _profiler = dhat::Profiler::builder().testing().build();
    let mut over = Vec::new();
    // A fresh connection, and one whose last message was 4 MiB (the limit): its length is
    // the guess at the next one's.
    for (before_message, piece) in [
        (0usize, ANNOUNCED),
        // A message of 256 KiB and its encoding: the next one's assembly, sized by it, is
        // within what a read could reserve.
        (256 * 1024 + 4, PIECE),
        (4 << 20, 16 * 1024),
        (4 << 20, ANNOUNCED),
    ] {
        let mut decoder = FrameDecoder::new(Limits::default());
        let mut preface = BytesMut::from(&b"SOCKRPC\x01"[..]);
        assert!(decoder.decode(&mut preface).expect("preface").is_none());
        if before_message > 0 {
            let mut left = before_message;
            while left > 0 {
                let len = left.min(PIECE);
                left -= len;
                let flags = if left == 0 { END_STREAM } else { MORE };
                let mut wire = frame(MESSAGE, flags, 1, &vec![7u8; len]);
                if let Some(message) = decoder.decode(&mut wire).expect("a piece") {
                    drop(message);
                }
            }
        }
        let before = dhat::HeapStats::get().curr_bytes;
        let pooled_before = recycle::pooled_bytes();
        let mut wire = frame(MESSAGE, MORE, 3, &[9u8; 13]);
        wire[..4].copy_from_slice(&(piece as u32).to_be_bytes());
        assert!(decoder
            .decode(&mut wire)
            .expect("a piece's start")
            .is_none());
        let taken = pooled_before.saturating_sub(recycle::pooled_bytes()) as i64;
        let grew = dhat::HeapStats::get().curr_bytes as i64 - before as i64 + taken;
        if grew > READ_AT_MOST + 4096 {
            over.push(format!(
                "after a {before_message}-byte message, the header of a {piece}-byte piece \
                 and 13 bytes of it hold {grew} bytes"
            ));
        }
    }
    assert!(over.is_empty(), "{over:#?}");
}
