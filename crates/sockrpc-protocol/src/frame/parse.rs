//! Reading frames: a header's body, checked field by field.

use super::{
    Frame, FrameError, FrameHeader, FrameKind, FLAG_CHARGED, FLAG_COMPRESSED, FLAG_ENCODING,
    FLAG_END_OK, FLAG_END_STREAM, FLAG_FOLD_END, FLAG_MESSAGE, FLAG_MESSAGE_COMPRESSED,
    FLAG_NOT_PROCESSED, FLAG_REISSUE, FLAG_RETIRE, FLAG_SETTINGS, FLAG_STREAM, MAX_FOLDED_MESSAGE,
    MAX_QUOTED_PATH, METADATA_ENTRY_OVERHEAD,
};
use crate::{Code, EncodingFields, Limits, MetadataMap, MethodPath, PathCache};
use bytes::{Buf, Bytes};
use std::time::Duration;

/// A cursor over a frame body that reports short reads as a malformed frame of `kind`.
struct Body {
    kind: FrameKind,
    buf: Bytes,
    /// The metadata block was over the limit: what it counts (its bytes and 32 per entry).
    /// The frame then parses as [`Frame::MetadataTooLarge`], once the rest of it is checked.
    over: Option<usize>,
    /// The method path was not valid: as text, quoted at most [`MAX_QUOTED_PATH`] bytes. The
    /// frame then parses as [`Frame::InvalidPath`], once the rest of it is checked.
    bad_path: Option<String>,
}

impl Body {
    fn need(&self, n: usize) -> Result<(), FrameError> {
        if self.buf.remaining() < n {
            return Err(self.malformed("body ends early"));
        }
        Ok(())
    }

    fn malformed(&self, reason: &'static str) -> FrameError {
        FrameError::Malformed {
            kind: self.kind,
            reason,
        }
    }

    fn u8(&mut self) -> Result<u8, FrameError> {
        self.need(1)?;
        Ok(self.buf.get_u8())
    }

    fn u16(&mut self) -> Result<u16, FrameError> {
        self.need(2)?;
        Ok(self.buf.get_u16())
    }

    fn u32(&mut self) -> Result<u32, FrameError> {
        self.need(4)?;
        Ok(self.buf.get_u32())
    }

    fn u64(&mut self) -> Result<u64, FrameError> {
        self.need(8)?;
        Ok(self.buf.get_u64())
    }

    fn bytes(&mut self, n: usize) -> Result<Bytes, FrameError> {
        self.need(n)?;
        Ok(self.buf.split_to(n))
    }

    /// A method path of `n` bytes: through `paths` when given, else sliced from the body. An
    /// invalid one is noted (`bad_path`) and stood in for: it fails its call, not the frame.
    fn path(&mut self, n: usize, paths: Option<&mut PathCache>) -> Result<MethodPath, FrameError> {
        self.need(n)?;
        let path = match paths {
            Some(paths) => paths.get(&self.buf, 0..n),
            None => MethodPath::try_from_bytes(self.buf.slice(0..n)),
        };
        let path = path.unwrap_or_else(|_| {
            let quoted = &self.buf[..n.min(MAX_QUOTED_PATH)];
            self.bad_path = Some(String::from_utf8_lossy(quoted).into_owned());
            MethodPath::from_static("/invalid/path")
        });
        self.buf.advance(n);
        Ok(path)
    }

    /// A metadata block. Past the limit, nothing more of it is kept (the map is dropped, so
    /// what it holds never exceeds the limit) but the rest is still walked and checked: a
    /// well-formed block that is merely too large fails its call only (`self.over`, read by
    /// the caller), while one whose lengths or keys are wrong is a malformed frame.
    fn metadata(&mut self, limits: &Limits) -> Result<MetadataMap, FrameError> {
        let start = self.buf.remaining();
        let count = self.u16()?;
        let mut map = MetadataMap::new();
        let mut over = false;
        for entry in 1..=usize::from(count) {
            let key_len = usize::from(self.u8()?);
            let key = self.bytes(key_len)?;
            let value_len = usize::from(self.u16()?);
            let value = self.bytes(value_len)?;
            // Counted as HTTP/2 counts a header list: each entry costs 32 bytes beyond its
            // key and value, so many tiny entries (each a map entry here) are bounded too.
            // The block's 2-byte count is not counted (`metadata_charge`).
            let charged = start - self.buf.remaining() - 2 + entry * METADATA_ENTRY_OVERHEAD;
            if !over && charged > limits.max_metadata_size {
                over = true;
                map = MetadataMap::new();
            }
            let valid = if over {
                MetadataMap::wire_entry_ok(&key, &value)
            } else {
                map.push_wire(&key, value).is_ok()
            };
            if !valid {
                return Err(self.malformed("invalid metadata key or value"));
            }
        }
        if over {
            let size = start - self.buf.remaining() - 2;
            self.over = Some(size + usize::from(count) * METADATA_ENTRY_OVERHEAD);
        }
        Ok(map)
    }

