//! `FrameReader`: the read side of a connection, the same for both ends.
//!
//! ```text
//!  socket ──poll_fill──▶ read buffer ──next_frame──▶ Frame ──▶ (client driver | server connection)
//!                            │ grows only as bytes arrive, in chunks sized by the frame in progress
//!                            └ after a large frame: released, so small frames do not pin it
//! ```
//!
//! Why one type: the client driver and the server connection each used to keep their own read
//! buffer and decoder, and their policies drifted (the server learned to stop pinning large
//! buffers, the client did not). Frame bodies are slices of the read buffer (no copy for the
//! common case); what keeps a slice alive keeps its buffer alive, so the buffer is sized to
//! what is being read and given up once a large frame has been taken out of it.

use crate::client::BoxReader;
use crate::codec::{DecodeError, FrameDecoder};
use bytes::BytesMut;
use sockrpc_protocol::frame::Frame;
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

/// A connection's read half, its buffer and its frame decoder.
pub struct FrameReader {
    reader: BoxReader,
    buf: BytesMut,
    decoder: FrameDecoder,
    frames: u64,
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
        FrameReader {
            reader,
            buf,
            decoder,
            frames: 0,
        }
    }

    /// Reads once into the buffer: `Ready(Ok(0))` when the peer closed.
    pub fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            let want = self
                .decoder
                .bytes_wanted(self.buf.len())
                .clamp(CHUNK, MAX_RESERVE);
            self.buf.reserve(want);
        }
        tokio_util::io::poll_read_buf(self.reader.as_mut(), cx, &mut self.buf)
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
        if self.buf.capacity() > LARGE && self.buf.len() < CHUNK {
            let mut fresh = BytesMut::with_capacity(CHUNK);
            fresh.extend_from_slice(&self.buf);
            self.buf = fresh;
        }
    }

    /// Drops every byte read and not decoded (a closing connection that no longer reads
    /// frames, only waits for the peer's FIN).
    pub fn discard(&mut self) {
        self.buf.clear();
    }

    /// Frames decoded so far.
    pub fn frames(&self) -> u64 {
        self.frames
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
}
