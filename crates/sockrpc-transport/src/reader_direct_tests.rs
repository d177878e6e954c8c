//! Pieces read straight into their assembly (`State::Into`, `read_into`), attacked with every
//! piece size around the thresholds and reads of every size: what comes out must be what a
//! decoder fed the whole wire at once gives, frame for frame.

use super::*;
use sockrpc_protocol::frame::{
    encode_message, encode_message_head_flags, encode_ping, FLAG_COMPRESSED, FLAG_END_STREAM,
    FLAG_MORE, MIN_PIECE,
};
use sockrpc_protocol::Limits;
use std::future::poll_fn;
use tokio_util::codec::Decoder;

/// A reader giving reads of the sizes `steps` cycles through (its last read short).
struct Steps {
    data: Vec<u8>,
    at: usize,
    steps: Vec<usize>,
    turn: usize,
}

impl tokio::io::AsyncRead for Steps {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let step = self.steps[self.turn % self.steps.len()];
        self.turn += 1;
        let n = step.min(self.data.len() - self.at).min(buf.remaining());
        let at = self.at;
        buf.put_slice(&self.data[at..at + n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[(self.next() % from.len() as u64) as usize]
    }
}

const BEFORE_LAST: [usize; 9] = [
    MIN_PIECE,
    MIN_PIECE + 1,
    MIN_PIECE + 13,
    2 * MIN_PIECE - 1,
    64 * 1024,
    200_000,
    256 * 1024 - 1,
    256 * 1024,
    256 * 1024 + 1,
];
const LAST: [usize; 12] = [
    0,
    1,
    15,
    16,
    17,
    MIN_PIECE - 1,
    MIN_PIECE,
    MIN_PIECE + 16,
    64 * 1024,
    256 * 1024,
    256 * 1024 + 1,
    300_000,
];

/// A wire of split messages (one call at a time), with whole messages of other calls and
/// PINGs between pieces.
fn wire(rng: &mut Rng, messages: usize) -> Vec<u8> {
    let mut wire = BytesMut::new();
    let mut id = 1u32;
    for m in 0..messages {
        id += 2;
        let call = id;
        let compressed = if rng.next() % 3 == 0 {
            FLAG_COMPRESSED
        } else {
            0
        };
        let pieces = 1 + rng.next() % 4;
        for p in 0..pieces {
            let last = p + 1 == pieces;
            let len = if last {
                rng.pick(&LAST)
            } else {
                rng.pick(&BEFORE_LAST)
            };
            let flags = if last {
                compressed | FLAG_END_STREAM
            } else {
                compressed | FLAG_MORE
            };
            encode_message_head_flags(&mut wire, call, flags, len);
            let fill = (m as u8).wrapping_mul(31).wrapping_add(p as u8);
            wire.extend((0..len).map(|i| fill.wrapping_add((i % 251) as u8)));
            match rng.next() % 4 {
                0 => {
                    id += 2;
                    let len = rng.pick(&[0usize, 5, 16, 17, 20_000, 70_000]);
                    encode_message(&mut wire, id, true, &vec![m as u8; len]);
                }
                1 => encode_ping(&mut wire, rng.next()),
                _ => {}
            }
        }
    }
    wire.to_vec()
}

/// Every frame `wire` holds, decoded with `limits` in one go (no piece read straight into
/// its assembly: each frame is whole in the buffer).
fn at_once(wire: &[u8], limits: Limits) -> Vec<Frame> {
    let mut decoder = FrameDecoder::after_preface(limits);
    let mut buf = BytesMut::from(wire);
    let mut out = Vec::new();
    while let Some(frame) = decoder.decode(&mut buf).expect("frame") {
        out.push(frame);
    }
    assert!(buf.is_empty());
    out
}

/// Every frame `wire` holds, read through a [`FrameReader`] in reads of `steps`.
async fn read(wire: &[u8], limits: Limits, steps: Vec<usize>) -> Vec<Frame> {
    let reader: BoxReader = Box::pin(Steps {
        data: wire.to_vec(),
        at: 0,
        steps,
        turn: 0,
    });
    let mut frames = FrameReader::new(reader, FrameDecoder::after_preface(limits));
    let mut out = Vec::new();
    // Bounded: the wire is read in at most this many reads.
    for _ in 0..2_000_000 {
        while let Some(frame) = frames.next_frame().expect("frame") {
            out.push(frame);
        }
        frames.settle();
        if poll_fn(|cx| frames.poll_fill(cx)).await.expect("read") == 0 {
            assert!(!frames.mid_frame(), "the wire ended mid-frame");
            return out;
        }
    }
    panic!("the wire was not read to its end");
}

#[tokio::test]
async fn pieces_of_every_size_read_in_reads_of_every_size_come_out_as_read_at_once() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for round in 0..12 {
        let wire = wire(&mut rng, 6);
        // Some rounds with a limit that skips the larger messages part way.
        let limits = if round % 3 == 2 {
            Limits::default().with_max_message_size(400_000)
        } else {
            Limits::default()
        };
        let want = at_once(&wire, limits);
        let step_sets: Vec<Vec<usize>> = vec![
            vec![usize::MAX],
            vec![13],
            vec![16],
            vec![17],
            vec![4096, 1, 15],
            vec![MIN_PIECE + 16, 3],
            vec![64 * 1024 + 16],
            (0..64)
                .map(|_| 1 + (rng.next() % 70_000) as usize)
                .collect(),
        ];
        for steps in step_sets {
            let got = read(&wire, limits, steps.clone()).await;
            assert_eq!(
                got.len(),
                want.len(),
                "round {round}, steps {:?}",
                &steps[..1]
            );
            for (i, (got, want)) in got.iter().zip(&want).enumerate() {
                assert!(
                    got == want,
                    "round {round}, steps {:?}: frame {i} differs",
                    &steps[..1]
                );
            }
        }
    }
}

