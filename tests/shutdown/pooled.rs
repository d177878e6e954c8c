//! A pool of several connections: every one closes, and nothing reconnects.

use super::*;

#[tokio::test]
async fn a_closed_pool_closes_every_connection_and_reconnects_nothing() {
    let server = Running::start().await;
    let channel = bounded("connect", Channel::connect(server.endpoint(3)))
        .await
        .expect("connect");
    assert_eq!(channel.connections().len(), 3);
    eventually("three connections reach the server", || {
        server.proxy.open() == 3
    })
    .await;
    let mut client = Client::new(channel.clone());
    // Calls on each connection (the first fills up to its share, so spread them by hand).
    let conns = channel.connections();
    let mut pending = Vec::new();
    for (i, conn) in conns.iter().enumerate() {
        let message = prost::Message::encode_to_vec(&unary(i as u64));
        let call = conn.unary(
            sockrpc::protocol::MethodPath::from_static("/sockrpc.test.stream.Streamer/Unary"),
            sockrpc::Request::new(bytes::Bytes::from(message)),
        );
        pending.push(tokio::spawn(call));
    }
    eventually("three calls reach their handlers", || server.entered() == 3).await;

    channel.close();
    assert_closed_status(client.unary(unary(9)).await);
    assert!(channel.connections().is_empty());
    server.gate.release.send_replace(true);
    for call in pending {
        bounded("a call in flight", call)
            .await
            .expect("task")
            .expect("answered after the close");
    }
    bounded("closed()", channel.closed()).await;
    assert!(conns.iter().all(|c| c.is_terminated()));
    eventually("the server sees every connection end", || {
        server.proxy.open() == 0
    })
    .await;
    assert_no_reconnect(&server.proxy, 3).await;
}
