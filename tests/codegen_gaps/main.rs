//! Codegen gaps, each compiled and served: a glob-imported server module whose methods are
//! called (`glob.rs`), child packages named like a service's modules (`packages.rs`), and a
//! service gated by `#[cfg]` attributes given to the builder (`cfg.rs`), and tonic-build's
//! options `codec_path`, `btree_map`, `boxed`, `file_descriptor_set_path` and `compile_fds`
//! (`codec.rs`), a package's code that must not warn where `dead_code` is denied (`lint.rs`),
//! and a tonic user's build: one-path options, two packages in one module beside the module's
//! own descriptor set (`tonic_style.rs`), and the shapes tonic-build's compile tests guard
//! (`shapes.rs`: `Message`, `Drop`, `Clone`, `Service`, `Result`, a service and its rpc of one
//! name), and tonic's `included_service`: a service defined before an import of another
//! package's (`included.rs`), and tonic-build's `use_arc_self`: handlers that take
//! `self: Arc<Self>` (`arc_self.rs`); `skip_protoc_run`, `compile_protos_with_config`,
//! `compile_fds_with_config` and `disable_package_emission` (`set_options.rs`).

mod arc_self;
mod cfg;
mod codec;
mod glob;
mod included;
mod lint;
mod packages;
mod set_options;
mod shapes;
mod tonic_style;

use std::future::Future;
use std::time::Duration;

/// `tests/proto/sockrpc/gaps/{glob,parent,child,child_client}.proto`, as one module tree.
#[allow(dead_code, missing_docs, unreachable_pub, clippy::all, rustdoc::all)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/gaps/gaps.rs"));
}

/// Bound on every single step of these tests.
const STEP: Duration = Duration::from_secs(10);

async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {STEP:?}"))
}

/// Serves `builder` on loopback and connects a channel to it.
async fn serve(
    builder: sockrpc::service::ServerBuilder<tower::layer::util::Identity>,
) -> (sockrpc_tests::serve::Running, sockrpc::Channel) {
    let server = sockrpc_tests::serve::Running::start(builder);
    let channel = bounded(
        "connect",
        sockrpc::Channel::connect(format!("tcp://{}", server.addr)),
    )
    .await
    .expect("connect");
    (server, channel)
}
