//! Tests of `outbox.rs`: bodies held by reference go out in order, whole, through writers that
//! take a few bytes at a time, and are copied for writers without vectored writes.

use super::*;
use sockrpc_protocol::frame::{FLAG_COMPRESSED, HEADER_LEN, PIECE};
use std::sync::Mutex;

use test_writer::{noop_waker, outbox};

/// Heads, bodies of every size around the threshold, more heads: what `expected` says, in order.
fn fill(outbox: &mut Outbox) -> Vec<u8> {
    let mut expected = Vec::new();
    for (i, len) in [
        10,
        BY_REFERENCE - 1,
        BY_REFERENCE,
        100_000,
        0,
        3,
        BY_REFERENCE * 3,
    ]
    .into_iter()
    .enumerate()
    {
        let head = [i as u8; 7];
        outbox.buf_mut().extend_from_slice(&head);
        expected.extend_from_slice(&head);
        let body: Bytes = (0..len).map(|b| (b * 7 + i) as u8).collect();
        outbox.append_body(&body);
        expected.extend_from_slice(&body);
    }
    outbox.buf_mut().extend_from_slice(b"tail");
    expected.extend_from_slice(b"tail");
    expected
}

fn flush_all(outbox: &mut Outbox) -> usize {
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    for rounds in 1..=1_000 {
        match outbox.poll_flush(&mut cx) {
            Poll::Ready(Ok(())) => return rounds,
            Poll::Ready(Err(err)) => panic!("flush failed: {err}"),
            Poll::Pending => {}
        }
    }
    panic!("the outbox did not drain in 1,000 flushes");
}

#[test]
fn bodies_by_reference_go_out_whole_and_in_order_through_short_writes() {
    for max in [1, 5, 7, 4096, 1 << 20] {
        let (mut outbox, out, seen) = outbox(max, true);
        let expected = fill(&mut outbox);
        assert_eq!(outbox.buffered(), expected.len(), "max {max}");
        assert_eq!(outbox.position(), expected.len() as u64);
        // The 100,000-byte body was not copied into the buffer.
        assert!(
            outbox.buf_mut().capacity() < 100_000,
            "max {max}: a large body was copied"
        );
        flush_all(&mut outbox);
        assert_eq!(*out.lock().expect("out"), expected, "max {max}");
        assert_eq!(outbox.buffered(), 0);
        assert_eq!(outbox.written(), expected.len() as u64);
        let (writes, most, _) = *seen.lock().expect("seen");
        assert!(
            writes > 0 && most >= 2,
            "max {max}: {writes} vectored writes"
        );
        assert!(most <= MAX_SLICES);
    }
}

#[test]
fn a_writer_without_vectored_writes_gets_bodies_copied() {
    let (mut outbox, out, seen) = outbox(4096, false);
    let expected = fill(&mut outbox);
    assert_eq!(outbox.buffered(), expected.len());
    flush_all(&mut outbox);
    assert_eq!(*out.lock().expect("out"), expected);
    assert_eq!(seen.lock().expect("seen").0, 0, "no vectored write");
}

#[test]
fn many_queued_bodies_take_several_vectored_writes() {
    let (mut outbox, out, seen) = outbox(usize::MAX, true);
    let mut expected = Vec::new();
    for i in 0..(MAX_SLICES * 3) {
        outbox.buf_mut().extend_from_slice(&[i as u8]);
        expected.push(i as u8);
        let body = Bytes::from(vec![i as u8; BY_REFERENCE]);
        outbox.append_body(&body);
        expected.extend_from_slice(&body);
    }
    flush_all(&mut outbox);
    assert_eq!(*out.lock().expect("out"), expected);
    let (writes, most, _) = *seen.lock().expect("seen");
    assert_eq!(most, MAX_SLICES);
    assert!(writes >= 6, "{writes} writes for {} slices", MAX_SLICES * 6);
}