    /// The encoding fields that end an OPEN or HEADERS body when `FLAG_ENCODING` is set.
    fn encoding(&mut self, flags: u8) -> Result<Option<EncodingFields>, FrameError> {
        if flags & FLAG_ENCODING == 0 {
            return Ok(None);
        }
        EncodingFields::take(&mut self.buf)
            .map(Some)
            .ok_or_else(|| self.malformed("encoding fields short"))
    }

    fn finish(&self) -> Result<(), FrameError> {
        if self.buf.has_remaining() {
            return Err(self.malformed("trailing bytes after the body"));
        }
        Ok(())
    }
}

impl Frame {
    /// The MESSAGE frame `header` announces, with its whole `body` (a MESSAGE's body is the
    /// message as it is: nothing in it to check).
    #[inline]
    pub fn message(header: &FrameHeader, body: Bytes) -> Frame {
        Frame::Message {
            call_id: header.call_id,
            end_stream: header.flags & FLAG_END_STREAM != 0,
            compressed: header.flags & FLAG_COMPRESSED != 0,
            end_ok: header.flags & FLAG_END_OK != 0,
            body,
        }
    }

    /// Parses a body whose header has passed [`FrameHeader::parse`].
    pub fn parse(header: &FrameHeader, body: Bytes, limits: &Limits) -> Result<Frame, FrameError> {
        Self::parse_with(header, body, limits, None)
    }

