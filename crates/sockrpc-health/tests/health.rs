//! The health service on a real socket: `Check`, `List` and `Watch` as gRPC defines them.

use sockrpc::{Code, Request};
use sockrpc_health::pb::health_client::HealthClient;
use sockrpc_health::pb::{HealthCheckRequest, HealthListRequest};
use sockrpc_health::{health_service, ServingStatus};
use std::time::Duration;

async fn serve() -> (
    sockrpc_health::HealthReporter,
    HealthClient,
    tokio::sync::oneshot::Sender<()>,
) {
    let (reporter, server) = health_service();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        sockrpc::Server::builder()
            .add_service(server)
            .serve_with_listener_and_shutdown(listener, async move {
                let _ = stopped.await;
            }),
    );
    let client = HealthClient::connect(format!("tcp://{addr}"))
        .await
        .expect("connect");
    (reporter, client, stop)
}

fn ask(service: &str) -> Request<HealthCheckRequest> {
    let mut request = Request::new(HealthCheckRequest {
        service: service.into(),
    });
    request.set_timeout(Duration::from_secs(5));
    request
}

#[tokio::test]
async fn check_answers_reported_status_and_not_found_for_unknown() {
    let (reporter, mut client, _stop) = serve().await;
    let overall = client.check(ask("")).await.expect("overall").into_inner();
    assert_eq!(overall.status(), ServingStatus::Serving);
    let err = client.check(ask("a.Missing")).await.expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
    reporter.set_not_serving("a.Svc");
    let svc = client
        .check(ask("a.Svc"))
        .await
        .expect("known")
        .into_inner();
    assert_eq!(svc.status(), ServingStatus::NotServing);
    let list = client
        .list(Request::new(HealthListRequest {}))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(list.statuses.len(), 2);
    assert_eq!(list.statuses["a.Svc"].status(), ServingStatus::NotServing);
}

#[tokio::test]
async fn watch_streams_every_change_and_unknown_first() {
    let (reporter, mut client, _stop) = serve().await;
    let mut stream = client
        .watch(ask("a.Later"))
        .await
        .expect("watch")
        .into_inner();
    assert_eq!(next(&mut stream).await, Some(ServingStatus::ServiceUnknown));
    reporter.set_serving("a.Later");
    assert_eq!(next(&mut stream).await, Some(ServingStatus::Serving));
    reporter.set_not_serving("a.Later");
    assert_eq!(next(&mut stream).await, Some(ServingStatus::NotServing));
    reporter.clear("a.Later");
    assert_eq!(next(&mut stream).await, Some(ServingStatus::ServiceUnknown));
}

async fn next(
    stream: &mut sockrpc::Streaming<sockrpc_health::pb::HealthCheckResponse>,
) -> Option<ServingStatus> {
    tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("a message in time")
        .expect("stream ok")
        .map(|m| m.status())
}

/// Names that clients watched and left do not stay: a client that watches many made-up names,
/// one after another, must not fill the reporter, or a service the application reports later
/// (or a name another client watches) would be refused for good.
#[tokio::test]
async fn names_watched_and_left_do_not_fill_the_reporter() {
    let (reporter, mut client, _stop) = serve().await;
    // Every name the reporter has room for beside the overall health ("").
    for i in 1..sockrpc_health::MAX_SERVICES {
        let mut stream = client
            .watch(ask(&format!("made.up{i}")))
            .await
            .expect("watch")
            .into_inner();
        assert_eq!(next(&mut stream).await, Some(ServingStatus::ServiceUnknown));
    }
    // The server hears of each cancel a moment after its stream is dropped: look again, bounded.
    let mut reported = false;
    for _ in 0..500 {
        reporter.set_serving("a.Late");
        if reporter.status("a.Late").is_some() {
            reported = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        reported,
        "a service reported after the watches ended was ignored"
    );
    let mut stream = client
        .watch(ask("another.Watched"))
        .await
        .expect("a new name can be watched")
        .into_inner();
    assert_eq!(next(&mut stream).await, Some(ServingStatus::ServiceUnknown));
}
