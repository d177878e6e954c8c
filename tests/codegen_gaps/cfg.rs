//! `#[cfg(..)]` attributes given through `server_attribute`, `trait_attribute` and
//! `client_attribute` gate every item that needs what they gate (impl blocks, the object-safe
//! twin): `gated.proto` is generated once under a cfg that holds and once under one that does
//! not, and both compile whatever features the crate is built with.

use sockrpc::{Request, Response, Status};

/// Generated under `#[cfg(feature = "bincode")]`.
#[allow(dead_code, missing_docs, unreachable_pub, clippy::all, rustdoc::all)]
mod on {
    include!(concat!(env!("OUT_DIR"), "/gated_on/gated.rs"));
}

/// Generated under `#[cfg(not(feature = "bincode"))]`.
#[allow(dead_code, missing_docs, unreachable_pub, clippy::all, rustdoc::all)]
mod off {
    include!(concat!(env!("OUT_DIR"), "/gated_off/gated.rs"));
}

#[cfg(not(feature = "bincode"))]
use off::gaps::gated::{gated_client::GatedClient, gated_server, Pong};
#[cfg(feature = "bincode")]
use on::gaps::gated::{gated_client::GatedClient, gated_server, Pong};

struct Pinger;

impl gated_server::Gated for Pinger {
    async fn ping(&self, request: Request<Pong>) -> Result<Response<Pong>, Status> {
        Ok(Response::new(Pong {
            n: request.into_inner().n + 1,
        }))
    }

    type WatchStream = sockrpc::BoxStream<Pong>;

    async fn watch(&self, request: Request<Pong>) -> Result<Response<Self::WatchStream>, Status> {
        let n = request.into_inner().n;
        let pongs = futures_util::stream::iter([Ok(Pong { n })]);
        Ok(Response::new(Box::pin(pongs) as sockrpc::BoxStream<Pong>))
    }

    async fn sum(
        &self,
        request: Request<sockrpc::Streaming<Pong>>,
    ) -> Result<Response<Pong>, Status> {
        let mut pongs = request.into_inner();
        let mut n = 0;
        while let Some(pong) = pongs.message().await? {
            n += pong.n;
        }
        Ok(Response::new(Pong { n }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gated_service_that_is_compiled_in_serves() {
    let (server, channel) = crate::serve(
        sockrpc::Server::builder().add_service(gated_server::GatedServer::new(Pinger)),
    )
    .await;
    let mut client = GatedClient::new(channel);
    let reply = crate::bounded("ping", client.ping(Pong { n: 1 }))
        .await
        .expect("ping");
    assert_eq!(reply.into_inner().n, 2);
    let pongs = futures_util::stream::iter([Pong { n: 2 }, Pong { n: 3 }]);
    let reply = crate::bounded("sum", client.sum(pongs)).await.expect("sum");
    assert_eq!(reply.into_inner().n, 5);
    server.stop().await;
}

/// Every item that names a gated struct or trait carries its cfg, and nothing else does.
#[test]
fn every_gated_item_carries_the_cfg() {
    let on = std::fs::read_to_string(concat!(env!("OUT_DIR"), "/gated_on/gaps.gated.rs"))
        .expect("gated_on");
    let gated = on.matches("#[cfg(feature = \"bincode\")]").count();
    // The client struct and its 2 impls; the server struct and its 5 impls (2 of which also
    // name the trait); the trait, the twin and its 2 impls.
    assert_eq!(gated, 3 + 6 + 2 + 4, "cfg attributes in:\n{on}");
}
