//! Small limits picked by input bits: small enough that fuzz inputs of a few KiB cross them.

use sockrpc::Limits;

/// Message limits a two-bit selector picks from.
const MESSAGE_LIMITS: [usize; 4] = [1, 16, 100, 1024];
/// Metadata limits a two-bit selector picks from. None is below 2, the size of an empty block
/// (the smallest block there is; a limit below it would refuse every OPEN).
const METADATA_LIMITS: [usize; 4] = [2, 16, 100, 16 * 1024];

/// Limits from two 2-bit selectors (only the low two bits of each are used).
pub(crate) fn limits(message: u8, metadata: u8) -> Limits {
    Limits::default()
        .with_max_message_size(MESSAGE_LIMITS[usize::from(message & 3)])
        .with_max_metadata_size(METADATA_LIMITS[usize::from(metadata & 3)])
}
