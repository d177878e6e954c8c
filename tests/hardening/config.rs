//! Behaviour 8: `max_concurrent_calls(0)` is a configuration mistake (a server that refuses
//! every call) and says so at once, instead of silently meaning 1 as it did before the fix.

use sockrpc::Server;

#[test]
#[should_panic(expected = "max_concurrent_calls must be at least 1")]
fn zero_max_concurrent_calls_panics_with_a_clear_message() {
    let _ = Server::builder().max_concurrent_calls(0);
}
