//! What a receiver leaves out of a metadata block: entries whose key is reserved.
//!
//! Why: keys starting with `sockrpc-` belong to the framework, and a receiver drops them from
//! what a peer sends (`docs/PROTOCOL.md`), so a block that parses re-encodes without them. The
//! targets' length properties subtract these bytes rather than give the property up.

use sockrpc::protocol::RESERVED_PREFIX;

/// Bytes of the reserved entries in `block`, a metadata block (`count: u16`, then entries) that
/// the parser accepted; trailing bytes after the block are ignored.
pub(crate) fn reserved_entry_bytes(block: &[u8]) -> usize {
    let u16_at = |at: usize| usize::from(u16::from_be_bytes([block[at], block[at + 1]]));
    let count = u16_at(0);
    let mut at = 2;
    let mut dropped = 0;
    for _ in 0..count {
        let key_len = usize::from(block[at]);
        let key = &block[at + 1..at + 1 + key_len];
        let entry = 1 + key_len + 2 + u16_at(at + 1 + key_len);
        if key
            .to_ascii_lowercase()
            .starts_with(RESERVED_PREFIX.as_bytes())
        {
            dropped += entry;
        }
        at += entry;
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_reserved_entries_only_whatever_their_case() {
        let mut block = vec![0, 3];
        for (key, value) in [
            (&b"a"[..], &b"xy"[..]),
            (b"SockRPC-x", b""),
            (b"sockrpc-y", b"z"),
        ] {
            block.push(key.len() as u8);
            block.extend_from_slice(key);
            block.extend_from_slice(&(value.len() as u16).to_be_bytes());
            block.extend_from_slice(value);
        }
        assert_eq!(reserved_entry_bytes(&block), (1 + 9 + 2) + (1 + 9 + 2 + 1));
        assert_eq!(reserved_entry_bytes(&[0, 0]), 0);
    }
}
