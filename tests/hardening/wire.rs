//! Raw-socket helpers beyond `tests/hostile/raw.rs` (included as `crate::raw`): OPENs with a
//! deadline or the STREAM flag, PINGs, and a reader that takes the server's frames one at a time,
//! so a test can answer what it sees.

use crate::raw::{frame, Closed, ServerFrame, END, GOAWAY, PING, PREFACE, SETTINGS, WINDOW};
use crate::support::BOUND;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub(crate) const STREAM: u8 = 0x02;
pub(crate) const PONG: u8 = 7;

pub(crate) const OK: u32 = 0;
pub(crate) const CANCELLED: u32 = 1;
pub(crate) const DEADLINE_EXCEEDED: u32 = 4;
pub(crate) const RESOURCE_EXHAUSTED: u32 = 8;
pub(crate) const UNAVAILABLE: u32 = 14;

pub(crate) const SLEEP_PATH: &[u8] = b"/sockrpc.test.Echo/Sleep";
pub(crate) const COLLECT_PATH: &[u8] = b"/sockrpc.test.stream.Streamer/Collect";

/// An OPEN with `timeout` (zero: none), `flags` and no metadata.
pub(crate) fn open_with(call_id: u32, path: &[u8], timeout: Duration, flags: u8) -> Vec<u8> {
    let mut body = Vec::new();
    let micros = u64::try_from(timeout.as_micros()).expect("timeout fits");
    body.extend_from_slice(&micros.to_be_bytes());
    body.extend_from_slice(&(path.len() as u16).to_be_bytes());
    body.extend_from_slice(path);
    body.extend_from_slice(&0u16.to_be_bytes());
    frame(crate::raw::OPEN, flags, call_id, &body)
}

/// A client END: its half-close (status fields ignored by the server).
pub(crate) fn half_close(call_id: u32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&0u32.to_be_bytes()); // code
    body.extend_from_slice(&0u32.to_be_bytes()); // message
    body.extend_from_slice(&0u32.to_be_bytes()); // details
    body.extend_from_slice(&0u16.to_be_bytes()); // metadata
    frame(END, 0, call_id, &body)
}

pub(crate) fn ping(payload: u64) -> Vec<u8> {
    frame(PING, 0, 0, &payload.to_be_bytes())
}

/// An END's status code.
pub(crate) fn end_code(end: &ServerFrame) -> u32 {
    assert_eq!(end.kind, END, "not an END: {end:?}");
    u32::from_be_bytes(end.body[..4].try_into().expect("END body has a code"))
}

/// A GOAWAY's (code, message).
pub(crate) fn goaway_of(frame: &ServerFrame) -> (u32, String) {
    assert_eq!(frame.kind, GOAWAY, "not a GOAWAY: {frame:?}");
    crate::raw::goaway(std::slice::from_ref(frame)).expect("a GOAWAY")
}

/// A raw client connection: our preface is sent on connect; the server's frames are read one
/// at a time, its preface checked on the way.
pub(crate) struct RawConn {
    pub(crate) stream: TcpStream,
    buf: Vec<u8>,
    preface_seen: bool,
}

