//! cargo-fuzz target `server_connection`: the body is
//! `sockrpc_fuzz_targets::server_connection::run` (documented there). No heap bound: a runtime,
//! a duplex and a server are built per input.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sockrpc_fuzz_targets::server_connection::run(data);
});
