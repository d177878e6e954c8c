//! `FrameReader`: the read side of a connection, the same for both ends.
//!
//! ```text
//!  socket ──poll_fill──▶ read buffer ──next_frame──▶ Frame ──▶ (client driver | server connection)
//!                            │ grows only as bytes arrive, in chunks sized by the frame in progress
//!                            └ after a large frame: released, so small frames do not pin it
//!        └──poll_fill (a piece of a split message due)──▶ its assembly (pieces.rs), no copy
//! ```
//!
//! Why one type: the client driver and the server connection each used to keep their own read
//! buffer and decoder, and their policies drifted (the server learned to stop pinning large
//! buffers, the client did not). Frame bodies are slices of the read buffer (no copy for the
//! common case); what keeps a slice alive keeps its buffer alive, so the buffer is sized to
//! what is being read and given up once a large frame has been taken out of it.
//!
//! While the buffer is an allocation grown for a frame larger than a chunk, frames under a
//! quarter of it are copied out instead of sliced: a small message read in the same batch as
//! a 4 MiB one (a stream's queued message, a waiting handler's request) would otherwise keep
//! the whole allocation alive while being counted as its own few kilobytes. What any frame
//! holds is then at most four times its size, or `GROWN` (32 KiB: the most small frames
//! alone make a buffer grow to). Until session 55 only buffers past 64 KiB were treated so:
//! a 48,000-byte frame read before each 4 KiB message queued on a stream made each hold a
//! buffer of 60 KiB (`tests/hostile/pinned_small.rs`).
//!
//! Before a read into an empty buffer, the buffer reclaims room for as many bytes as came
//! since it was last empty (up to 64 KiB) from the allocation they were read into, once
//! nothing holds the frames cut from it: a peer sending 20 KiB messages, one per round trip,
//! then has each read in one `read` instead of two (a 16 KiB chunk, then the rest after a
//! `realloc` that copied the chunk). Reclaiming never allocates, so it changes nothing of
//! what a held frame keeps alive.
//!
//! The pieces of a split message are read straight into the buffer they are put together in
//! (`FrameDecoder::direct`), each read stopping after the piece and the next frame's header:
//! copying them from the read buffer instead cost a copy of the whole message on each side,
//! which made a 256 KiB echo twice the raw one.

use crate::client::BoxReader;
use crate::codec::{DecodeError, Direct, FrameDecoder};
use crate::region::Region;
use bytes::{BufMut, BytesMut};
use sockrpc_protocol::codec::recycle;
use sockrpc_protocol::frame::{Frame, HEADER_LEN};
use std::{
    io,
    task::{Context, Poll},
};
use tokio_util::codec::Decoder;

/// Bytes read at a time while no large frame is in progress.
const CHUNK: usize = 16 * 1024;

/// A read buffer grown past this for a large frame is given up once that frame is taken.
const LARGE: usize = 64 * 1024;

/// Largest single reservation: a large frame's buffer grows in steps of this.
const MAX_RESERVE: usize = 256 * 1024;

/// Room below which the buffer is made larger before a read, whatever the frames' sizes.
const MIN_ROOM: usize = 4096;

/// The largest allocation frames no larger than a chunk make the buffer read into: a chunk
/// grown once (doubled, or a chunk past a partial frame). A larger one grew for a larger
/// frame, and frames under a quarter of it are copied out of it rather than kept as slices
/// that keep it alive. Below it, small frames stay slices (the common case costs no copy), and
/// a frame holds at most this much.
pub(crate) const GROWN: usize = 2 * CHUNK;

/// A connection's read half, its buffer and its frame decoder.
pub struct FrameReader {
    reader: BoxReader,
    buf: BytesMut,
    decoder: FrameDecoder,
    frames: u64,
    /// The largest capacity `buf` has had since it was last a fresh buffer: never less than the
    /// allocation it reads into now (which a frame sliced from it keeps alive), sometimes more
    /// (after `reserve` moved it to a smaller one), which only copies more frames out.
    alloc: usize,
    /// Bytes read into `buf` since it was last found empty before a read.
    burst: usize,
    /// Room to reclaim before a read into the empty buffer, up to [`LARGE`]: the last burst,
    /// until a reclaim succeeds (see [`poll_fill`](Self::poll_fill)).
    expect: usize,
    /// The allocation `buf` reads into now, which the frames sliced from it keep alive.
    region: Region,
}

impl std::fmt::Debug for FrameReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameReader")
            .field("buffered", &self.buf.len())
            .field("frames", &self.frames)
            .finish()
    }
}

