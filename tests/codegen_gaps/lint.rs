//! Generated code adds no warning of its own to a crate that uses what it declares: a binary
//! built with `#![deny(warnings)]` must build. Every package gets a `FILE_DESCRIPTOR_SET` that
//! few crates use (only those serving reflection); unused, it warned `dead_code` in a binary
//! (whose `pub` items count as unused when nothing uses them), failing such a build. This
//! module is that binary's view: `dead_code` denied, the package's message and service used,
//! its descriptor set not. It fails to compile if any generated item warns.

use sockrpc::{Request, Response, Status};

use crate::{bounded, serve};

#[deny(dead_code)]
#[allow(unreachable_pub, missing_docs)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/gaps_lint/gaps.lint.rs"));
}

use generated::lint_client::LintClient;
use generated::lint_server::{Lint, LintServer};
use generated::Probe;

struct Echo;

impl Lint for Echo {
    async fn check(&self, request: Request<Probe>) -> Result<Response<Probe>, Status> {
        Ok(Response::new(request.into_inner()))
    }
}

#[tokio::test]
async fn a_package_compiled_with_dead_code_denied_serves() {
    let (_server, channel) =
        serve(sockrpc::Server::builder().add_service(LintServer::new(Echo))).await;
    let mut client = LintClient::new(channel);
    let probe = Probe {
        text: "no warnings".to_owned(),
    };
    let answer = bounded("check", client.check(probe.clone())).await;
    assert_eq!(answer.expect("check").into_inner(), probe);
}