impl RawConn {
    /// Connects without sending anything.
    pub(crate) async fn connect_silent(addr: SocketAddr) -> RawConn {
        let stream = tokio::time::timeout(BOUND, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        RawConn {
            stream,
            buf: Vec::new(),
            preface_seen: false,
        }
    }

    /// Connects and sends our preface.
    pub(crate) async fn connect(addr: SocketAddr) -> RawConn {
        let mut conn = RawConn::connect_silent(addr).await;
        conn.send(PREFACE).await;
        conn
    }

    pub(crate) async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// The next complete frame already buffered, if any.
    fn parse(&mut self) -> Option<ServerFrame> {
        if !self.preface_seen {
            if self.buf.len() < PREFACE.len() {
                return None;
            }
            assert_eq!(&self.buf[..8], PREFACE, "server's preface");
            self.buf.drain(..8);
            self.preface_seen = true;
        }
        if self.buf.len() < 12 {
            return None;
        }
        let length = u32::from_be_bytes(self.buf[..4].try_into().expect("4 bytes")) as usize;
        if self.buf.len() < 12 + length {
            return None;
        }
        let frame = ServerFrame {
            kind: self.buf[4],
            flags: self.buf[5],
            call_id: u32::from_be_bytes(self.buf[8..12].try_into().expect("4 bytes")),
            body: self.buf[12..12 + length].to_vec(),
        };
        self.buf.drain(..12 + length);
        if frame.kind == WINDOW && frame.call_id == 0 && frame.flags & SETTINGS != 0 {
            // The server's SETTINGS after its preface: not an answer to anything.
            return self.parse();
        }
        Some(frame)
    }

    /// Reads more; `None` when the connection ended (with how).
    async fn fill(&mut self) -> Option<Closed> {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk).await {
            Ok(0) => Some(Closed::Eof),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                None
            }
            Err(_) => Some(Closed::Error),
        }
    }

    /// Waits for the server's preface (proof the server accepted and serves this socket).
    pub(crate) async fn preface(&mut self, what: &str) {
        tokio::time::timeout(BOUND, async {
            while !self.preface_seen && self.buf.len() < PREFACE.len() {
                if let Some(closed) = self.fill().await {
                    panic!("{what}: closed before the server's preface ({closed:?})");
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{what}: no preface within {BOUND:?}"));
        if !self.preface_seen {
            assert_eq!(&self.buf[..8], PREFACE, "{what}: server's preface");
            self.buf.drain(..8);
            self.preface_seen = true;
        }
    }

    /// The server's next frame; fails the test if the connection ends or nothing comes within
    /// [`BOUND`].
    pub(crate) async fn next_frame(&mut self, what: &str) -> ServerFrame {
        tokio::time::timeout(BOUND, async {
            loop {
                if let Some(frame) = self.parse() {
                    return frame;
                }
                if let Some(closed) = self.fill().await {
                    panic!("{what}: connection ended ({closed:?}) while a frame was expected");
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{what}: no frame within {BOUND:?}"))
    }

    /// Frames of `call_id` up to and including its END (others are skipped).
    pub(crate) async fn call_until_end(&mut self, call_id: u32, what: &str) -> Vec<ServerFrame> {
        let mut frames = Vec::new();
        loop {
            let frame = self.next_frame(what).await;
            if frame.call_id != call_id {
                assert_ne!(frame.kind, GOAWAY, "{what}: GOAWAY {:?}", goaway_of(&frame));
                continue;
            }
            let end = frame.kind == END;
            frames.push(frame);
            if end {
                return frames;
            }
        }
    }

    /// Everything the server sends until it closes the connection, and how it closed; fails the
    /// test if it keeps it open past [`BOUND`].
    pub(crate) async fn until_closed(&mut self, what: &str) -> (Vec<ServerFrame>, Closed) {
        let mut frames = Vec::new();
        let outcome = tokio::time::timeout(BOUND, async {
            loop {
                while let Some(frame) = self.parse() {
                    frames.push(frame);
                }
                if let Some(closed) = self.fill().await {
                    while let Some(frame) = self.parse() {
                        frames.push(frame);
                    }
                    return closed;
                }
            }
        })
        .await;
        match outcome {
            Ok(closed) => (frames, closed),
            Err(_) => panic!("{what}: still open after {BOUND:?} (frames so far: {frames:?})"),
        }
    }

    /// The GOAWAY the server closed with, after which the connection must end.
    pub(crate) async fn goaway_then_close(&mut self, what: &str) -> (u32, String) {
        let (frames, closed) = self.until_closed(what).await;
        assert!(
            matches!(closed, Closed::Eof),
            "{what}: expected an orderly close, got {closed:?}"
        );
        let goaway = frames
            .iter()
            .find(|f| f.kind == GOAWAY)
            .unwrap_or_else(|| panic!("{what}: closed without a GOAWAY: {frames:?}"));
        goaway_of(goaway)
    }
}
