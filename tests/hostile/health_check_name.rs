//! `Check` for an unknown service answers `NOT_FOUND` naming the service, and the name is the
//! client's, as long as the message limit lets it be (4 MiB). It was quoted whole, `Debug`
//! escaped: a name of 4 MiB of control characters (each escaped as `\u{1}`, 5 bytes) made a
//! 20 MiB status message in the server (cut to 16 KiB only when the END was written), for every
//! such call (peak RSS +20 MiB over four calls here). The name is now quoted in at most 256
//! bytes (escaped, under 2 KiB). Measured as the peak resident size (VmHWM) of a server in a
//! child process (`memory.rs`'s).

use crate::health_watchers::connect;
use crate::memory::{assert_growth, child_serving, parent_runtime, peak_of, CHILD_ENV, MIB};
use crate::support::bounded;
use sockrpc::{Code, Request};
use sockrpc_health::health_service;
use sockrpc_health::pb::HealthCheckRequest;
use sockrpc_tests::child::{test_name, ChildServer};

/// Calls made, one after another, each naming its service in [`NAME`] bytes.
const CALLS: usize = 4;
const NAME: usize = (4 << 20) - 1024;

#[test]
fn long_unknown_names_are_not_quoted_whole() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return child_serving(|listener, shutdown| {
            let (_reporter, health) = health_service();
            sockrpc::Server::builder()
                .add_service(health)
                .serve_with_listener_and_shutdown(listener, shutdown)
        });
    }
    let child = ChildServer::spawn(
        &test_name(module_path!(), "long_unknown_names_are_not_quoted_whole"),
        CHILD_ENV,
    );
    parent_runtime().block_on(async {
        let mut client = connect(child.addr).await;
        let ask = |service: String| Request::new(HealthCheckRequest { service });
        // Warm up with a plain name of the same length: the request's own buffers.
        let err = bounded("check", client.check(ask("w".repeat(NAME))))
            .await
            .expect_err("an unknown service");
        assert_eq!(err.code(), Code::NotFound);
        let before = peak_of(child.pid());
        for _ in 0..CALLS {
            let err = bounded("check", client.check(ask("\u{1}".repeat(NAME))))
                .await
                .expect_err("an unknown service");
            assert_eq!(err.code(), Code::NotFound, "{err}");
        }
        let after = peak_of(child.pid());
        assert_growth(
            "Check of 4 MiB names of control characters",
            before,
            after,
            12 * MIB,
            64 * MIB,
        );
        let err = bounded("check", client.check(ask("\u{1}".repeat(NAME))))
            .await
            .expect_err("an unknown service");
        assert!(err.message().len() < 2048, "{} bytes", err.message().len());
    });
    child.finish();
}
