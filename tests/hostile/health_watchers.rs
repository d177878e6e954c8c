//! A client watching made-up service names on `grpc.health.v1.Health`, as many as the reporter
//! lets it, must not make the application's own report of a service vanish: before the fix, a
//! reporter holding `MAX_SERVICES` watched names ignored every new `set_serving`, so `Check`
//! said `NOT_FOUND` for a service the server had just declared and a balancer watching it took
//! the server out of rotation. Watched names stay bounded; reports do not compete with them.

use crate::support::{bounded, start_serving};
use sockrpc::{Code, Request, Status};
use sockrpc_health::pb::health_client::HealthClient;
use sockrpc_health::pb::HealthCheckRequest;
use sockrpc_health::{health_service, ServingStatus, MAX_SERVICES};
use std::net::SocketAddr;

fn ask(service: &str) -> Request<HealthCheckRequest> {
    Request::new(HealthCheckRequest {
        service: service.to_owned(),
    })
}

pub(crate) async fn connect(addr: SocketAddr) -> HealthClient {
    bounded("connect", HealthClient::connect(format!("tcp://{addr}")))
        .await
        .expect("a health client connects")
}

/// Opens a `Watch` of `service` and reads its first answer; the stream stays open while the
/// returned stream is held.
pub(crate) async fn watch_first(
    client: &mut HealthClient,
    service: &str,
) -> Result<
    (
        ServingStatus,
        sockrpc::Streaming<sockrpc_health::pb::HealthCheckResponse>,
    ),
    Status,
> {
    let mut stream = bounded("watch", client.watch(ask(service)))
        .await?
        .into_inner();
    let first = bounded("first watch answer", stream.message())
        .await?
        .ok_or_else(|| Status::internal("the watch ended without an answer"))?;
    Ok((first.status(), stream))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watched_names_do_not_lock_out_reports() {
    let (reporter, health) = health_service();
    let server = start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .add_service(health)
            .serve_with_listener_and_shutdown(listener, shutdown)
    });
    let mut hostile = connect(server.addr).await;
    // Made-up names watched on one connection and held open, until the reporter refuses one
    // more: what clients make stays bounded.
    let mut held = Vec::with_capacity(MAX_SERVICES);
    let mut refused = None;
    for i in 0..=MAX_SERVICES {
        match watch_first(&mut hostile, &format!("made.up.S{i}")).await {
            Ok((status, stream)) => {
                assert_eq!(status, ServingStatus::ServiceUnknown, "watch {i}");
                held.push(stream);
            }
            Err(err) => {
                refused = Some(err);
                break;
            }
        }
    }
    let err = refused.expect("past MAX_SERVICES watched names, a watch is refused");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    assert!(
        held.len() >= MAX_SERVICES - 1,
        "{} watches held",
        held.len()
    );

    // The application declares a service now: it is answered, on another connection too.
    reporter.set_serving("app.Late");
    let mut other = connect(server.addr).await;
    let checked = bounded("check", other.check(ask("app.Late")))
        .await
        .expect("a service the application reported is found")
        .into_inner();
    assert_eq!(checked.status(), ServingStatus::Serving);
    let (status, mut watching) = watch_first(&mut other, "app.Late")
        .await
        .expect("a reported service can be watched");
    assert_eq!(status, ServingStatus::Serving);
    reporter.set_not_serving("app.Late");
    let changed = bounded("change", watching.message())
        .await
        .expect("the watch goes on")
        .expect("an answer");
    assert_eq!(changed.status(), ServingStatus::NotServing);

    drop((held, watching, hostile, other));
    server.stop().await;
}

/// A server that reports many services, and a client that holds as many watches of made-up
/// names as it may: when it leaves one, the name goes with it (its last watcher) and another
/// watch finds room, while reports stay watchable throughout. Room is a count kept as names
/// come and go: a refused watch no longer scans every name the server tracks, reports
/// included (it did, twice, under the reporter's lock, for each refused watch).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_leaving_makes_room_beside_many_reports() {
    let (reporter, health) = health_service();
    for i in 0..2 * MAX_SERVICES {
        reporter.set_serving(&format!("app.S{i}"));
    }
    let server = start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .add_service(health)
            .serve_with_listener_and_shutdown(listener, shutdown)
    });
    let mut hostile = connect(server.addr).await;
    let mut held = Vec::with_capacity(MAX_SERVICES);
    for i in 0..MAX_SERVICES {
        let (status, stream) = watch_first(&mut hostile, &format!("made.up.S{i}"))
            .await
            .unwrap_or_else(|err| panic!("watch {i}: {err}"));
        assert_eq!(status, ServingStatus::ServiceUnknown);
        held.push(stream);
    }
    for i in 0..64 {
        let err = watch_first(&mut hostile, &format!("one.more.{i}"))
            .await
            .expect_err("full");
        assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    }
    let (status, _reported) = watch_first(&mut hostile, "app.S7")
        .await
        .expect("a reported service can be watched");
    assert_eq!(status, ServingStatus::Serving);

    // One watch ends: the server sees its stream go, and the name with it.
    drop(held.pop());
    let mut freed = None;
    for attempt in 0..200 {
        match watch_first(&mut hostile, "after.leaving").await {
            Ok((_, stream)) => {
                freed = Some(stream);
                break;
            }
            Err(err) => {
                assert_eq!(
                    err.code(),
                    Code::ResourceExhausted,
                    "attempt {attempt}: {err}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
    assert!(freed.is_some(), "a watch that ended left its room");

    drop((held, freed, hostile));
    server.stop().await;
}
