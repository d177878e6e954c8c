//! The metadata block of OPEN, HEADERS and END (and of UDP datagrams): its size, its checks
//! and its encoding, apart from the frame encoders (`encode.rs`) because both ends check a
//! block against limits before any frame is built, and the datagram format shares it.

use crate::{Limits, MetadataMap};
use bytes::{BufMut, BytesMut};

/// Bytes a metadata block takes on the wire.
///
/// ```text
/// +-------------+---------------------------------------------------+
/// | count: u16  | count × ( key_len: u8 | key | val_len: u16 | val ) |
/// +-------------+---------------------------------------------------+
/// ```
pub fn metadata_len(metadata: &MetadataMap) -> usize {
    2 + metadata
        .iter()
        .map(|(k, v)| 1 + k.len() + 2 + v.len())
        .sum::<usize>()
}

/// What each metadata entry counts against [`Limits::max_metadata_size`] beyond its key and
/// value bytes on the wire: HTTP/2's 32 bytes per header-list entry (RFC 9113, 6.5.2), which
/// gRPC's header-list limit counts too. It bounds the number of entries, each of which costs
/// a map entry in memory, not only their bytes.
pub const METADATA_ENTRY_OVERHEAD: usize = 32;

/// What `metadata` counts against [`Limits::max_metadata_size`]: each entry's key, value and
/// their 3 length bytes, plus [`METADATA_ENTRY_OVERHEAD`]. The block's 2-byte count is not
/// counted, so an empty map counts 0, as an empty header list does in HTTP/2 (grpc-go counts
/// `key + value + 32` per entry; the 3 length bytes are this format's). Sender and receiver
/// (`parse.rs`) count the same.
pub fn metadata_charge(metadata: &MetadataMap) -> usize {
    metadata
        .iter()
        .map(|(k, v)| 1 + k.len() + 2 + v.len() + METADATA_ENTRY_OVERHEAD)
        .sum::<usize>()
}

/// What each heap allocation costs beyond the bytes asked for: the allocator's own bookkeeping
/// and rounding (glibc's smallest chunk is 32 bytes, for a request of 1 to 24).
pub const ALLOCATION_OVERHEAD: usize = 32;

/// What a parsed `metadata` holds in memory, for a receiver's budgets of what it holds: the
/// table of entries (by its capacity, which may be up to twice its length), each key's own
/// allocation and each value's bytes. Entries of a one-byte key and no value count about 100
/// bytes apiece, far more than the 4 they take on the wire or the 36 [`metadata_charge`]
/// counts them. An empty map counts 0, looked at in one comparison.
pub fn metadata_held(metadata: &MetadataMap) -> usize {
    let Some(table) = metadata.table_bytes() else {
        return 0;
    };
    table
        + metadata
            .entries()
            .iter()
            .map(|(key, value)| key.capacity() + ALLOCATION_OVERHEAD + value.bytes().len())
            .sum::<usize>()
}

/// Checks that `metadata` fits the wire format and `limits`.
pub fn check_metadata(metadata: &MetadataMap, limits: &Limits) -> Result<(), String> {
    let len = metadata_charge(metadata);
    if len > limits.max_metadata_size {
        return Err(format!(
            "metadata of {len} bytes ({} entries, counted with {METADATA_ENTRY_OVERHEAD} bytes each beyond their keys and values, as HTTP/2 counts) exceeds the limit of {}",
            metadata.len(),
            limits.max_metadata_size
        ));
    }
    if metadata.len() > usize::from(u16::MAX)
        || metadata
            .iter()
            .any(|(_, v)| v.len() > usize::from(u16::MAX))
    {
        return Err("metadata has too many entries or a value over 65535 bytes".into());
    }
    Ok(())
}

/// Checks that `path` fits an OPEN frame's 16-bit length (a longer one would be cut on the wire
/// and read as another call's bytes): the client refuses such a call, `INVALID_ARGUMENT`.
pub fn check_path(path: &crate::MethodPath) -> Result<(), String> {
    let len = path.as_bytes().len();
    if len > usize::from(u16::MAX) {
        return Err(format!(
            "a method path of {len} bytes: the wire format's limit is 65535"
        ));
    }
    Ok(())
}

/// Appends a metadata block (the caller has checked it with [`check_metadata`]); the UDP
/// datagram format uses the same block.
pub(crate) fn put_metadata(dst: &mut BytesMut, metadata: &MetadataMap) {
    dst.put_u16(metadata.len() as u16);
    for (key, value) in metadata.iter() {
        dst.put_u8(key.len() as u8);
        dst.put_slice(key.as_bytes());
        dst.put_u16(value.len() as u16);
        dst.put_slice(value);
    }
}
