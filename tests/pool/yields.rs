//! A loop of calls that each end at once (refused on the client before anything is sent)
//! still yields to the other tasks of its thread now and again, as a loop of socket reads does
//! under tokio's budget: on a current-thread runtime the connection's driver shares that
//! thread, and a loop that never yields starves it (a full write buffer never drains).

use super::{loopback, TestServer};
use bytes::Bytes;
use sockrpc::server::PingPolicy;
use sockrpc::{Code, Endpoint};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::EchoRequest;

#[tokio::test(flavor = "current_thread")]
async fn a_loop_of_calls_that_fail_at_once_lets_other_tasks_run() {
    let server = TestServer::start(loopback(), PingPolicy::default()).expect("server");
    let endpoint = Endpoint::from_uri(&format!("tcp://{}", server.addr))
        .expect("endpoint")
        .max_encoding_message_size(16);
    let channel = sockrpc::Channel::connect(endpoint).await.expect("connect");
    let client = EchoClient::new(channel);
    let client = &client;
    sockrpc_tests::starve::calls_until_another_task_runs(|id| async move {
        let request = EchoRequest {
            payload: Bytes::from_static(&[0; 64]),
            id: id as u64,
        };
        let status = client
            .clone()
            .echo(request)
            .await
            .expect_err("over the send limit");
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    })
    .await;
    server.stop().await;
}
