//! `codec_path("crate::codec::CountingCodec")`: the generated client and server encode and
//! decode through that codec; `btree_map` and `boxed` shape the message; the descriptor set
//! `file_descriptor_set_path` wrote generates the same service again through `compile_fds`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use sockrpc::{Codec, ProstCodec, Request, Response, Status};

use crate::{bounded, serve};

/// `opts.proto` with the custom codec, `BTreeMap` counts and a boxed child.
#[allow(dead_code, missing_docs, unreachable_pub, clippy::all, rustdoc::all)]
mod with_codec {
    include!(concat!(env!("OUT_DIR"), "/opts/gaps.opts.rs"));
}

/// `opts.proto` again, from the descriptor set alone (default codec).
#[allow(dead_code, missing_docs, unreachable_pub, clippy::all, rustdoc::all)]
mod from_set {
    include!(concat!(env!("OUT_DIR"), "/opts_from_set/gaps.opts.rs"));
}

/// Messages encoded and decoded through [`CountingCodec`], by every test in this binary.
static CODED: AtomicUsize = AtomicUsize::new(0);

/// protobuf through prost, counting every message.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CountingCodec;

impl<T: prost::Message + Default> Codec<T> for CountingCodec {
    fn encode(&self, item: &T, dst: &mut BytesMut) -> Result<(), Status> {
        CODED.fetch_add(1, Ordering::SeqCst);
        Codec::<T>::encode(&ProstCodec, item, dst)
    }

    fn decode(&self, src: Bytes) -> Result<T, Status> {
        CODED.fetch_add(1, Ordering::SeqCst);
        Codec::<T>::decode(&ProstCodec, src)
    }
}

struct Grower;

/// Both generations serve the same service; one body for both.
macro_rules! grow {
    ($tree:ty) => {
        async fn grow(&self, request: Request<$tree>) -> Result<Response<$tree>, Status> {
            let mut tree = request.into_inner();
            let below = tree.child.take();
            let depth = tree.counts.len() as u32;
            tree.counts.insert(format!("level{depth}"), depth);
            tree.leaf = Some(Box::default());
            tree.child = Some(Box::new(<$tree>::default()));
            if let Some(child) = tree.child.as_mut() {
                child.name = "grown".to_owned();
                child.child = below;
            }
            Ok(Response::new(tree))
        }
    };
}

impl with_codec::grower_server::Grower for Grower {
    grow!(with_codec::Tree);
}

impl from_set::grower_server::Grower for Grower {
    grow!(from_set::Tree);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_custom_codec_carries_every_message_both_ways() {
    let (server, channel) = serve(
        sockrpc::Server::builder()
            .add_service(with_codec::grower_server::GrowerServer::new(Grower)),
    )
    .await;
    let before = CODED.load(Ordering::SeqCst);
    let mut client = with_codec::grower_client::GrowerClient::new(channel);
    let tree = with_codec::Tree {
        name: "root".to_owned(),
        counts: BTreeMap::from([("seed".to_owned(), 7)]),
        ..Default::default()
    };
    let reply = bounded("grow", client.grow(tree)).await.expect("grow");
    let reply = reply.into_inner();
    // BTreeMap: in key order.
    let keys: Vec<&str> = reply.counts.keys().map(String::as_str).collect();
    assert_eq!(keys, ["level1", "seed"]);
    assert_eq!(reply.child.expect("grown").name, "grown");
    let leaf: Option<Box<with_codec::Leaf>> = reply.leaf;
    assert!(leaf.is_some());
    // Client encode and decode, server decode and encode.
    assert!(CODED.load(Ordering::SeqCst) >= before + 4);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_generated_from_a_descriptor_set_serves() {
    let (server, channel) = serve(
        sockrpc::Server::builder().add_service(from_set::grower_server::GrowerServer::new(Grower)),
    )
    .await;
    let mut client = from_set::grower_client::GrowerClient::new(channel);
    let tree = from_set::Tree {
        name: "root".to_owned(),
        ..Default::default()
    };
    let reply = bounded("grow", client.grow(tree)).await.expect("grow");
    let reply = reply.into_inner();
    assert_eq!(reply.counts, BTreeMap::from([("level0".to_owned(), 0)]));
    assert_eq!(reply.child.expect("grown").name, "grown");
    let leaf: Option<Box<from_set::Leaf>> = reply.leaf;
    assert!(leaf.is_some());
    // The set carried the comments: they are docs again.
    let source = std::fs::read_to_string(concat!(env!("OUT_DIR"), "/opts_from_set/gaps.opts.rs"))
        .expect("generated");
    assert!(source.contains("Adds a level below"), "{source}");
    server.stop().await;
}