#[test]
fn only_a_large_body_is_held_and_only_until_it_is_written() {
    let (mut outbox, _out, _seen) = outbox(usize::MAX, true);
    // Cut from one allocation, as the codec's arena cuts small messages from a shared chunk.
    let mut chunk = BytesMut::from(&[1u8; 8192][..]);
    let small = chunk.split_to(BY_REFERENCE - 1).freeze();
    drop(chunk);
    outbox.append_body(&small);
    assert!(
        small.is_unique(),
        "a small body is copied, its chunk not held"
    );
    let large = Bytes::from(vec![2u8; BY_REFERENCE]);
    outbox.append_body(&large);
    assert!(!large.is_unique(), "a large body is held, not copied");
    assert_eq!(outbox.buffered(), small.len() + large.len());
    flush_all(&mut outbox);
    assert!(large.is_unique(), "written: no longer held");
}

/// The frames in `wire`, in order: (call id, flags, body).
fn frames_of(mut wire: &[u8]) -> Vec<(u32, u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while !wire.is_empty() {
        let len = u32::from_be_bytes([wire[0], wire[1], wire[2], wire[3]]) as usize;
        let call = u32::from_be_bytes([wire[8], wire[9], wire[10], wire[11]]);
        frames.push((call, wire[5], wire[HEADER_LEN..HEADER_LEN + len].to_vec()));
        wire = &wire[HEADER_LEN + len..];
    }
    frames
}

/// The wire `out` holds once everything was written, checked against the outbox's count: its
/// frames, and their shape (call id, flags, body length).
fn drained(outbox: &Outbox, out: &Mutex<Vec<u8>>) -> (Vec<(u32, u8, Vec<u8>)>, Shape) {
    assert_eq!(outbox.buffered(), 0);
    let wire = out.lock().expect("out").clone();
    assert_eq!(outbox.written(), wire.len() as u64);
    let frames = frames_of(&wire);
    let shape = frames
        .iter()
        .map(|(call, flags, body)| (*call, *flags, body.len()))
        .collect();
    (frames, shape)
}

type Shape = Vec<(u32, u8, usize)>;

fn flush_once(outbox: &mut Outbox) -> Poll<io::Result<()>> {
    let waker = noop_waker();
    outbox.poll_flush(&mut Context::from_waker(&waker))
}

#[test]
fn a_large_message_goes_out_in_pieces_that_other_calls_frames_pass() {
    use sockrpc_protocol::frame::{FLAG_END_STREAM, FLAG_MORE};
    for vectored in [true, false] {
        let (mut outbox, out, _) = outbox(usize::MAX, vectored);
        outbox.set_pieces(true);
        // One flush's worth of pieces, one more, and 5 bytes.
        let n = PIECES_PER_FLUSH;
        let large: Bytes = (0..PIECE * (n + 1) + 5).map(|i| i as u8).collect();
        outbox.append_message(3, FLAG_COMPRESSED, &large);
        // The call's next message and its END wait behind it, however small.
        outbox.append_message(3, FLAG_END_STREAM, &Bytes::from_static(b"next"));
        frame::encode_half_close(outbox.frames_for(3), 3);
        assert_eq!(
            outbox.position(),
            0,
            "nothing of call 3 is in the buffer yet"
        );
        assert!(outbox.buffered() > large.len());
        // A flush writes at most PIECES_PER_FLUSH pieces, then comes back for the rest.
        assert!(flush_once(&mut outbox).is_pending());
        // Another call's frame appended now goes before the next piece.
        outbox.append_message(5, FLAG_END_STREAM, &Bytes::from_static(b"small"));
        frame::encode_half_close(outbox.frames_for(5), 5);
        flush_all(&mut outbox);
        assert_eq!(outbox.buffered(), 0);
        let frames = frames_of(&out.lock().expect("out"));
        let shape: Vec<(u32, u8, usize)> = frames
            .iter()
            .map(|(call, flags, body)| (*call, *flags, body.len()))
            .collect();
        let end = frames[n + 1].2.len();
        let more = (3, FLAG_MORE | FLAG_COMPRESSED, PIECE);
        let mut expected = vec![more; n];
        expected.extend([
            (5, FLAG_END_STREAM, 5),
            (5, 0, end),
            // The last piece takes a short tail with it (not a 5-byte piece of its own).
            (3, FLAG_COMPRESSED, PIECE + 5),
            (3, FLAG_END_STREAM, 4),
            (3, 0, end),
        ]);
        assert_eq!(shape, expected, "vectored {vectored}");
        let pieces = frames.iter().filter(|f| f.0 == 3).take(n + 1);
        let joined: Vec<u8> = pieces.flat_map(|f| f.2.iter().copied()).collect();
        assert_eq!(joined, large.to_vec());
    }
}

