//! A zip bomb costs no memory past the limit: the decoder's output never grows beyond it.
//!
//! Measured with dhat's global allocator (a counting allocator of our own would need `unsafe`,
//! which the workspace forbids): the peak heap while a 64 MiB bomb is refused under a 1 MiB
//! limit stays within the limit plus the decoders' own state.

use sockrpc::compression::{compress, decompress};
use sockrpc::{Code, CompressionEncoding};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const LIMIT: usize = 1024 * 1024;
/// zstd's decoder state (its window is bounded by the limit) and flate2's, beyond the output.
const SLACK: usize = 3 * 1024 * 1024;

#[test]
fn a_zip_bomb_allocates_nothing_past_the_limit() {
    // Bombs made before the profiler starts: 64 MiB of zeros each, small on the wire.
    let zeros = vec![0u8; 64 * 1024 * 1024];
    let bombs: Vec<(CompressionEncoding, bytes::Bytes)> = [
        CompressionEncoding::Gzip,
        CompressionEncoding::Zstd,
        CompressionEncoding::Deflate,
    ]
    .into_iter()
    .map(|e| (e, compress(e, &zeros).expect("compress")))
    .collect();
    drop(zeros);
    let _profiler = dhat::Profiler::builder().testing().build();
    for (encoding, bomb) in &bombs {
        let before = dhat::HeapStats::get();
        let status = decompress(*encoding, bomb, LIMIT).expect_err("refused");
        assert_eq!(
            status.code(),
            Code::ResourceExhausted,
            "{encoding}: {status}"
        );
        let after = dhat::HeapStats::get();
        let peak_growth = after.max_bytes.saturating_sub(before.curr_bytes);
        println!(
            "{encoding}: {} bytes on the wire, peak heap growth {peak_growth} bytes",
            bomb.len()
        );
        assert!(
            peak_growth <= LIMIT + SLACK,
            "{encoding}: peak heap grew {peak_growth} bytes for a {LIMIT}-byte limit"
        );
    }
}
