//! A TLS client past the server's connection cap is told why, inside TLS, as a plain one is.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_past_the_connection_cap_is_told_why() {
    let ca = Ca::new("test CA");
    let tls = server_tls(ServerTlsConfig::new(ca.leaf(SERVER_NAMES).identity()));
    let server = TestServer::start_with(Server::builder().tls_handle(tls).max_connections(1)).await;
    let client = || ClientTlsConfig::new().ca_certificates(ca.certificates());

    // The one slot is taken by a served connection.
    let holder = Channel::connect(server.endpoint(client()))
        .await
        .expect("connect");
    assert_eq!(call(&holder).await.expect("call"), "Hello tls!");

    // A second client completes its handshake, then reads the server's GOAWAY: its first call
    // fails promptly with a code a caller can act on and the server's reason, not a bare reset.
    let started = Instant::now();
    let refused = greet(server.endpoint(client()))
        .await
        .expect_err("no slot, no call");
    assert!(
        matches!(refused.code(), Code::Unavailable | Code::ResourceExhausted),
        "{refused:?}"
    );
    assert!(
        refused.message().contains("connection limit"),
        "the client is told why: {refused:?}"
    );
    assert!(started.elapsed() < PROMPT, "took {:?}", started.elapsed());

    // The holder is still served.
    assert_eq!(call(&holder).await.expect("call"), "Hello tls!");
    drop(holder);
    server.stop().await;
}
