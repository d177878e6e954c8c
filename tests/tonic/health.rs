//! tonic-health's own tests (`src/server.rs`: `test_service_check`, `test_service_watch`),
//! with tonic-health's names (`server::health_reporter()`, `set_service_status(..).await`,
//! `clear_service_status(..).await`) and over a real socket: tonic calls its service's trait
//! methods in process. tonic's helper puts `TestService` in the reporter as `UNKNOWN`
//! through a private field; the port reports it so.
//!
//! Where sockrpc differs, on purpose (gRPC's health spec, as grpc-go has it): a name nobody
//! reported is watched as `SERVICE_UNKNOWN`, and a watch goes on after its name is cleared,
//! reading `SERVICE_UNKNOWN` again, until the name is reported once more; tonic refuses such a
//! watch `NOT_FOUND` and ends a cleared name's stream.

use crate::support::bounded;
use sockrpc::{Code, Request, Streaming};
use sockrpc_health::pb::health_client::HealthClient;
use sockrpc_health::pb::{HealthCheckRequest, HealthCheckResponse};
use sockrpc_health::server::{health_reporter, HealthReporter};
use sockrpc_health::ServingStatus;
use tokio::sync::oneshot;

/// tonic's `make_test_service`: a reporter with `TestService` at `UNKNOWN`, and a client of
/// the service it drives, served on `127.0.0.1:0` until the sender is dropped.
async fn make_test_service() -> (HealthReporter, HealthClient, oneshot::Sender<()>) {
    let (reporter, server) = health_reporter();
    reporter
        .set_service_status("TestService", ServingStatus::Unknown)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(
        sockrpc::Server::builder()
            .add_service(server)
            .serve_with_listener_and_shutdown(listener, async move {
                let _ = stopped.await;
            }),
    );
    let client = bounded("connect", HealthClient::connect(format!("http://{addr}")))
        .await
        .expect("connect");
    (reporter, client, stop)
}

fn request(service: &str) -> Request<HealthCheckRequest> {
    Request::new(HealthCheckRequest {
        service: service.to_string(),
    })
}

fn assert_serving_status(wire: i32, expected: ServingStatus) {
    assert_eq!(wire, expected as i32);
}

async fn next_status(stream: &mut Streaming<HealthCheckResponse>) -> i32 {
    bounded("watch message", stream.message())
        .await
        .expect("response is ok")
        .expect("streamed response is Some")
        .status
}

#[tokio::test]
async fn test_service_check() {
    let (reporter, mut client, _stop) = make_test_service().await;

    // Overall server health
    let resp = bounded("check", client.check(request(""))).await;
    assert_serving_status(
        resp.expect("ok").into_inner().status,
        ServingStatus::Serving,
    );

    // Unregistered service
    let resp = bounded("check", client.check(request("Unregistered"))).await;
    assert_eq!(resp.expect_err("unregistered").code(), Code::NotFound);

    // Registered service - initial state
    let resp = bounded("check", client.check(request("TestService"))).await;
    assert_serving_status(
        resp.expect("ok").into_inner().status,
        ServingStatus::Unknown,
    );

    // Registered service - updated state
    reporter
        .set_service_status("TestService", ServingStatus::Serving)
        .await;
    let resp = bounded("check", client.check(request("TestService"))).await;
    assert_serving_status(
        resp.expect("ok").into_inner().status,
        ServingStatus::Serving,
    );
}

#[tokio::test]
async fn test_service_watch() {
    let (mut reporter, mut client, _stop) = make_test_service().await;

    // Overall server health
    let mut resp = bounded("watch", client.watch(request("")))
        .await
        .expect("ok")
        .into_inner();
    assert_serving_status(next_status(&mut resp).await, ServingStatus::Serving);

    // Unregistered service: SERVICE_UNKNOWN on an open stream (tonic: `NOT_FOUND`).
    let mut unregistered = bounded("watch", client.watch(request("Unregistered")))
        .await
        .expect("ok")
        .into_inner();
    assert_serving_status(
        next_status(&mut unregistered).await,
        ServingStatus::ServiceUnknown,
    );

    // Registered service
    let mut resp = bounded("watch", client.watch(request("TestService")))
        .await
        .expect("ok")
        .into_inner();

    // Registered service - initial state
    assert_serving_status(next_status(&mut resp).await, ServingStatus::Unknown);

    // Registered service - updated state
    reporter
        .set_service_status("TestService", ServingStatus::NotServing)
        .await;
    assert_serving_status(next_status(&mut resp).await, ServingStatus::NotServing);

    // Registered service - updated state
    reporter
        .set_service_status("TestService", ServingStatus::Serving)
        .await;
    assert_serving_status(next_status(&mut resp).await, ServingStatus::Serving);

    // De-registered service: SERVICE_UNKNOWN, the stream open (tonic: the stream ends).
    reporter.clear_service_status("TestService").await;
    assert_serving_status(next_status(&mut resp).await, ServingStatus::ServiceUnknown);
    reporter
        .set_service_status("TestService", ServingStatus::Serving)
        .await;
    assert_serving_status(next_status(&mut resp).await, ServingStatus::Serving);
}
