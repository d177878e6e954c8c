//! A loop of calls that each fail at once because the server's certificate was refused (the
//! pool knows the next attempt would be refused too) still yields to the other tasks of its
//! thread now and again. On a current-thread runtime the pool's reconnecting task shares that
//! thread: a loop that never yields would keep it from ever trying again, so a certificate
//! fixed on the server (rotation) would never be picked up.

use super::*;

#[tokio::test(flavor = "current_thread")]
async fn a_loop_of_calls_refused_at_once_lets_other_tasks_run() {
    let ca = Ca::new("server CA");
    let other = Ca::new("another CA");
    let server = TestServer::start(server_tls(ServerTlsConfig::new(
        ca.leaf(SERVER_NAMES).identity(),
    )))
    .await;
    let endpoint = server.endpoint(ClientTlsConfig::new().ca_certificates(other.certificates()));
    let channel = Channel::lazy(endpoint).expect("lazy channel");
    // The first call waits for the first attempt, and learns it was refused.
    let status = call(&channel).await.expect_err("unknown CA");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let channel = &channel;
    sockrpc_tests::starve::calls_until_another_task_runs(|_| async move {
        let status = call(channel).await.expect_err("still the unknown CA");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(
            status
                .message()
                .contains("not signed by a CA this client trusts"),
            "{status:?}"
        );
    })
    .await;
    server.stop().await;
}
