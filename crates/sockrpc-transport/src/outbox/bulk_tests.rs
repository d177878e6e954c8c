//! Tests of `bulk.rs`: random runs of large, held and small messages through writers that fill up
//! anywhere come out whole, in order per call, and readable by the frame decoder.

use super::LONGEST_PIECE;
use crate::codec::FrameDecoder;
use crate::outbox::test_writer::Room;
use crate::outbox::Outbox;
use bytes::Bytes;
use sockrpc_protocol::frame::{Frame, FLAG_END_STREAM, PIECE};
use std::{
    sync::{Arc, Mutex},
    task::{Context, Wake, Waker},
};
use tokio_util::codec::Decoder;

struct Noop;

impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

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
    let waker = Waker::from(Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // Bodies are slices of this at random offsets, so that a byte out of place shows.
    let pattern: Bytes = (0..2 * 1024 * 1024u32)
        .map(|i| (i ^ i >> 8 ^ i >> 16) as u8)
        .collect();
    for run in 0..300 {
        let vectored = run % 4 != 3;
        let out = Arc::new(Mutex::new(Vec::new()));
        let room = Arc::new(Mutex::new(0));
        let writer = Room {
            out: Arc::clone(&out),
            room: Arc::clone(&room),
            vectored,
        };
        let mut outbox = Outbox::new(Box::pin(writer));
        outbox.set_pieces(true);
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
        let wire = out.lock().expect("out").clone();
        assert_eq!(outbox.written(), wire.len() as u64, "run {run}");
        let mut decoder = FrameDecoder::after_preface(sockrpc_protocol::Limits::default());
        let mut buf = bytes::BytesMut::from(&wire[..]);
        let mut got: Vec<Vec<Bytes>> = vec![Vec::new(); 5];
        while let Some(frame) = decoder.decode(&mut buf).expect("the wire decodes") {
            match frame {
                Frame::Message { call_id, body, .. } => got[call_id as usize].push(body),
                other => panic!("run {run}: unexpected frame {other:?}"),
            }
        }
        assert!(buf.is_empty() && !decoder.assembling(), "run {run}");
        assert_eq!(got, sent, "run {run} (vectored {vectored})");
    }
}

#[test]
fn a_tail_taken_in_part_goes_out_whole_after_the_last_piece() {
    // The last piece is taken whole and the END behind it in part: its rest must follow.
    let out = Arc::new(Mutex::new(Vec::new()));
    let large: Bytes = (0..2 * PIECE + 9).map(|i| i as u8).collect();
    let next = Bytes::from_static(b"the next message");
    let header = sockrpc_protocol::frame::HEADER_LEN;
    let room = Arc::new(Mutex::new(2 * header + large.len() + header + 3));
    let writer = Room {
        out: Arc::clone(&out),
        room: Arc::clone(&room),
        vectored: true,
    };
    let mut outbox = Outbox::new(Box::pin(writer));
    outbox.set_pieces(true);
    outbox.append_message(3, 0, &large);
    outbox.append_message(3, FLAG_END_STREAM, &next);
    let waker = Waker::from(Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    assert!(
        outbox.poll_flush(&mut cx).is_pending(),
        "the socket is full"
    );
    *room.lock().expect("room") = usize::MAX;
    assert!(outbox.poll_flush(&mut cx).is_ready());
    let wire = out.lock().expect("out").clone();
    let mut decoder = FrameDecoder::after_preface(sockrpc_protocol::Limits::default());
    let mut buf = bytes::BytesMut::from(&wire[..]);
    let mut bodies = Vec::new();
    while let Some(frame) = decoder.decode(&mut buf).expect("the wire decodes") {
        if let Frame::Message { body, .. } = frame {
            bodies.push(body);
        }
    }
    assert_eq!(bodies, vec![large, next]);
}

#[test]
fn a_split_message_behind_more_queued_bodies_than_one_write_gathers_goes_out_after_them() {
    use crate::outbox::BY_REFERENCE;
    let out = Arc::new(Mutex::new(Vec::new()));
    let writer = Room {
        out: Arc::clone(&out),
        room: Arc::new(Mutex::new(usize::MAX)),
        vectored: true,
    };
    let mut outbox = Outbox::new(Box::pin(writer));
    outbox.set_pieces(true);
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
    let waker = Waker::from(Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    assert!(outbox.poll_flush(&mut cx).is_ready());
    let wire = out.lock().expect("out").clone();
    let mut decoder = FrameDecoder::after_preface(sockrpc_protocol::Limits::default());
    let mut buf = bytes::BytesMut::from(&wire[..]);
    let mut got = Vec::new();
    while let Some(frame) = decoder.decode(&mut buf).expect("the wire decodes") {
        if let Frame::Message { call_id, body, .. } = frame {
            got.push((call_id, body));
        }
    }
    assert_eq!(got, sent);
}
