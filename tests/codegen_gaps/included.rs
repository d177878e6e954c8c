//! tonic's `included_service`: a file that defines a service and then imports a file of another
//! package defining a service of its own (`tests/proto/sockrpc/gaps/includer.proto`), compiled
//! alone. Its own service must come out whole, not be lost to the imported package's, and
//! serve.

use sockrpc::{Request, Response, Server, Status};

use crate::{bounded, serve};

#[allow(dead_code, missing_docs, unreachable_pub, clippy::all, rustdoc::all)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/gaps_included/gaps.includer.rs"));
}

use generated::top_service_client::TopServiceClient;
use generated::top_service_server::{TopService, TopServiceServer};
use generated::Top;

struct Echo;

impl TopService for Echo {
    async fn top_method(&self, request: Request<Top>) -> Result<Response<Top>, Status> {
        Ok(Response::new(request.into_inner()))
    }
}

#[tokio::test]
async fn the_importing_files_service_serves() {
    let (_server, channel) =
        serve(Server::builder().add_service(TopServiceServer::new(Echo))).await;
    let mut client = TopServiceClient::new(channel);
    let top = Top {
        note: "whole".to_owned(),
    };
    let answer = bounded("top_method", client.top_method(top.clone())).await;
    assert_eq!(answer.expect("top_method").into_inner(), top);
}
