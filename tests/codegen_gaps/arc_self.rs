//! tonic-build's `use_arc_self(true)` (`tests/build.rs`): the server trait's methods take
//! `self: Arc<Self>`, so a handler owns a handle on its service and can move it into a task
//! it spawns or a response stream that outlives the call. Every call shape is served by an
//! implementation written so (which compiles only against that receiver), through the
//! implementation itself, a shared `Arc` (`from_arc`) and the trait-object twin; and with
//! default stubs, where an rpc left out answers `UNIMPLEMENTED`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::stream::{self, BoxStream, StreamExt};
use sockrpc::{Code, Request, Response, Status, Streaming};

use crate::{bounded, serve};

#[allow(unreachable_pub, missing_docs, clippy::all)]
mod pb {
    include!(concat!(env!("OUT_DIR"), "/arc_self/gaps.arc_self.rs"));
}

#[allow(unreachable_pub, missing_docs, clippy::all)]
mod stubs {
    include!(concat!(env!("OUT_DIR"), "/arc_self_stubs/gaps.arc_self.rs"));
}

use pb::tally_client::TallyClient;
use pb::tally_server::{DynTally, Tally, TallyServer};
use pb::Amount;

/// Keeps a running total of what it is sent.
#[derive(Default)]
struct Tallier {
    total: AtomicU64,
}

impl Tallier {
    fn total(&self) -> u64 {
        self.total.load(Ordering::SeqCst)
    }
}

type Amounts = BoxStream<'static, Result<Amount, Status>>;

impl Tally for Tallier {
    async fn add(self: Arc<Self>, request: Request<Amount>) -> Result<Response<Amount>, Status> {
        let value = request.into_inner().value;
        // The handler owns its handle: a task of its own can take it.
        let total = tokio::spawn(async move { self.total.fetch_add(value, Ordering::SeqCst) })
            .await
            .map_err(|err| Status::internal(err.to_string()))?;
        Ok(Response::new(Amount {
            value: total + value,
        }))
    }

    type CountStream = Amounts;

    async fn count(self: Arc<Self>, request: Request<Amount>) -> Result<Response<Amounts>, Status> {
        // The stream outlives the call and reads the service as it goes: it holds `self`.
        let n = request.into_inner().value;
        let amounts = stream::iter(0..n).map(move |i| {
            Ok(Amount {
                value: self.total() + i,
            })
        });
        Ok(Response::new(amounts.boxed()))
    }

    async fn sum(
        self: Arc<Self>,
        request: Request<Streaming<Amount>>,
    ) -> Result<Response<Amount>, Status> {
        let mut amounts = request.into_inner();
        let mut sum = 0;
        while let Some(amount) = amounts.message().await? {
            sum += amount.value;
        }
        self.total.fetch_add(sum, Ordering::SeqCst);
        Ok(Response::new(Amount { value: sum }))
    }

    type EchoStream = Amounts;

    async fn echo(
        self: Arc<Self>,
        request: Request<Streaming<Amount>>,
    ) -> Result<Response<Amounts>, Status> {
        let amounts = request.into_inner().map(move |amount| {
            Ok(Amount {
                value: amount?.value + self.total(),
            })
        });
        Ok(Response::new(amounts.boxed()))
    }
}

fn amount(value: u64) -> Amount {
    Amount { value }
}

/// The values a response stream yielded.
async fn values(what: &str, answer: Result<Response<Streaming<Amount>>, Status>) -> Vec<u64> {
    let mut stream = answer
        .unwrap_or_else(|err| panic!("{what}: {err:?}"))
        .into_inner();
    let mut values = Vec::new();
    while let Some(amount) = bounded(what, stream.message()).await.expect(what) {
        values.push(amount.value);
    }
    values
}

#[tokio::test]
async fn every_shape_serves_through_an_arc_self_implementation() {
    let tallier = Arc::new(Tallier::default());
    // `from_arc`: the server shares the implementation the test keeps.
    let (server, channel) =
        serve(sockrpc::Server::builder().add_service(TallyServer::from_arc(Arc::clone(&tallier))))
            .await;
    let mut client = TallyClient::new(channel);

    let added = bounded("add", client.add(amount(2))).await.expect("add");
    assert_eq!(added.into_inner().value, 2);
    let added = bounded("add", client.add(amount(3))).await.expect("add");
    assert_eq!(added.into_inner().value, 5);

    let counted = bounded("count", client.count(amount(3))).await;
    assert_eq!(values("count", counted).await, [5, 6, 7]);

    let summed = bounded("sum", client.sum(stream::iter([amount(1), amount(2)])))
        .await
        .expect("sum");
    assert_eq!(summed.into_inner().value, 3);
    assert_eq!(tallier.total(), 8, "the handlers share the test's Arc");

    let echoed = bounded("echo", client.echo(stream::iter([amount(1), amount(10)]))).await;
    assert_eq!(values("echo", echoed).await, [9, 18]);
    server.stop().await;
}

#[tokio::test]
async fn the_trait_object_twin_takes_arc_self_too() {
    let tallier: Arc<dyn DynTally> = Arc::new(Tallier::default());
    let (server, channel) =
        serve(sockrpc::Server::builder().add_service(TallyServer::new(tallier))).await;
    let mut client = TallyClient::new(channel);
    let added = bounded("add", client.add(amount(4))).await.expect("add");
    assert_eq!(added.into_inner().value, 4);
    let counted = bounded("count", client.count(amount(2))).await;
    assert_eq!(values("count", counted).await, [4, 5]);
    server.stop().await;
}

/// Implements only `add`; the stubs answer the rest.
struct OnlyAdd;

impl stubs::tally_server::Tally for OnlyAdd {
    async fn add(
        self: Arc<Self>,
        request: Request<stubs::Amount>,
    ) -> Result<Response<stubs::Amount>, Status> {
        // Still owned here: the count of handles shows the server's and this one.
        assert!(Arc::strong_count(&self) >= 2, "the server keeps its own");
        Ok(Response::new(request.into_inner()))
    }
}

#[tokio::test]
async fn default_stubs_take_arc_self_and_answer_unimplemented() {
    let service = stubs::tally_server::TallyServer::new(OnlyAdd);
    let (server, channel) = serve(sockrpc::Server::builder().add_service(service)).await;
    let mut client = stubs::tally_client::TallyClient::new(channel);
    let added = bounded("add", client.add(stubs::Amount { value: 7 }))
        .await
        .expect("add");
    assert_eq!(added.into_inner().value, 7);
    let err = bounded("count", client.count(stubs::Amount { value: 1 }))
        .await
        .expect_err("a stub");
    assert_eq!(err.code(), Code::Unimplemented, "{err:?}");
    server.stop().await;
}
