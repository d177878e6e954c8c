//! A `Watch` names its service in a string as long as the message limit lets it (4 MiB), and
//! for a name nobody reported the reporter keeps an entry under that name for as long as the
//! call lasts. Before the fix, one connection watching a thousand long names held gigabytes
//! (64 watches of 1 MiB names: 64 MiB more, held). Such a name is now refused
//! (`INVALID_ARGUMENT`) and nothing of it is kept. Measured on a server in a child process
//! (`memory.rs`'s), so the parallel tests of this binary cannot disturb the numbers.

use crate::health_watchers::{connect, watch_first};
use crate::memory::{assert_growth, child_serving, parent_runtime, CHILD_ENV, MIB};
use sockrpc::Code;
use sockrpc_health::{health_service, ServingStatus, MAX_WATCHED_NAME};
use sockrpc_tests::child::{memory_of, test_name, ChildServer};
use std::time::Duration;

/// Watches held open at once, each naming its service in [`NAME`] bytes.
const WATCHES: usize = 64;
const NAME: usize = 1 << 20;

#[test]
fn long_watched_names_are_refused_not_held() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return child_serving(|listener, shutdown| {
            let (_reporter, health) = health_service();
            sockrpc::Server::builder()
                .add_service(health)
                .serve_with_listener_and_shutdown(listener, shutdown)
        });
    }
    let child = ChildServer::spawn(
        &test_name(module_path!(), "long_watched_names_are_refused_not_held"),
        CHILD_ENV,
    );
    parent_runtime().block_on(async {
        let mut client = connect(child.addr).await;
        // Warm up: watches of short names, held and let go; a name at the bound is served.
        for i in 0..20 {
            let (status, _stream) = watch_first(&mut client, &format!("warm.S{i}"))
                .await
                .expect("a short name is watched");
            assert_eq!(status, ServingStatus::ServiceUnknown);
        }
        let (_, _at_bound) = watch_first(&mut client, &"b".repeat(MAX_WATCHED_NAME))
            .await
            .expect("a name at the bound is watched");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = memory_of(child.pid());

        let mut held = Vec::new();
        let mut refused = Vec::new();
        for i in 0..WATCHES {
            let mut name = format!("long.S{i}.");
            name.push_str(&"x".repeat(NAME - name.len()));
            match watch_first(&mut client, &name).await {
                Ok((_, stream)) => held.push(stream),
                Err(err) => refused.push(err),
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let after = memory_of(child.pid());
        assert_growth(
            "64 watches of 1 MiB names",
            before,
            after,
            24 * MIB,
            48 * MIB,
        );
        assert!(held.is_empty(), "{} long names watched", held.len());
        for err in &refused {
            assert_eq!(err.code(), Code::InvalidArgument, "{err}");
        }
        // The connection still serves.
        let (status, _) = watch_first(&mut client, "")
            .await
            .expect("the overall health is watched");
        assert_eq!(status, ServingStatus::Serving);
    });
    child.finish();
}
