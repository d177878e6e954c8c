//! The bodies of sockrpc's fuzz targets, in one place for two runners.
//!
//! `fuzz/` (cargo-fuzz, nightly, outside the workspace) calls these functions from its
//! `fuzz_target!`s, and the `fuzz_corpus` test of `sockrpc-tests` replays every input committed
//! under `fuzz/corpus/<target>/` through the same functions on stable `cargo test`. Keeping the
//! logic here, not in the targets, means what CI checks is exactly what was fuzzed.
//!
//! Each target takes raw fuzzer bytes, never panics on any input unless it found a bug, and
//! checks a property beyond "no panic" (round trips, agreement between two parsers, chunking
//! independence). The first input bytes choose limits and chunkings; each module documents its
//! input layout and has an `input` function that builds one (used by [`seeds`]).
//!
//! | target | what it exercises |
//! |--------|-------------------|
//! | [`frame_decoder`] | the transport's incremental `FrameDecoder`, arbitrary chunking, small limits |
//! | [`metadata`] | the metadata block parser (HEADERS body) against the encoder and the UDP parser |
//! | [`datagram`] | the UDP datagram header, REQUEST and REPLY parsers |
//! | [`server_connection`] | a whole server connection over an in-memory duplex |

pub mod datagram;
pub mod frame_decoder;
pub mod metadata;
pub mod seeds;
pub mod server_connection;

mod choose;
mod reserved;

/// A fuzz target's body: takes the raw input, panics only on a bug.
pub type Target = fn(&[u8]);

/// Every target by its cargo-fuzz name (also the name of its corpus directory).
pub const TARGETS: &[(&str, Target)] = &[
    ("frame_decoder", frame_decoder::run),
    ("metadata", metadata::run),
    ("datagram", datagram::run),
    ("server_connection", server_connection::run),
];
