//! A generated server trait as a trait object: `Arc<dyn DynStreamer>` picks an implementation
//! at run time and serves all four call shapes (tonic's `#[async_trait]` traits allow
//! `dyn`; here the generated `Dyn<Service>` twin does, at one box per call).

use crate::support::{bounded, payload, EchoStreamer, Running};
use futures_util::stream;
use sockrpc::{Channel, Endpoint};
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::streamer_server::{DynStreamer, StreamerServer};
use sockrpc_tests::stream::{Chunk, ProduceRequest};
use std::sync::Arc;

#[tokio::test]
async fn a_server_trait_object_serves_every_shape() {
    // Chosen at run time: the type is the same whichever implementation is behind it.
    let implementations: Vec<Arc<dyn DynStreamer>> = vec![Arc::new(EchoStreamer)];
    for implementation in implementations {
        let server: StreamerServer<Arc<dyn DynStreamer>> = StreamerServer::new(implementation);
        let server = Running::start_dyn(server);
        let endpoint = Endpoint::new("127.0.0.1", server.addr.port());
        let channel = bounded("connect", Channel::connect(endpoint))
            .await
            .expect("connect");
        let mut client = StreamerClient::new(channel);
        let chunk = Chunk {
            seq: 3,
            payload: payload(100),
        };
        let answer = bounded("unary", client.unary(chunk.clone())).await;
        assert_eq!(answer.expect("unary").into_inner(), chunk);
        let request = ProduceRequest {
            count: 3,
            size: 10,
            ..Default::default()
        };
        let mut produced = bounded("produce", client.produce(request))
            .await
            .expect("produce")
            .into_inner();
        let mut count = 0;
        while bounded("next", produced.message())
            .await
            .expect("message")
            .is_some()
        {
            count += 1;
        }
        assert_eq!(count, 3);
        let summary = bounded(
            "collect",
            client.collect(stream::iter([chunk.clone(), chunk.clone()])),
        )
        .await
        .expect("collect")
        .into_inner();
        assert_eq!(summary.count, 2);
        let mut echoed = bounded("ping_pong", client.ping_pong(stream::iter([chunk.clone()])))
            .await
            .expect("ping_pong")
            .into_inner();
        assert_eq!(
            bounded("echo", echoed.message()).await.expect("echo"),
            Some(chunk)
        );
        server.stop().await;
    }
}