#[test]
fn the_frames_before_a_split_message_go_out_with_its_first_pieces() {
    use sockrpc_protocol::frame::{FLAG_END_STREAM, FLAG_MORE};
    let (mut outbox, out, seen) = outbox(usize::MAX, true);
    outbox.set_pieces(true);
    // A frame (a call's OPEN, say), then a 100,000-byte message: two pieces.
    outbox.append_message(1, FLAG_END_STREAM, &Bytes::from_static(b"first"));
    let large: Bytes = (0..100_000).map(|i| i as u8).collect();
    outbox.append_message(3, FLAG_END_STREAM, &large);
    assert!(flush_once(&mut outbox).is_ready());
    let (vectored, _, plain) = *seen.lock().expect("seen");
    assert_eq!(
        (vectored, plain),
        (1, 0),
        "one write for the frame and both pieces"
    );
    let frames = frames_of(&out.lock().expect("out"));
    let shape: Vec<(u32, u8, usize)> = frames
        .iter()
        .map(|(call, flags, body)| (*call, *flags, body.len()))
        .collect();
    let last = 100_000 - PIECE;
    let expected = [
        (1, FLAG_END_STREAM, 5),
        (3, FLAG_MORE, PIECE),
        (3, FLAG_END_STREAM, last),
    ];
    assert_eq!(shape, expected);
    let joined: Vec<u8> = frames[1..]
        .iter()
        .flat_map(|f| f.2.iter().copied())
        .collect();
    assert_eq!(joined, large.to_vec());
}

#[test]
fn a_peer_that_reads_no_pieces_gets_large_messages_whole() {
    let (mut outbox, out, _) = outbox(usize::MAX, true);
    let large = Bytes::from(vec![1u8; PIECE * 3]);
    outbox.append_message(3, 0, &large);
    assert_eq!(outbox.position(), (HEADER_LEN + large.len()) as u64);
    flush_all(&mut outbox);
    let frames = frames_of(&out.lock().expect("out"));
    assert_eq!(frames.len(), 1);
    assert_eq!(
        (frames[0].0, frames[0].1, frames[0].2.len()),
        (3, 0, PIECE * 3)
    );
}

