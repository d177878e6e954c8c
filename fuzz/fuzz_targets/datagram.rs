//! cargo-fuzz target `datagram`: the body is `sockrpc_fuzz_targets::datagram::run` (documented there),
//! run under the heap bound of `sockrpc_fuzz::within_bound`.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[global_allocator]
static HEAP: sockrpc_fuzz::Meter = sockrpc_fuzz::Meter;

fuzz_target!(|data: &[u8]| {
    sockrpc_fuzz::within_bound(data, sockrpc_fuzz_targets::datagram::run);
});
