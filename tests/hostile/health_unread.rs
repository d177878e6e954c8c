//! `Watch` streams a client opens and never reads while the application's report of the service
//! flaps 4,000 times. Each change would be a message on every watch, but a watch holds only the
//! latest status (a `tokio::sync::watch` channel), and the server takes it only when the
//! stream may send (its window: about a thousand 2-byte answers, each charged 64 bytes more):
//! what a client that never reads costs the server is a window per stream at most, never a
//! message per change. Meanwhile `Check` on another connection is answered, and once the
//! flapping stops each watch, read to the end of what was sent, comes to the last status. A
//! probe that found nothing (a watch is sent a handful of answers here); it would catch a
//! watch that queued every change (4,001 answers a stream).

use crate::health_watchers::{connect, watch_first};
use crate::support::{bounded, start_serving};
use sockrpc::Request;
use sockrpc_health::pb::HealthCheckRequest;
use sockrpc_health::{health_service, ServingStatus};
use std::time::Duration;

/// Changes of the service's status while nobody reads.
const FLAPS: usize = 4_000;
/// Watch streams held unread, on one connection.
const WATCHERS: usize = 16;
/// Answers a watch may have been sent: at most its stream window's worth of 2-byte answers
/// charged 66 bytes each (about 1,000), the last status, and room to spare; half of [`FLAPS`].
const MOST: usize = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_never_read_through_a_flapping_status_hold_a_window_not_every_change() {
    let (reporter, health) = health_service();
    reporter.set_serving("app.S");
    let server = start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .add_service(health)
            .serve_with_listener_and_shutdown(listener, shutdown)
    });
    let mut hostile = connect(server.addr).await;
    let mut watches = Vec::with_capacity(WATCHERS);
    for i in 0..WATCHERS {
        let (first, stream) = watch_first(&mut hostile, "app.S")
            .await
            .unwrap_or_else(|status| panic!("watch {i}: {status:?}"));
        assert_eq!(first, ServingStatus::Serving);
        watches.push(stream);
    }
    let mut checker = connect(server.addr).await;
    for i in 0..FLAPS {
        if i % 2 == 0 {
            reporter.set_not_serving("app.S");
        } else {
            reporter.set_serving("app.S");
        }
        // Room for the server to send each change, to fill the windows.
        tokio::task::yield_now().await;
        if i % 1_000 == 0 {
            // The server goes on answering others while the watches fill.
            let answer = bounded(
                "check",
                checker.check(Request::new(HealthCheckRequest {
                    service: "app.S".to_owned(),
                })),
            )
            .await
            .expect("check answered");
            let status = answer.into_inner().status();
            assert!(
                matches!(status, ServingStatus::Serving | ServingStatus::NotServing),
                "{status:?}"
            );
        }
    }
    // The last change (an odd one) set SERVING.
    assert_eq!(reporter.status("app.S"), Some(ServingStatus::Serving));
    for (i, watch) in watches.iter_mut().enumerate() {
        let mut answers = 0usize;
        let mut last = None;
        // Bounded: MOST answers at most, each within the bound; reading stops at the last
        // status (no more change comes after it, so the next read would wait).
        loop {
            let next = tokio::time::timeout(Duration::from_millis(200), watch.message()).await;
            match next {
                Err(_) => break,
                Ok(Ok(Some(answer))) => {
                    answers += 1;
                    last = Some(answer.status());
                    assert!(answers <= MOST, "watch {i}: over {MOST} answers of {FLAPS}");
                }
                Ok(other) => panic!("watch {i} ended: {other:?}"),
            }
        }
        assert_eq!(last, Some(ServingStatus::Serving), "watch {i}: {answers}");
        eprintln!("watch {i}: {answers} answers for {FLAPS} changes");
    }
    // Open watches would hold the server's graceful stop for its grace period.
    drop((watches, hostile, checker));
    server.stop().await;
}
