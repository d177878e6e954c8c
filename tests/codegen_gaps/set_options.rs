//! tonic-build's ways of generating from a descriptor set or a prost-build `Config`
//! (`tests/build.rs`): `skip_protoc_run` reads the set `file_descriptor_set_path` names
//! instead of the `.proto` files (given one that does not exist, so a build that read them
//! would fail), and `compile_protos_with_config` / `compile_fds_with_config` apply the
//! `Config`'s settings, with `disable_package_emission` naming the service without its package.

use std::collections::BTreeMap;
use std::sync::Arc;

use sockrpc::{Request, Response, Status};

use crate::{bounded, serve};

#[allow(dead_code, missing_docs, unreachable_pub, clippy::all, rustdoc::all)]
mod skipped {
    include!(concat!(env!("OUT_DIR"), "/opts_skip/gaps.opts.rs"));
}

#[allow(dead_code, missing_docs, unreachable_pub, clippy::all, rustdoc::all)]
mod protos_config {
    include!(concat!(env!("OUT_DIR"), "/opts_protos_config/gaps.opts.rs"));
}

#[allow(dead_code, missing_docs, unreachable_pub, clippy::all, rustdoc::all)]
mod fds_config {
    include!(concat!(env!("OUT_DIR"), "/opts_fds_config/gaps.opts.rs"));
}

struct Grower;

impl skipped::grower_server::Grower for Grower {
    async fn grow(
        &self,
        request: Request<skipped::Tree>,
    ) -> Result<Response<skipped::Tree>, Status> {
        let mut tree = request.into_inner();
        tree.counts.insert("grown".to_owned(), 1);
        tree.leaf = Some(Box::default());
        Ok(Response::new(tree))
    }
}

#[tokio::test]
async fn skip_protoc_run_generates_from_the_set_file() {
    let (server, channel) = serve(
        sockrpc::Server::builder().add_service(skipped::grower_server::GrowerServer::new(Grower)),
    )
    .await;
    let mut client = skipped::grower_client::GrowerClient::new(channel);
    let tree = skipped::Tree {
        name: "root".to_owned(),
        ..Default::default()
    };
    let reply = bounded("grow", client.grow(tree))
        .await
        .expect("grow")
        .into_inner();
    // The builder's own settings held: `BTreeMap` counts, a boxed leaf.
    assert_eq!(reply.counts, BTreeMap::from([("grown".to_owned(), 1)]));
    let leaf: Option<Box<skipped::Leaf>> = reply.leaf;
    assert!(leaf.is_some());
    // The set carried the comments.
    let source = std::fs::read_to_string(concat!(env!("OUT_DIR"), "/opts_skip/gaps.opts.rs"))
        .expect("generated");
    assert!(source.contains("Adds a level below"), "{source}");
    server.stop().await;
}

fn ordered<T: PartialOrd>(_: &T) {}

#[test]
fn the_configs_settings_and_no_package_apply_from_protos_and_from_a_set() {
    // `#[derive(PartialOrd)]` from the `Config`'s `type_attribute`: these compile only with it.
    ordered(&protos_config::Leaf::default());
    ordered(&fds_config::Leaf::default());
    // `boxed` from the builder, over the `Config`.
    let _: Option<Box<protos_config::Leaf>> = protos_config::Tree::default().leaf;
    let _: Option<Box<fds_config::Leaf>> = fds_config::Tree::default().leaf;
    type ProtosServer = protos_config::grower_server::GrowerServer<
        Arc<dyn protos_config::grower_server::DynGrower>,
    >;
    type FdsServer =
        fds_config::grower_server::GrowerServer<Arc<dyn fds_config::grower_server::DynGrower>>;
    assert_eq!(
        <ProtosServer as sockrpc::codegen::NamedService>::NAME,
        "Grower"
    );
    assert_eq!(
        <FdsServer as sockrpc::codegen::NamedService>::NAME,
        "Grower"
    );
}
