//! The balanced channel's deadline: a `grpc-timeout` entry bounds the wait for an endpoint as a
//! timeout set on the request does. And the size of the future it boxes per call.

use super::BalanceBuilder;
use crate::discovery::Discovery;
use crate::{Body, Call};
use bytes::Bytes;
use sockrpc_protocol::{Code, MethodPath, Request, GRPC_TIMEOUT_KEY};
use std::time::Duration;
use tokio::time::Instant;
use tower_service::Service;

fn call() -> Call {
    Call::new(
        MethodPath::from_static("/shop.Catalog/Get"),
        Request::new(Body::once(Bytes::from_static(b"req"))),
    )
}

#[tokio::test(start_paused = true)]
async fn a_grpc_timeout_entry_bounds_the_wait_for_an_endpoint() {
    // No endpoint ever: the call waits for one until its deadline, not the 10 s default.
    let (_changes, discovery) = Discovery::channel();
    let mut balanced = BalanceBuilder::default().build(discovery);
    let mut asked = call();
    asked
        .request_mut()
        .metadata_mut()
        .insert_str(GRPC_TIMEOUT_KEY, "150m")
        .expect("ascii");
    let started = Instant::now();
    let err = balanced.call(asked).await.expect_err("no endpoint");
    // Its deadline ended the wait: DEADLINE_EXCEEDED, as grpc-go's call blocked on a
    // resolver that has not answered.
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert_eq!(started.elapsed(), Duration::from_millis(150));

    // The same with the timeout set, and the default wait with neither (which ends in
    // UNAVAILABLE: no deadline passed).
    let mut set = call();
    set.request_mut().set_timeout(Duration::from_millis(150));
    let started = Instant::now();
    let err = balanced.call(set).await.expect_err("no endpoint");
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert_eq!(started.elapsed(), Duration::from_millis(150));
    let started = Instant::now();
    let err = balanced.call(call()).await.expect_err("no endpoint");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_eq!(started.elapsed(), Duration::from_secs(10));
}

/// The size of the future `f` returns, found without calling it.
fn returned_size<F, A, B, R>(_: F) -> usize
where
    F: FnOnce(A, B) -> R,
{
    std::mem::size_of::<R>()
}

#[test]
fn a_balanced_calls_future_fits_the_allocators_fast_path() {
    // Boxed once per call. glibc serves requests of up to 1,032 bytes from its per-thread
    // cache; a larger box takes `malloc`'s slow path and `free`'s (it was 1,312 bytes).
    let size = returned_size(super::channel::Balanced::run);
    assert!(size <= 1032, "Balanced::run's future is {size} bytes");
}