#[test]
fn an_abandoned_call_cuts_no_more_pieces_and_ends_the_one_begun() {
    use crate::codec::FrameDecoder;
    use sockrpc_protocol::frame::{Frame, FLAG_MORE};
    use tokio_util::codec::Decoder;
    let (mut outbox, out, _) = outbox(usize::MAX, true);
    outbox.set_pieces(true);
    let n = PIECES_PER_FLUSH;
    let large = Bytes::from(vec![3u8; PIECE * (n + 4)]);
    // Call 3's message and its END behind it; calls 5 and 7's messages behind that.
    outbox.append_message(3, FLAG_COMPRESSED, &large);
    frame::encode_half_close(outbox.frames_for(3), 3);
    outbox.append_message(5, 0, &Bytes::from(vec![5u8; PIECE * 2]));
    outbox.append_message(7, 0, &Bytes::from(vec![7u8; PIECE * 2]));
    outbox.append_message(7, 0, &Bytes::from_static(b"tail"));
    assert!(flush_once(&mut outbox).is_pending(), "a flush's worth cut");
    // Call 3 is cancelled mid-message; call 7 before a piece of it was cut. What never goes
    // out is what the peer will never credit: call 3's uncut bytes (the peer credits the
    // shorter message it completes), call 7's messages whole, its tail's included.
    let unsent = outbox.abandon(3, |buf| frame::encode_cancel(buf, 3));
    assert_eq!(unsent, 4 * PIECE);
    let unsent = outbox.abandon(7, |_| {});
    assert_eq!(
        unsent,
        frame::message_charge(2 * PIECE) + frame::message_charge(4)
    );
    flush_all(&mut outbox);
    assert_eq!(outbox.buffered(), 0);
    let wire = out.lock().expect("out").clone();
    let shape: Vec<(u32, u8, usize)> = frames_of(&wire)
        .iter()
        .map(|(call, flags, body)| (*call, *flags, body.len()))
        .collect();
    let mut expected = vec![(3, FLAG_MORE | FLAG_COMPRESSED, PIECE); n];
    expected.extend([
        (3, 0, 0),               // CANCEL
        (3, FLAG_COMPRESSED, 0), // the empty last piece
        (5, FLAG_MORE, PIECE),
        (5, 0, PIECE),
    ]);
    assert_eq!(shape, expected);
    // A receiver takes it all without an error and is left with nothing in assembly.
    let mut decoder = FrameDecoder::after_preface(sockrpc_protocol::Limits::default());
    let mut buf = BytesMut::from(&wire[..]);
    let mut frames = Vec::new();
    while let Some(frame) = decoder.decode(&mut buf).expect("decode") {
        frames.push(frame);
    }
    assert!(!decoder.assembling());
    assert!(matches!(frames[0], Frame::Cancel { call_id: 3 }));
    assert!(
        matches!(
            &frames[1],
            Frame::Message {
                call_id: 3,
                end_stream: false,
                ..
            }
        ),
        "{:?}",
        frames[1]
    );
    assert!(
        matches!(&frames[2], Frame::Message { call_id: 5, body, .. } if body.len() == 2 * PIECE)
    );
    assert_eq!(frames.len(), 3, "no END of call 3: the cancel replaced it");
}

#[test]
fn an_abandoned_end_stream_message_is_not_counted_and_its_last_piece_keeps_the_flag() {
    use sockrpc_protocol::frame::{FLAG_END_STREAM, FLAG_MORE};
    let (mut outbox, out, _) = outbox(usize::MAX, true);
    outbox.set_pieces(true);
    let n = PIECES_PER_FLUSH;
    // A one-message answer (END_STREAM) begun, another not begun, and a streamed answer not
    // begun with an END_STREAM message in its tail.
    outbox.append_message(3, FLAG_END_STREAM, &Bytes::from(vec![3u8; PIECE * (n + 4)]));
    outbox.append_message(5, FLAG_END_STREAM, &Bytes::from(vec![5u8; PIECE * 2]));
    outbox.append_message(7, 0, &Bytes::from(vec![7u8; PIECE * 2]));
    outbox.append_message(7, FLAG_END_STREAM, &Bytes::from_static(b"tail"));
    assert!(flush_once(&mut outbox).is_pending(), "a flush's worth cut");
    // Neither window counts a message with END_STREAM, so none is given back for it.
    assert_eq!(outbox.abandon(3, |buf| frame::encode_cancel(buf, 3)), 0);
    assert_eq!(outbox.abandon(5, |_| {}), 0);
    assert_eq!(outbox.abandon(7, |_| {}), frame::message_charge(2 * PIECE));
    flush_all(&mut outbox);
    let wire = out.lock().expect("out").clone();
    let shape: Vec<(u32, u8, usize)> = frames_of(&wire)
        .iter()
        .map(|(call, flags, body)| (*call, *flags, body.len()))
        .collect();
    let mut expected = vec![(3, FLAG_MORE, PIECE); n];
    expected.extend([
        (3, 0, 0), // CANCEL
        // The empty last piece keeps END_STREAM: the peer does not credit what it completes.
        (3, FLAG_END_STREAM, 0),
    ]);
    assert_eq!(shape, expected);
}