impl FrameReader {
    /// Reads frames from `reader` with `decoder` (which expects the peer's preface or not).
    pub fn new(reader: BoxReader, decoder: FrameDecoder) -> FrameReader {
        FrameReader::with_buffer(reader, decoder, BytesMut::with_capacity(CHUNK))
    }

    /// Like [`new`](Self::new), with bytes already read (e.g. while waiting for a preface).
    pub fn with_buffer(reader: BoxReader, decoder: FrameDecoder, buf: BytesMut) -> FrameReader {
        let alloc = buf.capacity();
        let region = Region::of(&buf);
        let mut reader = FrameReader {
            reader,
            buf,
            decoder,
            frames: 0,
            alloc: 0,
            burst: 0,
            expect: 0,
            region,
        };
        reader.note_alloc(alloc);
        reader
    }

    /// Reads once into the buffer: `Ready(Ok(0))` when the peer closed.
    pub fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.is_empty() {
            // Never a read of nothing (which would look like the peer's FIN): only while some
            // of the piece is due and the assembly has room for it, as it always has.
            let direct = self.decoder.direct().filter(|direct| {
                *direct.remaining > 0 && direct.held.capacity() > direct.held.len()
            });
            if let Some(direct) = direct {
                // What came past the piece goes to the buffer, which may grow for it.
                let before = self.buf.as_ptr() as usize;
                let read = read_into(self.reader.as_mut(), cx, direct, &mut self.buf);
                self.region.after_growing(before, &self.buf);
                return read;
            }
        }
        // A peer that sends messages of about one size past 4 KiB gets room for the next one
        // before it is read: a 20 KiB message read into what was left of a 16 KiB chunk took
        // two reads and a `realloc` copying the first part. What came since the buffer was
        // last empty (one call's frames, one at a time) is the size expected; the room is
        // only reclaimed from the allocation those frames were cut from, once nothing holds
        // them: never a new allocation, so a frame still held keeps what it kept before.
        if self.buf.is_empty() {
            if self.burst > 0 {
                self.expect = std::mem::take(&mut self.burst).min(LARGE);
            }
            // Fails, changing nothing, while a frame cut from the allocation is alive (a
            // client's answer its caller has not taken yet): tried again before the next read.
            let before = self.buf.as_ptr() as usize;
            if self.expect > 0
                && (self.buf.capacity() >= self.expect || self.buf.try_reclaim(self.expect))
            {
                self.expect = 0;
                // Reclaimed (nothing held the allocation), or room enough already.
                self.region.after_growing(before, &self.buf);
            }
        }
        if self.buf.capacity() - self.buf.len() < MIN_ROOM {
            let want = self
                .decoder
                .bytes_wanted(self.buf.len())
                .clamp(CHUNK, MAX_RESERVE);
            let before = self.buf.as_ptr() as usize;
            self.buf.reserve(want);
            self.region.after_growing(before, &self.buf);
            // However `reserve` made room (a new allocation, the old one grown in place by
            // `realloc`, or reclaimed), the allocation holds at least the capacity: noted as
            // the largest seen since the last fresh buffer (see `alloc`).
            if self.buf.capacity() > self.alloc {
                self.note_alloc(self.buf.capacity());
            }
        }
        let read = tokio_util::io::poll_read_buf(self.reader.as_mut(), cx, &mut self.buf);
        if let Poll::Ready(Ok(n)) = read {
            self.burst += n;
        }
        read
    }

    /// Notes that the buffer reads into an allocation of `alloc` bytes: frames under a quarter
    /// of one past [`GROWN`] are copied out of it.
    fn note_alloc(&mut self, alloc: usize) {
        self.alloc = alloc;
        self.decoder
            .copy_below(if alloc > GROWN { alloc / 4 } else { 0 });
    }

    /// The next whole frame in the buffer, if any.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, DecodeError> {
        let frame = self.decoder.decode(&mut self.buf)?;
        if frame.is_some() {
            self.frames += 1;
        }
        Ok(frame)
    }

    /// After the frames of one read were taken: gives up a buffer that grew for a large frame,
    /// moving what is left of the next frame into a fresh small one.
    pub fn settle(&mut self) {
        if self.alloc > LARGE && self.buf.len() < CHUNK {
            let mut fresh = BytesMut::with_capacity(CHUNK);
            fresh.extend_from_slice(&self.buf);
            retire(std::mem::replace(&mut self.buf, fresh));
            self.region.renew(&self.buf);
            self.note_alloc(CHUNK);
        }
    }

    /// Drops every byte read and not decoded (a closing connection that no longer reads
    /// frames, only waits for the peer's FIN).
    pub fn discard(&mut self) {
        self.buf.clear();
    }

    /// The allocation `body` (a frame's, at this address, `len` bytes long) was sliced from,
    /// when it is the one the buffer reads into now: its id (new with each allocation) and
    /// size. `None` for a frame copied out, a split message (put together in a buffer of its
    /// own), or one cut from an earlier allocation (`region.rs`).
    pub(crate) fn region_of(&self, body: usize, len: usize) -> Option<(u64, usize)> {
        self.region.holding(body, len)
    }

    /// Frames decoded so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Body bytes of split messages' pieces decoded so far, last pieces aside
    /// ([`FrameDecoder::piece_bytes`]).
    pub fn piece_bytes(&self) -> u64 {
        self.decoder.piece_bytes()
    }

    /// Whether a split message is in assembly ([`FrameDecoder::assembling`]).
    pub fn assembling(&self) -> bool {
        self.decoder.assembling()
    }

    /// The split message in assembly, if any: its serial number and the bytes its pieces
    /// announced so far ([`FrameDecoder::assembly`]).
    pub fn assembly(&self) -> Option<(u64, u64)> {
        self.decoder.assembly()
    }

    /// Body bytes of pieces skipped unreported since the last call
    /// ([`FrameDecoder::take_skipped`]).
    pub fn take_skipped(&mut self) -> u64 {
        self.decoder.take_skipped()
    }

    /// Charges of streamed messages skipped over the limit since the last call
    /// ([`FrameDecoder::take_skipped_streamed`]).
    pub fn take_skipped_streamed(&mut self) -> u64 {
        self.decoder.take_skipped_streamed()
    }

    /// Whether a frame has started arriving and is not complete.
    pub fn mid_frame(&self) -> bool {
        self.decoder.mid_frame(self.buf.len())
    }

    /// The bytes read and not yet decoded: after a refused preface, what the peer sent
    /// instead (to say what kind of peer it is).
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Whether the peer's preface has been read and accepted.
    pub fn past_preface(&self) -> bool {
        self.decoder.past_preface()
    }

    /// The kind and call id of the frame the decoder refused, if it refused one
    /// ([`FrameDecoder::refused_frame`]).
    pub fn refused_frame(&self) -> Option<(sockrpc_protocol::frame::FrameKind, u32)> {
        self.decoder.refused_frame()
    }
}

