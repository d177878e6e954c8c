//! Message compression as the wire names it: encodings, sets of them, and the encoding fields
//! that OPEN and HEADERS carry when their `FLAG_ENCODING` (0x08) is set.
//!
//! Why fields of their own: each side must learn what the other can read *before* it sends a
//! compressed body, and a peer of an older version ignores unknown flag bits on MESSAGE. So a
//! side only ever compresses toward a peer that named the encoding in its accept set, and a
//! peer that sent no encoding fields is never sent any (nor a compressed message).
//!
//! ```text
//! encoding fields (at the end of an OPEN or HEADERS body, after the metadata block)
//! +---------+--------------+----------+-----------------------------+
//! | len: u8 | accept: u16  | send: u8 | len − 3 bytes: later fields |
//! +---------+--------------+----------+-----------------------------+
//!  len ≥ 3 counts the bytes after itself; a reader skips what it does not know
//!  accept: bit 0x0001 gzip, 0x0002 deflate, 0x0004 zstd (other bits: ignored)
//!  send:   0 identity, 1 gzip, 2 deflate, 3 zstd: what this side's COMPRESSED messages use
//! ```
//!
//! The algorithms themselves live in the service layer (`sockrpc-service`'s `compression`
//! module); this crate only names them.

use bytes::{Buf, BufMut, BytesMut};
use std::fmt;

/// A compression algorithm a message may be sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompressionEncoding {
    /// gzip (RFC 1952).
    Gzip,
    /// deflate: zlib-wrapped DEFLATE (RFC 1950), as gRPC's `deflate`.
    Deflate,
    /// Zstandard (RFC 8878).
    Zstd,
}

impl CompressionEncoding {
    /// Every encoding the wire can name.
    pub const ALL: [CompressionEncoding; 3] = [
        CompressionEncoding::Gzip,
        CompressionEncoding::Deflate,
        CompressionEncoding::Zstd,
    ];

    /// The id in the `send` field (1, 2, 3).
    pub fn wire_id(self) -> u8 {
        match self {
            CompressionEncoding::Gzip => 1,
            CompressionEncoding::Deflate => 2,
            CompressionEncoding::Zstd => 3,
        }
    }

    /// The encoding a `send` id names; `None` for 0 (identity) and ids this version does not
    /// know.
    pub fn from_wire_id(id: u8) -> Option<CompressionEncoding> {
        match id {
            1 => Some(CompressionEncoding::Gzip),
            2 => Some(CompressionEncoding::Deflate),
            3 => Some(CompressionEncoding::Zstd),
            _ => None,
        }
    }

    /// The name gRPC gives it (`gzip`, `deflate`, `zstd`).
    pub fn as_str(self) -> &'static str {
        match self {
            CompressionEncoding::Gzip => "gzip",
            CompressionEncoding::Deflate => "deflate",
            CompressionEncoding::Zstd => "zstd",
        }
    }

    fn bit(self) -> u16 {
        1 << (self.wire_id() - 1)
    }
}

impl fmt::Display for CompressionEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The mark [`Response::disable_compression`](crate::Response::disable_compression) leaves in
/// a response's extensions: a server whose settings would compress the answer's single message
/// sends it plain (its HEADERS still name the encoding, as tonic's header does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompressionDisabled;

/// A set of encodings: what a side accepts. Empty means identity only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct EncodingSet(u16);

impl EncodingSet {
    /// No encoding (identity only).
    pub const EMPTY: EncodingSet = EncodingSet(0);

    /// The set of the wire's `accept` bits; bits of encodings this version does not know are
    /// dropped (it never sends those).
    pub fn from_bits(bits: u16) -> EncodingSet {
        EncodingSet(bits & 0x0007)
    }

    /// The wire's `accept` bits.
    pub fn bits(self) -> u16 {
        self.0
    }

    /// This set with `encoding` added.
    #[must_use]
    pub fn with(self, encoding: CompressionEncoding) -> EncodingSet {
        EncodingSet(self.0 | encoding.bit())
    }