#[test]
fn a_batch_wakes_its_driver_once() {
    let (mut outbox, _, _) = outbox(usize::MAX, true);
    let (count, waker) = crate::wake_count::counting_waker();
    outbox.set_driver(&waker);
    for _ in 0..3 {
        outbox.buf_mut().extend_from_slice(b"a frame");
        outbox.add_to_batch();
        outbox.wake_driver_for_batch();
    }
    assert_eq!(
        count.count(),
        1,
        "the rest of the batch found the driver woken"
    );
    flush_all(&mut outbox);
    outbox.buf_mut().extend_from_slice(b"a frame");
    outbox.add_to_batch();
    outbox.wake_driver_for_batch();
    assert_eq!(
        count.count(),
        2,
        "a batch begun after a write wakes the driver again"
    );
}

#[test]
fn a_megabyte_in_pieces_goes_out_in_one_write_when_the_socket_takes_it() {
    use sockrpc_protocol::frame::{FLAG_END_STREAM, FLAG_MORE};
    let (mut outbox, out, seen) = outbox(usize::MAX, true);
    outbox.set_pieces(true);
    outbox.append_message(1, FLAG_END_STREAM, &Bytes::from_static(b"first"));
    let large: Bytes = (0..PIECE * PIECES_PER_FLUSH).map(|i| i as u8).collect();
    outbox.append_message(3, 0, &large);
    frame::encode_half_close(outbox.frames_for(3), 3);
    assert!(flush_once(&mut outbox).is_ready());
    let (vectored, _, plain) = *seen.lock().expect("seen");
    assert_eq!(
        (vectored, plain),
        (1, 0),
        "the frame before, sixteen pieces and the END after them in one write"
    );
    let (frames, shape) = drained(&outbox, &out);
    let mut expected = vec![(1, FLAG_END_STREAM, 5)];
    expected.extend(vec![(3, FLAG_MORE, PIECE); PIECES_PER_FLUSH - 1]);
    let end = frames[PIECES_PER_FLUSH + 1].2.len();
    expected.extend([(3, 0, PIECE), (3, 0, end)]);
    assert_eq!(shape, expected);
    let joined: Vec<u8> = frames[1..=PIECES_PER_FLUSH]
        .iter()
        .flat_map(|f| f.2.iter().copied())
        .collect();
    assert_eq!(joined, large.to_vec());
}

#[test]
fn behind_a_full_socket_another_calls_frame_waits_for_the_piece_begun_only() {
    use sockrpc_protocol::frame::{FLAG_END_STREAM, FLAG_MORE};
    let frame = HEADER_LEN + PIECE;
    // Where the socket fills: in the first piece's header, at a piece's end, in the second
    // piece's header, in its body.
    for first in [7, frame, frame + 5, frame + HEADER_LEN + 100] {
        let (mut outbox, out, room) = test_writer::outbox_with_room(first, true);
        let large: Bytes = (0..PIECE * 4 + 5).map(|i| (i % 251) as u8).collect();
        outbox.append_message(3, FLAG_END_STREAM, &large);
        assert!(flush_once(&mut outbox).is_pending(), "the socket is full");
        assert_eq!(outbox.written(), first as u64);
        outbox.append_message(5, FLAG_END_STREAM, &Bytes::from_static(b"small"));
        *room.lock().expect("room") = usize::MAX;
        assert!(flush_once(&mut outbox).is_ready());
        let (frames, shape) = drained(&outbox, &out);
        // Only the pieces the first write began go before call 5's frame.
        let begun = first.div_ceil(frame);
        let mut expected = vec![(3, FLAG_MORE, PIECE); 3];
        expected.push((3, FLAG_END_STREAM, PIECE + 5));
        expected.insert(begun, (5, FLAG_END_STREAM, 5));
        assert_eq!(shape, expected, "socket full after {first} bytes");
        let joined: Vec<u8> = frames
            .iter()
            .filter(|f| f.0 == 3)
            .flat_map(|f| f.2.iter().copied())
            .collect();
        assert_eq!(joined, large.to_vec());
    }
}
