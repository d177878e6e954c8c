//! Tests of `bulk.rs`: random runs of large, held and small messages through writers that fill up
//! anywhere come out whole, in order per call, and readable by the frame decoder.

use super::LONGEST_PIECE;
use crate::codec::FrameDecoder;
use crate::outbox::test_writer::{noop_waker, outbox_with_room};
use bytes::Bytes;
use sockrpc_protocol::frame::{Frame, FLAG_END_STREAM, PIECE};
use std::{sync::Mutex, task::Context};
use tokio_util::codec::Decoder;

/// A seeded xorshift: the same runs every time.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % bound as u64) as usize
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len())]
    }
}

/// The frames a receiver decodes from what `out` holds: the wire must decode whole, with no
/// message left in assembly.
fn decoded(out: &Mutex<Vec<u8>>) -> Vec<Frame> {
    let wire = out.lock().expect("out").clone();
    let mut decoder = FrameDecoder::after_preface(sockrpc_protocol::Limits::default());
    let mut buf = bytes::BytesMut::from(&wire[..]);
    let mut frames = Vec::new();
    while let Some(frame) = decoder.decode(&mut buf).expect("the wire decodes") {
        frames.push(frame);
    }
    assert!(buf.is_empty(), "a frame cut short at the end");
    assert!(!decoder.assembling(), "a split message left in assembly");
    frames
}

/// The messages among `frames`: (call id, body).
fn messages(frames: Vec<Frame>) -> Vec<(u32, Bytes)> {
    let messages = frames.into_iter().filter_map(|frame| match frame {
        Frame::Message { call_id, body, .. } => Some((call_id, body)),
        _ => None,
    });
    messages.collect()
}

#[test]
fn random_messages_through_writers_that_fill_anywhere_arrive_whole_and_in_order() {
    let sizes = [
        0,
        10,
        crate::outbox::BY_REFERENCE,
        PIECE - 1,
        PIECE + 1,
        LONGEST_PIECE,
        LONGEST_PIECE + 1,
        3 * PIECE + 7,
        17 * PIECE + 3,
    ];
    let rooms = [0, 1, 11, 13, 5_000, 70_000, 300_000, usize::MAX];
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // Bodies are slices of this at random offsets, so that a byte out of place shows.
    let pattern: Bytes = (0..2 * 1024 * 1024u32)
        .map(|i| (i ^ i >> 8 ^ i >> 16) as u8)
        .collect();
    for run in 0..300 {
        let vectored = run % 4 != 3;
        let (mut outbox, out, room) = outbox_with_room(0, vectored);
        // What each of calls 1 to 4 sent, in order.
        let mut sent: Vec<Vec<Bytes>> = vec![Vec::new(); 5];
        for _ in 0..1 + rng.below(40) {
            let call = 1 + rng.below(4);
            let len = rng.pick(&sizes);
            let from = rng.below(pattern.len() - len);
            let body = pattern.slice(from..from + len);
            outbox.append_message(call as u32, 0, &body);
            sent[call].push(body);
            if rng.below(2) == 0 {
                *room.lock().expect("room") = rng.pick(&rooms);
                let _ = outbox.poll_flush(&mut cx);
            }
        }
        *room.lock().expect("room") = usize::MAX;
        let mut flushes = 0;
        while outbox.poll_flush(&mut cx).is_pending() {
            flushes += 1;
            assert!(flushes < 1_000, "run {run}: the outbox did not drain");
        }
        assert_eq!(outbox.buffered(), 0, "run {run}");
        let len = out.lock().expect("out").len();
        assert_eq!(outbox.written(), len as u64, "run {run}");
        let mut got: Vec<Vec<Bytes>> = vec![Vec::new(); 5];
        for frame in decoded(&out) {
            match frame {
                Frame::Message { call_id, body, .. } => got[call_id as usize].push(body),
                other => panic!("run {run}: unexpected frame {other:?}"),
            }
        }
        assert_eq!(got, sent, "run {run} (vectored {vectored})");
    }
}

#[test]
fn a_tail_taken_in_part_goes_out_whole_after_the_last_piece() {
    // The last piece is taken whole and the END behind it in part: its rest must follow.
    let large: Bytes = (0..2 * PIECE + 9).map(|i| i as u8).collect();
    let next = Bytes::from_static(b"the next message");
    let header = sockrpc_protocol::frame::HEADER_LEN;
    let (mut outbox, out, room) = outbox_with_room(2 * header + large.len() + header + 3, true);
    outbox.append_message(3, 0, &large);
    outbox.append_message(3, FLAG_END_STREAM, &next);
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(
        outbox.poll_flush(&mut cx).is_pending(),
        "the socket is full"
    );
    *room.lock().expect("room") = usize::MAX;
    assert!(outbox.poll_flush(&mut cx).is_ready());
    assert_eq!(messages(decoded(&out)), vec![(3, large), (3, next)]);
}

#[test]
fn a_split_message_behind_more_queued_bodies_than_one_write_gathers_goes_out_after_them() {
    use crate::outbox::BY_REFERENCE;
    let (mut outbox, out, _) = outbox_with_room(usize::MAX, true);
    // 100 answers held by reference: 200 parts in the queue, past one write's slices.
    let mut sent = Vec::new();
    for call in 1..=100u32 {
        let body = Bytes::from(vec![call as u8; BY_REFERENCE + call as usize]);
        outbox.append_message(call, FLAG_END_STREAM, &body);
        sent.push((call, body));
    }
    let large = Bytes::from(vec![7u8; 5 * PIECE]);
    outbox.append_message(200, FLAG_END_STREAM, &large);
    sent.push((200, large));
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(outbox.poll_flush(&mut cx).is_ready());
    assert_eq!(messages(decoded(&out)), sent);
}

#[test]
fn a_call_abandoned_after_a_piece_taken_in_part_ends_the_peers_assembly_cleanly() {
    let header = sockrpc_protocol::frame::HEADER_LEN;
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    // The socket fills in the first piece's header, in its body, and in the second's header.
    for first in [7, header + 100, header + PIECE + 5] {
        let (mut outbox, out, room) = outbox_with_room(first, true);
        outbox.append_message(3, 0, &Bytes::from(vec![3u8; 5 * PIECE]));
        let small = Bytes::from_static(b"another call's answer");
        assert!(
            outbox.poll_flush(&mut cx).is_pending(),
            "the socket is full"
        );
        let unsent = outbox.abandon(3, |buf| sockrpc_protocol::frame::encode_cancel(buf, 3));
        let begun = first.div_ceil(header + PIECE);
        assert_eq!(
            unsent,
            (5 - begun) * PIECE,
            "socket full after {first} bytes"
        );
        outbox.append_message(5, FLAG_END_STREAM, &small);
        *room.lock().expect("room") = usize::MAX;
        assert!(outbox.poll_flush(&mut cx).is_ready());
        assert_eq!(outbox.buffered(), 0);
        let frames = decoded(&out);
        // The pieces begun, whole; the CANCEL; the empty last piece completing a shorter
        // message; then the other call's answer.
        assert!(
            matches!(frames[0], Frame::Cancel { call_id: 3 }),
            "{frames:?}"
        );
        assert!(
            matches!(&frames[1], Frame::Message { call_id: 3, body, .. } if body.len() == begun * PIECE),
            "after {first} bytes"
        );
        assert!(matches!(&frames[2], Frame::Message { call_id: 5, body, .. } if *body == small));
        assert_eq!(frames.len(), 3);
    }
}