/// Reads the socket straight into a split message's assembly ([`Direct`]): at most the rest of
/// the piece's body and the next frame's header, so that a run of pieces needs no other read.
/// What came past the body (part of that header) goes to the read buffer `spill`.
fn read_into(
    reader: std::pin::Pin<&mut (dyn tokio::io::AsyncRead + Send + Sync)>,
    cx: &mut Context<'_>,
    direct: Direct<'_>,
    spill: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    let due = *direct.remaining as usize;
    let room = (direct.held.capacity() - direct.held.len()).min(due + HEADER_LEN);
    let n = std::task::ready!(tokio_util::io::poll_read_buf(
        reader,
        cx,
        &mut (&mut *direct.held).limit(room)
    ))?;
    if n > due {
        let body = direct.held.len() - (n - due);
        spill.extend_from_slice(&direct.held[body..]);
        direct.held.truncate(body);
    }
    *direct.remaining -= n.min(due) as u32;
    Poll::Ready(Ok(n))
}

/// Lets a read buffer go: back to the recycled buffers when nothing read into it is still
/// held (its capacity is then a class's), to the allocator otherwise, when the last frame
/// sliced from it is dropped.
fn retire(mut buf: BytesMut) {
    buf.clear();
    // Empty: a shared buffer gives an empty copy, and a buffer of its own gives itself back;
    // neither copies a byte.
    recycle::give_back(Vec::from(buf));
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sockrpc_protocol::frame::encode_message;
    use sockrpc_protocol::Limits;
    use std::future::poll_fn;

    /// Reads `wire` to its end through a [`FrameReader`]; the bodies of its MESSAGE frames.
    async fn bodies(wire: Vec<u8>) -> Vec<Bytes> {
        let reader: BoxReader = Box::pin(std::io::Cursor::new(wire));
        let mut frames = FrameReader::new(reader, FrameDecoder::after_preface(Limits::default()));
        let mut bodies = Vec::new();
        // Bounded: a few MiB arrive in at most this many reads.
        for _ in 0..1000 {
            while let Some(frame) = frames.next_frame().expect("frame") {
                match frame {
                    Frame::Message { body, .. } => bodies.push(body),
                    other => panic!("not a MESSAGE: {other:?}"),
                }
            }
            frames.settle();
            if poll_fn(|cx| frames.poll_fill(cx)).await.expect("read") == 0 {
                return bodies;
            }
        }
        panic!("the wire was not read to its end");
    }

    /// Whether `small` lies in the allocation `large` is a slice of (at most `reach` bytes on).
    fn shares(large: &Bytes, small: &Bytes, reach: usize) -> bool {
        let start = large.as_ptr() as usize;
        let at = small.as_ptr() as usize;
        at >= start.saturating_sub(64) && at < start + reach
    }

    #[tokio::test]
    async fn a_small_frame_read_with_a_large_one_does_not_keep_its_allocation() {
        // A 4 MiB message, then 5,000 bytes for another call, in the same reads.
        let mut wire = BytesMut::new();
        encode_message(&mut wire, 1, true, &vec![1u8; 4 << 20]);
        encode_message(&mut wire, 3, false, &[2u8; 5000]);
        encode_message(&mut wire, 3, true, &[3u8; 64]);
        let got = bodies(wire.to_vec()).await;
        assert_eq!(got.len(), 3);
        assert_eq!(
            (got[0].len(), got[1].len(), got[2].len()),
            (4 << 20, 5000, 64)
        );
        assert!(got[1].iter().all(|b| *b == 2) && got[2].iter().all(|b| *b == 3));
        // The small ones are copies, not slices of the 4 MiB frame's allocation: each is the
        // only owner of its own (where its address lies proves nothing: the allocator may
        // place a copy right after the large buffer).
        for small in &got[1..] {
            assert!(
                small.is_unique(),
                "a small frame pins the large one's buffer"
            );
        }
    }

    #[tokio::test]
    async fn the_noted_allocation_covers_a_large_frame_however_it_grew() {
        // `realloc` may grow the buffer in place (no new pointer): the size noted must follow
        // the capacity, or nothing read with the large frame would be copied out.
        let mut wire = BytesMut::new();
        encode_message(&mut wire, 1, true, &vec![1u8; 1 << 20]);
        let reader: BoxReader = Box::pin(std::io::Cursor::new(wire.to_vec()));
        let mut frames = FrameReader::new(reader, FrameDecoder::after_preface(Limits::default()));
        // Bounded: 1 MiB arrives in at most this many reads.
        for _ in 0..1000 {
            if frames.next_frame().expect("frame").is_some() {
                break;
            }
            poll_fn(|cx| frames.poll_fill(cx)).await.expect("read");
            assert!(frames.alloc >= frames.buf.capacity(), "the noted size lags");
        }
        assert!(frames.alloc >= 1 << 20, "noted {}", frames.alloc);
    }

    #[tokio::test]
    async fn small_frames_read_together_stay_slices_of_one_chunk() {
        // The fast path: frames in a 16 KiB chunk are slices of it, not copies.
        let mut wire = BytesMut::new();
        encode_message(&mut wire, 1, true, &[1u8; 100]);
        encode_message(&mut wire, 3, true, &[2u8; 100]);
        let got = bodies(wire.to_vec()).await;
        assert_eq!(got.len(), 2);
        assert!(shares(&got[0], &got[1], CHUNK));
    }

    /// A reader that gives at most `step` bytes per read.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        step: usize,
    }

    impl tokio::io::AsyncRead for Trickle {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let n = self
                .step
                .min(self.data.len() - self.at)
                .min(buf.remaining());
            let at = self.at;
            buf.put_slice(&self.data[at..at + n]);
            self.at += n;
            Poll::Ready(Ok(()))
        }
    }

    /// A reader that gives what one write of the peer sent, at most, per read: a socket
    /// whose peer waits for an answer before it writes again. With `waits`, each write is
    /// not there yet when first asked for (`Pending`), as the answer to a call just sent.
    struct Writes {
        writes: std::collections::VecDeque<Vec<u8>>,
        waits: bool,
        asked: bool,
        reads: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    impl tokio::io::AsyncRead for Writes {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if self.waits && !std::mem::replace(&mut self.asked, true) {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.asked = false;
            self.reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Some(front) = self.writes.front_mut() {
                let n = front.len().min(buf.remaining());
                buf.put_slice(&front[..n]);
                front.drain(..n);
                if front.is_empty() {
                    self.writes.pop_front();
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn messages_of_one_size_past_a_chunk_take_one_read_each() {
        // Ten 20,000-byte messages, each its own write (a unary echo): once the first has
        // shown the size, each comes in one read. The server drops a request before it reads
        // again; a client's driver looks for the next answer while the caller still holds
        // the last (`held`), and reads it once the caller has let go.
        for held in [false, true] {
            let writes = (0..10u8)
                .map(|i| {
                    let mut wire = BytesMut::new();
                    encode_message(&mut wire, 1 + 2 * u32::from(i), true, &[i; 20_000]);
                    wire.to_vec()
                })
                .collect();
            let reads = std::sync::Arc::default();
            let reader = Writes {
                writes,
                waits: held,
                asked: false,
                reads: std::sync::Arc::clone(&reads),
            };
            let mut frames = FrameReader::new(
                Box::pin(reader),
                FrameDecoder::after_preface(Limits::default()),
            );
            let mut got = 0u8;
            let mut answer = None;
            // Bounded: ten messages in at most two reads each, and the end.
            for _ in 0..30 {
                while let Some(frame) = frames.next_frame().expect("frame") {
                    let Frame::Message { body, .. } = frame else {
                        panic!("not a MESSAGE: {frame:?}");
                    };
                    assert!(body.len() == 20_000 && body.iter().all(|b| *b == got));
                    got += 1;
                    answer = Some(body);
                }
                frames.settle();
                assert!(frames.buf.capacity() <= LARGE, "{}", frames.buf.capacity());
                if held {
                    let mut cx = Context::from_waker(std::task::Waker::noop());
                    assert!(frames.poll_fill(&mut cx).is_pending(), "not sent yet");
                }
                drop(answer.take());
                if poll_fn(|cx| frames.poll_fill(cx)).await.expect("read") == 0 {
                    break;
                }
            }
            assert_eq!(got, 10);
            // The first message in two reads (a chunk, then the rest), the other nine in one
            // each, and the read that finds the end.
            let reads = reads.load(std::sync::atomic::Ordering::Relaxed);
            assert_eq!(reads, 12, "reads for ten messages, the answer held: {held}");
        }
    }

    #[tokio::test]
    async fn pieces_are_read_into_their_assembly_not_through_the_read_buffer() {
        use sockrpc_protocol::frame::{encode_message_head_flags, FLAG_MORE};
        // Call 1's message in four pieces, call 3's whole message between the first two.
        let message: Vec<u8> = (0..3 * 65_536 + 10_240).map(|i| (i % 251) as u8).collect();
        let mut wire = BytesMut::new();
        let piece = |wire: &mut BytesMut, flags: u8, body: &[u8]| {
            encode_message_head_flags(wire, 1, flags, body.len());
            wire.extend_from_slice(body);
        };
        piece(&mut wire, FLAG_MORE, &message[..65_536]);
        encode_message(&mut wire, 3, true, &[7u8; 100]);
        piece(&mut wire, FLAG_MORE, &message[65_536..131_072]);
        piece(&mut wire, FLAG_MORE, &message[131_072..196_608]);
        piece(&mut wire, 0, &message[196_608..]);
        // Whole reads, reads that end inside a header, and reads of a few bytes.
        for step in [usize::MAX, 65_549, 7_001, 13] {
            let reader: BoxReader = Box::pin(Trickle {
                data: wire.to_vec(),
                at: 0,
                step,
            });
            let mut frames =
                FrameReader::new(reader, FrameDecoder::after_preface(Limits::default()));
            let mut got = Vec::new();
            let mut largest = 0;
            // Bounded: 206 KiB in 13-byte reads is about 16,000 reads.
            for _ in 0..20_000 {
                while let Some(frame) = frames.next_frame().expect("frame") {
                    match frame {
                        Frame::Message { call_id, body, .. } => got.push((call_id, body)),
                        other => panic!("not a MESSAGE: {other:?}"),
                    }
                }
                frames.settle();
                largest = largest.max(frames.buf.capacity());
                if poll_fn(|cx| frames.poll_fill(cx)).await.expect("read") == 0 {
                    break;
                }
            }
            assert_eq!(got.len(), 2, "step {step}");
            assert_eq!((got[0].0, &got[0].1[..]), (3, &[7u8; 100][..]));
            assert_eq!(got[1].0, 1);
            assert!(got[1].1 == message[..], "step {step}: the message differs");
            // The pieces' bodies went into the assembly: the read buffer stayed a chunk.
            assert!(
                largest <= 2 * CHUNK,
                "step {step}: read buffer grew to {largest}"
            );
        }
    }
}

#[cfg(test)]
#[path = "reader_direct_tests.rs"]
mod direct_tests;
