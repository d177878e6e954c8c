//! Reading frames: a header's body, checked field by field.

use super::{
    Frame, FrameError, FrameHeader, FrameKind, FLAG_CHARGED, FLAG_COMPRESSED, FLAG_ENCODING,
    FLAG_END_OK, FLAG_END_STREAM, FLAG_FOLD_END, FLAG_MESSAGE, FLAG_MESSAGE_COMPRESSED,
    FLAG_NOT_PROCESSED, FLAG_REISSUE, FLAG_RETIRE, FLAG_SETTINGS, FLAG_STREAM, MAX_FOLDED_MESSAGE,
    METADATA_ENTRY_OVERHEAD,
};
use crate::{Code, EncodingFields, Limits, MetadataMap, MethodPath, PathCache};
use bytes::{Buf, Bytes};
use std::time::Duration;

/// A cursor over a frame body that reports short reads as a malformed frame of `kind`.
struct Body {
    kind: FrameKind,
    buf: Bytes,
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

    /// A method path of `n` bytes: through `paths` when given, else sliced from the body.
    fn path(&mut self, n: usize, paths: Option<&mut PathCache>) -> Result<MethodPath, FrameError> {
        let path = match paths {
            Some(paths) => {
                self.need(n)?;
                let path = paths.get(&self.buf, 0..n);
                self.buf.advance(n);
                path
            }
            None => MethodPath::try_from_bytes(self.bytes(n)?),
        };
        path.map_err(|_| self.malformed("invalid method path"))
    }

    fn metadata(&mut self, limits: &Limits) -> Result<MetadataMap, FrameError> {
        let start = self.buf.remaining();
        let count = self.u16()?;
        let mut map = MetadataMap::new();
        for entry in 1..=usize::from(count) {
            let key_len = usize::from(self.u8()?);
            let key = self.bytes(key_len)?;
            let value_len = usize::from(self.u16()?);
            let value = self.bytes(value_len)?;
            // Counted as HTTP/2 counts a header list: each entry costs 32 bytes beyond its
            // key and value, so many tiny entries (each a map entry here) are bounded too.
            let charged = start - self.buf.remaining() + entry * METADATA_ENTRY_OVERHEAD;
            if charged > limits.max_metadata_size {
                return Err(self.malformed("metadata exceeds the limit"));
            }
            map.push_wire(&key, value)
                .map_err(|_| self.malformed("invalid metadata key or value"))?;
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
            FrameKind::Message => {
                return Ok(Frame::Message {
                    call_id,
                    end_stream,
                    compressed: header.flags & FLAG_COMPRESSED != 0,
                    end_ok: header.flags & FLAG_END_OK != 0,
                    body: body.buf,
                })
            }
            FrameKind::End => {
                let code = Code::from_u32(body.u32()?);
                let len = body.u32()? as usize;
                let message = body.bytes(len)?;
                let message = String::from_utf8_lossy(&message).into_owned();
                let len = body.u32()? as usize;
                let details = body.bytes(len)?;
                let trailers = body.metadata(limits)?;
                Frame::End {
                    call_id,
                    code,
                    message,
                    details,
                    trailers,
                    not_processed: header.flags & FLAG_NOT_PROCESSED != 0,
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
                let word = body.u32()?;
                Frame::Settings {
                    capabilities: word & 0xFFFF,
                    max_calls: (word >> 16) as u16,
                }
            }
            FrameKind::Window => Frame::Window {
                call_id,
                credit: body.u32()?,
            },
        };
        body.finish()?;
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
        let fits = (limits.max_metadata_size - 2) / (4 + METADATA_ENTRY_OVERHEAD);
        assert_eq!(fits, 455);
        let ok = block(fits);
        match Frame::parse(&header(ok.len()), ok, &limits) {
            Ok(Frame::Headers { metadata, .. }) => assert_eq!(metadata.len(), fits),
            other => panic!("expected HEADERS: {other:?}"),
        }
        let over = block(fits + 1);
        let err = Frame::parse(&header(over.len()), over, &limits).expect_err("one entry over");
        assert!(err.to_string().contains("metadata exceeds"), "{err}");
        // The sender checks the same count before sending.
        let mut map = MetadataMap::new();
        for i in 0..=fits {
            map.insert(format!("k{i}").as_str(), "").expect("valid");
        }
        assert!(check_metadata(&map, &limits).is_err());
    }
}