    /// This set without `encoding`.
    #[must_use]
    pub fn without(self, encoding: CompressionEncoding) -> EncodingSet {
        EncodingSet(self.0 & !encoding.bit())
    }

    /// Whether `encoding` is in the set.
    pub fn contains(self, encoding: CompressionEncoding) -> bool {
        self.0 & encoding.bit() != 0
    }

    /// Whether the set is empty (identity only).
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The encodings in the set.
    pub fn iter(self) -> impl Iterator<Item = CompressionEncoding> {
        CompressionEncoding::ALL
            .into_iter()
            .filter(move |e| self.contains(*e))
    }
}

impl fmt::Display for EncodingSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("identity only");
        }
        let mut first = true;
        for encoding in self.iter() {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            f.write_str(encoding.as_str())?;
        }
        Ok(())
    }
}

/// What one side of a call says about compression (OPEN: the client; HEADERS: the server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct EncodingFields {
    /// The encodings this side can read.
    pub accept: EncodingSet,
    /// The wire id of the encoding this side's COMPRESSED messages use (0: it sends none). Kept
    /// raw so that an id this version does not know is refused by name, not misread.
    pub send: u8,
}

/// Bytes the encoding fields take on the wire (this version writes no later fields).
pub const ENCODING_FIELDS_LEN: usize = 4;

impl EncodingFields {
    /// Fields saying: reads `accept`, sends with `send`.
    pub fn new(accept: EncodingSet, send: Option<CompressionEncoding>) -> EncodingFields {
        EncodingFields {
            accept,
            send: send.map_or(0, CompressionEncoding::wire_id),
        }
    }

    /// The encoding this side's compressed messages use: `Ok(None)` when it named none,
    /// `Err(id)` when it named one this version does not know.
    pub fn send_encoding(&self) -> Result<Option<CompressionEncoding>, u8> {
        match self.send {
            0 => Ok(None),
            id => CompressionEncoding::from_wire_id(id).map(Some).ok_or(id),
        }
    }

    /// Appends the fields (see the module's diagram).
    pub fn put(&self, dst: &mut BytesMut) {
        dst.put_u8((ENCODING_FIELDS_LEN - 1) as u8);
        dst.put_u16(self.accept.bits());
        dst.put_u8(self.send);
    }

    /// Reads the fields from the rest of a body; `None` when they are short.
    pub(crate) fn take(buf: &mut bytes::Bytes) -> Option<EncodingFields> {
        if buf.remaining() < 1 {
            return None;
        }
        let len = usize::from(buf.get_u8());
        if len < 3 || buf.remaining() < len {
            return None;
        }
        let accept = EncodingSet::from_bits(buf.get_u16());
        let send = buf.get_u8();
        // Later fields: skipped by this version.
        buf.advance(len - 3);
        Some(EncodingFields { accept, send })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_and_ids_round_trip() {
        let set = EncodingSet::EMPTY
            .with(CompressionEncoding::Gzip)
            .with(CompressionEncoding::Zstd);
        assert!(set.contains(CompressionEncoding::Gzip));
        assert!(!set.contains(CompressionEncoding::Deflate));
        assert_eq!(set.to_string(), "gzip, zstd");
        assert_eq!(EncodingSet::from_bits(0xfff8), EncodingSet::EMPTY);
        for e in CompressionEncoding::ALL {
            assert_eq!(CompressionEncoding::from_wire_id(e.wire_id()), Some(e));
        }
        let fields = EncodingFields::new(set, Some(CompressionEncoding::Deflate));
        let mut buf = BytesMut::new();
        fields.put(&mut buf);
        // A later version's extra byte is skipped.
        buf[0] += 1;
        buf.put_u8(0xaa);
        let mut bytes = buf.freeze();
        assert_eq!(EncodingFields::take(&mut bytes), Some(fields));
        assert!(bytes.is_empty());
        assert_eq!(
            EncodingFields {
                accept: set,
                send: 9
            }
            .send_encoding(),
            Err(9)
        );
    }
}
