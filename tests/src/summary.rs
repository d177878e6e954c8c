//! Counting a stream of chunks into a `Summary`: what the test servers' `Collect` methods do.
//!
//! Several test binaries serve `sockrpc.test.stream.Streamer` with a service of their own (each
//! watches something else); the counting itself is the same, so it lives here once.

use crate::stream::{Chunk, Summary};
use sockrpc::{Status, Streaming};

/// Reads `chunks` to their end, counting each into the summary (how many, their payload bytes,
/// the sum of their sequence numbers) and calling `each` on it first; the stream's error ends
/// it early.
pub async fn summarize(
    mut chunks: Streaming<Chunk>,
    mut each: impl FnMut(&Chunk),
) -> Result<Summary, Status> {
    let mut summary = Summary::default();
    while let Some(chunk) = chunks.message().await? {
        each(&chunk);
        summary.count += 1;
        summary.bytes += chunk.payload.len() as u64;
        summary.seq_sum += chunk.seq;
    }
    Ok(summary)
}