    /// [`parse`](Self::parse), with an OPEN's method path looked up in (and kept in) `paths`,
    /// a connection's [`PathCache`].
    pub fn parse_with(
        header: &FrameHeader,
        body: Bytes,
        limits: &Limits,
        paths: Option<&mut PathCache>,
    ) -> Result<Frame, FrameError> {
        let call_id = header.call_id;
        let end_stream = header.flags & FLAG_END_STREAM != 0;
        let mut body = Body {
            kind: header.kind,
            buf: body,
            over: None,
            bad_path: None,
        };
        let frame = match header.kind {
            FrameKind::Open => {
                let reissue = if header.flags & FLAG_REISSUE != 0 {
                    let instance = body.u64()?;
                    let udp_call_id = body.u32()?;
                    if udp_call_id == 0 {
                        return Err(body.malformed("re-issue of UDP call id 0"));
                    }
                    Some((instance, udp_call_id))
                } else {
                    None
                };
                let micros = body.u64()?;
                let path_len = usize::from(body.u16()?);
                let path = body.path(path_len, paths)?;
                let metadata = body.metadata(limits)?;
                let encoding = body.encoding(header.flags)?;
                let message = if header.flags & FLAG_MESSAGE != 0 {
                    if !end_stream || header.flags & FLAG_STREAM != 0 {
                        return Err(body
                            .malformed("a folded request message needs END_STREAM and no STREAM"));
                    }
                    if body.buf.len() > MAX_FOLDED_MESSAGE {
                        return Err(body.malformed("folded request message over 16 KiB"));
                    }
                    Some(std::mem::take(&mut body.buf))
                } else {
                    None
                };
                Frame::Open {
                    call_id,
                    timeout: (micros != 0).then(|| Duration::from_micros(micros)),
                    path,
                    metadata,
                    end_stream,
                    streaming: header.flags & FLAG_STREAM != 0,
                    reissue,
                    encoding,
                    fold_end: header.flags & FLAG_FOLD_END != 0,
                    message_compressed: message.is_some()
                        && header.flags & FLAG_MESSAGE_COMPRESSED != 0,
                    charged: header.flags & FLAG_CHARGED != 0,
                    message,
                }
            }
            FrameKind::Headers => Frame::Headers {
                call_id,
                metadata: body.metadata(limits)?,
                encoding: body.encoding(header.flags)?,
            },
            FrameKind::Message => return Ok(Frame::message(header, body.buf)),
            FrameKind::End => {
                let code = Code::from_u32(body.u32()?);
                let len = body.u32()? as usize;
                let message = body.bytes(len)?;
                let message = String::from_utf8_lossy(&message).into_owned();
                let len = body.u32()? as usize;
                let details = body.bytes(len)?;
                let trailers = body.metadata(limits)?;
                let encoding = body.encoding(header.flags)?;
                Frame::End {
                    call_id,
                    code,
                    message,
                    details,
                    trailers,
                    not_processed: header.flags & FLAG_NOT_PROCESSED != 0,
                    encoding,
                }
            }
            FrameKind::Cancel => Frame::Cancel { call_id },
            FrameKind::Ping => Frame::Ping {
                payload: body.u64()?,
            },
            FrameKind::Pong => Frame::Pong {
                payload: body.u64()?,
            },
            FrameKind::GoAway => {
                let last_call_id = body.u32()?;
                let code = Code::from_u32(body.u32()?);
                let len = usize::from(body.u16()?);
                let message = body.bytes(len)?;
                Frame::GoAway {
                    last_call_id,
                    code,
                    message: String::from_utf8_lossy(&message).into_owned(),
                    retire: header.flags & FLAG_RETIRE != 0,
                }
            }
            FrameKind::Window if call_id == 0 && header.flags & FLAG_SETTINGS != 0 => {
                if body.buf.len() % 4 != 0 {
                    return Err(body.malformed("SETTINGS body not in words of 4 bytes"));
                }
                let word = body.u32()?;
                // The metadata limit, when the sender announced one; words after it are a
                // later version's, skipped.
                let max_metadata = match body.buf.len() {
                    0 => None,
                    _ => Some(body.u32()?).filter(|limit| *limit != 0),
                };
                body.buf.advance(body.buf.len());
                Frame::Settings {
                    capabilities: word & 0xFFFF,
                    max_calls: (word >> 16) as u16,
                    max_metadata,
                }
            }
            FrameKind::Window => Frame::Window {
                call_id,
                credit: body.u32()?,
            },
        };
        body.finish()?;
        if let Some(path) = body.bad_path {
            // Well formed, but it asks for no method there can be: only its call fails.
            return Ok(Frame::InvalidPath {
                call_id,
                flags: header.flags,
                path,
            });
        }
        if let Some(size) = body.over {
            // Well formed, but its metadata is over this side's limit: only its call fails.
            return Ok(Frame::MetadataTooLarge {
                kind: header.kind,
                call_id,
                flags: header.flags,
                size,
            });
        }
        Ok(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::check_metadata;
    use bytes::BytesMut;
    #[test]
    fn many_tiny_metadata_entries_count_32_bytes_each() {
        // 4 bytes on the wire per entry (`k` → empty), but each is a map entry in memory: the
        // limit counts HTTP/2's 32 bytes per entry too, so 16 KiB holds 455 of them, not 4,095.
        let limits = Limits::default();
        let block = |n: usize| {
            let mut b = BytesMut::new();
            b.extend_from_slice(&u16::try_from(n).expect("count").to_be_bytes());
            for _ in 0..n {
                b.extend_from_slice(&[1, b'k', 0, 0]);
            }
            b.freeze()
        };
        let header = |len: usize| FrameHeader {
            length: u32::try_from(len).expect("length"),
            kind: FrameKind::Headers,
            flags: 0,
            call_id: 1,
        };
        let fits = limits.max_metadata_size / (4 + METADATA_ENTRY_OVERHEAD);
        assert_eq!(fits, 455);
        let ok = block(fits);
        match Frame::parse(&header(ok.len()), ok, &limits) {
            Ok(Frame::Headers { metadata, .. }) => assert_eq!(metadata.len(), fits),
            other => panic!("expected HEADERS: {other:?}"),
        }
        let over = block(fits + 1);
        let size = over.len() - 2 + (fits + 1) * METADATA_ENTRY_OVERHEAD;
        match Frame::parse(&header(over.len()), over, &limits) {
            Ok(Frame::MetadataTooLarge {
                kind: FrameKind::Headers,
                call_id: 1,
                size: got,
                ..
            }) => assert_eq!(got, size),
            other => panic!("expected metadata too large: {other:?}"),
        }
        // The sender checks the same count before sending.
        let mut map = MetadataMap::new();
        for i in 0..=fits {
            map.insert_str(format!("k{i}").as_str(), "").expect("valid");
        }
        assert!(check_metadata(&map, &limits).is_err());
    }

    /// Parses the one frame `wire` holds (header and body) under `limits`.
    fn parse_wire(wire: &[u8], limits: &Limits) -> Result<Frame, FrameError> {
        let head: [u8; super::super::HEADER_LEN] = wire[..12].try_into().expect("header");
        let header = FrameHeader::parse(&head, &Limits::default()).expect("header");
        Frame::parse(&header, Bytes::copy_from_slice(&wire[12..]), limits)
    }

    #[test]
    fn a_well_formed_block_past_the_limit_fails_only_its_call() {
        use crate::frame::{encode_end, encode_open_frame, OpenFrame};
        let small = Limits::default().with_max_metadata_size(1500);
        let mut map = MetadataMap::new();
        map.insert_str("a", "x".repeat(1000).as_str())
            .expect("valid");
        map.insert_str("b", "y".repeat(1000).as_str())
            .expect("valid");
        // 2 × (1 + 1 + 2 + 1000) + 2 × 32: the count is not counted.
        let size = 2 * 1004 + 2 * METADATA_ENTRY_OVERHEAD;
        let path = MethodPath::from_static("/p.S/M");
        let mut wire = BytesMut::new();
        let open = OpenFrame {
            client_streams: true,
            charged: true,
            ..OpenFrame::new(&path, &map)
        };
        encode_open_frame(&mut wire, 7, &open);
        match parse_wire(&wire, &small) {
            Ok(Frame::MetadataTooLarge {
                kind: FrameKind::Open,
                call_id: 7,
                flags,
                size: got,
            }) => {
                assert_eq!(got, size);
                assert_eq!(
                    flags & (FLAG_STREAM | FLAG_CHARGED),
                    FLAG_STREAM | FLAG_CHARGED
                );
            }
            other => panic!("expected OPEN's metadata too large: {other:?}"),
        }
        let mut wire = BytesMut::new();
        encode_end(&mut wire, 9, Code::NotFound, "gone", b"", &map);
        assert!(matches!(
            parse_wire(&wire, &small),
            Ok(Frame::MetadataTooLarge {
                kind: FrameKind::End,
                call_id: 9,
                ..
            })
        ));
        // Under the default limit the same frames parse whole.
        assert!(matches!(
            parse_wire(&wire, &Limits::default()),
            Ok(Frame::End { .. })
        ));
    }

    #[test]
    fn a_block_past_the_limit_is_still_checked_to_its_end() {
        let small = Limits::default().with_max_metadata_size(100);
        let header = |len: usize| FrameHeader {
            length: u32::try_from(len).expect("length"),
            kind: FrameKind::Headers,
            flags: 0,
            call_id: 1,
        };
        let entry = |b: &mut BytesMut, key: &[u8], value: &[u8]| {
            b.extend_from_slice(&[u8::try_from(key.len()).expect("key")]);
            b.extend_from_slice(key);
            b.extend_from_slice(&u16::try_from(value.len()).expect("value").to_be_bytes());
            b.extend_from_slice(value);
        };
        // Past the limit with the first entry; the second breaks the key rules.
        let mut bad_key = BytesMut::new();
        bad_key.extend_from_slice(&2u16.to_be_bytes());
        entry(&mut bad_key, b"big", &[b'v'; 200]);
        entry(&mut bad_key, b"Bad Key", b"v");
        let err = Frame::parse(&header(bad_key.len()), bad_key.freeze(), &small)
            .expect_err("a bad key past the limit");
        assert!(err.to_string().contains("invalid metadata key"), "{err}");
        // A text value with a control character, past the limit.
        let mut bad_value = BytesMut::new();
        bad_value.extend_from_slice(&2u16.to_be_bytes());
        entry(&mut bad_value, b"big", &[b'v'; 200]);
        entry(&mut bad_value, b"text", b"bell\x07");
        assert!(Frame::parse(&header(bad_value.len()), bad_value.freeze(), &small).is_err());
        // A count larger than the block.
        let mut short = BytesMut::new();
        short.extend_from_slice(&3u16.to_be_bytes());
        entry(&mut short, b"big", &[b'v'; 200]);
        let err = Frame::parse(&header(short.len()), short.freeze(), &small)
            .expect_err("a count past the body");
        assert!(err.to_string().contains("body ends early"), "{err}");
        // Reserved keys and binary values past the limit are as acceptable as before it.
        let mut fine = BytesMut::new();
        fine.extend_from_slice(&3u16.to_be_bytes());
        entry(&mut fine, b"big", &[b'v'; 200]);
        entry(&mut fine, b"Sockrpc-x", b"\x00");
        entry(&mut fine, b"raw-BIN", b"\x00\xff");
        assert!(matches!(
            Frame::parse(&header(fine.len()), fine.freeze(), &small),
            Ok(Frame::MetadataTooLarge { .. })
        ));
    }
}