/// A closing server reads and drops what its client still sends (`server/linger.rs`:
/// `poll_fill` then `discard`, no decoding) until the client's FIN. When it began to linger
/// mid-piece, the piece's body went on into the assembly; once it was all there, a read into
/// the full assembly read nothing and looked like the FIN (the last piece), or read 16 bytes
/// at a time (a piece before the last).
#[tokio::test]
async fn a_reader_that_only_discards_after_a_piece_reads_to_the_peers_end() {
    for last in [true, false] {
        let mut wire = BytesMut::new();
        encode_message_head_flags(&mut wire, 1, FLAG_MORE, 64 * 1024);
        wire.extend_from_slice(&[1u8; 64 * 1024]);
        // The piece the server is reading when it starts to linger: the last one, or another
        // before it.
        let flags = if last { FLAG_END_STREAM } else { FLAG_MORE };
        encode_message_head_flags(&mut wire, 1, flags, 64 * 1024);
        let started = wire.len() + 100;
        wire.extend_from_slice(&[2u8; 64 * 1024]);
        // What the client sends on: 1 MiB of other calls' messages.
        for id in 0..16 {
            encode_message(&mut wire, 3 + 2 * id, true, &[3u8; 64 * 1024]);
        }
        let total = wire.len();
        // No read crosses `started`: the first reader's end.
        let reader: BoxReader = Box::pin(tokio::io::AsyncReadExt::chain(
            std::io::Cursor::new(wire[..started].to_vec()),
            std::io::Cursor::new(wire[started..].to_vec()),
        ));
        let mut frames = FrameReader::new(reader, FrameDecoder::after_preface(Limits::default()));
        let mut read = 0;
        // The first piece whole and 100 bytes of the second: its body is due straight into
        // the assembly.
        for _ in 0..100 {
            read += poll_fn(|cx| frames.poll_fill(cx)).await.expect("read");
            assert!(frames.next_frame().expect("frame").is_none());
            if read >= started {
                break;
            }
        }
        assert!(
            frames.decoder.direct().is_some(),
            "not reading into the assembly"
        );
        // Lingering: read and drop, as `linger.rs` does.
        let mut reads = 0;
        loop {
            let n = poll_fn(|cx| frames.poll_fill(cx)).await.expect("read");
            if n == 0 {
                break;
            }
            read += n;
            reads += 1;
            frames.discard();
            assert!(
                reads < 10_000,
                "last {last}: {reads} reads, {read} of {total} bytes"
            );
        }
        assert_eq!(
            read, total,
            "last {last}: a read of nothing before the peer's end"
        );
        assert!(
            reads < 1_000,
            "last {last}: {reads} reads for {total} bytes"
        );
    }
}
