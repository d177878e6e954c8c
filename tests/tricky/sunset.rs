//! A service deprecated as a whole (`sunset.proto`: `option deprecated = true` on the service,
//! none on its rpcs) in a crate that denies warnings: its generated code compiles without one
//! (it allows its own uses of what it marks deprecated), and every call shape answers over TCP
//! on loopback. Implementing and serving it, and calling the undeprecated `Dawn` beside it,
//! compile under `#[deny(deprecated)]`; calling it takes an `allow`. What is marked is read
//! back from the generated source.

use futures_util::stream::{self, BoxStream, StreamExt};
use sockrpc::codegen::prost_types::FileDescriptorSet;
use sockrpc::{Request, Response, Status, Streaming};

use crate::support::{bounded, channel, collect, start};

/// `sunset.proto`'s generated file, compiled here once more under `#![deny(warnings)]`, as in a
/// user's crate that denies them. `missing_docs` and `unreachable_pub` are this workspace's
/// lints, not rustc's defaults: allowed as a user's crate has them.
mod strict {
    #![deny(warnings)]
    #![allow(missing_docs, unreachable_pub)]
    include!(concat!(env!("OUT_DIR"), "/tricky/sockrpc.test.sunset.rs"));
}

use strict::dawn_client::DawnClient;
use strict::dawn_server::{Dawn, DawnServer};
use strict::sunset_server::{Sunset, SunsetServer};
use strict::Ping;

/// Both services: implementing the deprecated one and serving it warn nobody.
struct Dusk;

fn ping(seq: u64) -> Ping {
    Ping { seq, count: 0 }
}

#[deny(deprecated)]
impl Sunset for Dusk {
    async fn next(&self, request: Request<Ping>) -> Result<Response<Ping>, Status> {
        Ok(Response::new(ping(request.into_inner().seq + 1)))
    }

    type CountStream = BoxStream<'static, Result<Ping, Status>>;

    async fn count(&self, request: Request<Ping>) -> Result<Response<Self::CountStream>, Status> {
        let Ping { seq, count } = request.into_inner();
        let pings = (seq..seq + u64::from(count)).map(|seq| Ok(ping(seq)));
        Ok(Response::new(stream::iter(pings).boxed()))
    }

    async fn sum(&self, request: Request<Streaming<Ping>>) -> Result<Response<Ping>, Status> {
        let mut pings = request.into_inner();
        let mut sum = 0;
        while let Some(ping) = pings.message().await? {
            sum += ping.seq;
        }
        Ok(Response::new(ping(sum)))
    }

    type DoubleStream = BoxStream<'static, Result<Ping, Status>>;

    async fn double(
        &self,
        request: Request<Streaming<Ping>>,
    ) -> Result<Response<Self::DoubleStream>, Status> {
        let pings = request.into_inner();
        Ok(Response::new(
            pings.map(|p| p.map(|p| ping(p.seq * 2))).boxed(),
        ))
    }
}

#[deny(deprecated)]
impl Dawn for Dusk {
    async fn next(&self, request: Request<Ping>) -> Result<Response<Ping>, Status> {
        Ok(Response::new(ping(request.into_inner().seq + 2)))
    }
}

/// The `seq` of every ping in `pings`.
async fn seqs(what: &str, pings: Streaming<Ping>) -> Vec<u64> {
    collect(what, pings).await.iter().map(|p| p.seq).collect()
}

/// Calling `Dawn`, which is not deprecated, warns nothing.
#[deny(deprecated)]
async fn dawn_next(channel: sockrpc::Channel, seq: u64) -> u64 {
    let mut client = DawnClient::new(channel);
    let next = bounded("Dawn.Next", client.next(ping(seq)))
        .await
        .expect("Dawn.Next");
    next.into_inner().seq
}

/// Calling a deprecated service is what warns: the test opts out, as a caller that still must.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(deprecated)]
async fn a_deprecated_service_compiles_under_deny_warnings_and_answers() {
    use strict::sunset_client::SunsetClient;

    let server = start(
        sockrpc::Server::builder()
            .add_service(SunsetServer::new(Dusk))
            .add_service(DawnServer::new(Dusk)),
    );
    let channel = channel(&server).await;
    assert_eq!(dawn_next(channel.clone(), 40).await, 42);
    let mut client = SunsetClient::new(channel);

    let next = bounded("Next", client.next(ping(41))).await.expect("Next");
    assert_eq!(next.into_inner().seq, 42);

    let counted = bounded("Count", client.count(Ping { seq: 5, count: 3 }))
        .await
        .expect("Count")
        .into_inner();
    assert_eq!(seqs("Count stream", counted).await, [5, 6, 7]);

    let sum = bounded("Sum", client.sum(stream::iter([ping(1), ping(2), ping(3)])))
        .await
        .expect("Sum");
    assert_eq!(sum.into_inner().seq, 6);

    let doubled = bounded("Double", client.double(stream::iter([ping(4), ping(5)])))
        .await
        .expect("Double")
        .into_inner();
    assert_eq!(seqs("Double stream", doubled).await, [8, 10]);

    server.stop().await;
}

/// The client struct and every rpc, on the client and in the trait, are marked; the trait and
/// the server struct are not.
#[test]
fn the_client_and_every_rpc_are_marked_deprecated() {
    let source = include_str!(concat!(env!("OUT_DIR"), "/tricky/sockrpc.test.sunset.rs"));
    // Whether the first `item` after `from` is marked (before its derives, for a struct).
    let marked_after = |from: usize, item: &str| {
        let at = from
            + source[from..]
                .find(item)
                .unwrap_or_else(|| panic!("`{item}` is generated"));
        let before = source[..at].trim_end();
        let before = before
            .strip_suffix("#[derive(::core::fmt::Debug, ::core::clone::Clone)]")
            .unwrap_or(before);
        before.trim_end().ends_with("#[deprecated]")
    };
    let at = |item: &str| {
        source
            .find(item)
            .unwrap_or_else(|| panic!("`{item}` is generated"))
    };
    let client = at("pub struct SunsetClient");
    let server_trait = at("pub trait Sunset:");
    assert!(marked_after(0, "pub struct SunsetClient"), "SunsetClient");
    for rpc in ["next", "count", "sum", "double"] {
        let client_method = format!("pub async fn {rpc}(");
        assert!(marked_after(client, &client_method), "client method {rpc}");
        let trait_method = format!("fn {rpc}(");
        assert!(
            marked_after(server_trait, &trait_method),
            "trait method {rpc}"
        );
    }
    assert!(!marked_after(0, "pub trait Sunset:"), "the server trait");
    assert!(
        !marked_after(0, "pub struct SunsetServer"),
        "the server struct"
    );
    // `Dawn`, beside it, is not deprecated.
    assert!(!marked_after(0, "pub struct DawnClient"), "DawnClient");
    let dawn_client = at("pub struct DawnClient");
    assert!(
        !marked_after(dawn_client, "pub async fn next("),
        "DawnClient::next"
    );
    let dawn_trait = at("pub trait Dawn:");
    assert!(!marked_after(dawn_trait, "fn next("), "Dawn::next");

    // Reflection tells clients too: the descriptors carry the option.
    let set = <FileDescriptorSet as prost::Message>::decode(strict::FILE_DESCRIPTOR_SET)
        .expect("the package's descriptors decode");
    let service = set
        .file
        .iter()
        .flat_map(|file| &file.service)
        .find(|service| service.name() == "Sunset")
        .expect("service Sunset is described");
    assert_eq!(
        service.options.as_ref().and_then(|o| o.deprecated),
        Some(true)
    );
}
