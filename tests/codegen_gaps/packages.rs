//! Child packages named like a service's modules: `gaps.parent` has the service `Foo`, and
//! `gaps.parent.foo_server` / `gaps.parent.foo_client` are packages. The package modules keep
//! the names prost-build gives them; the service's modules move to `foo_server_rpc` /
//! `foo_client_rpc`, as they do for a message module of the same name.

use sockrpc::{Request, Response, Status};

use crate::generated::gaps::parent::foo_client::bar_client::BarClient;
use crate::generated::gaps::parent::foo_client::bar_server::{Bar, BarServer};
use crate::generated::gaps::parent::foo_client_rpc::FooClient;
use crate::generated::gaps::parent::foo_server::Other;
use crate::generated::gaps::parent::foo_server_rpc::{Foo, FooServer};
use crate::generated::gaps::parent::Thing;
use crate::{bounded, serve};

struct Echo;

impl Foo for Echo {
    async fn get(&self, request: Request<Thing>) -> Result<Response<Thing>, Status> {
        Ok(Response::new(request.into_inner()))
    }
}

impl Bar for Echo {
    async fn get(&self, request: Request<Thing>) -> Result<Response<Thing>, Status> {
        let text = format!("bar {}", request.into_inner().text);
        Ok(Response::new(Thing { text }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_beside_child_packages_of_their_module_names_serve() {
    let other = Other {
        text: "child package".to_owned(),
    };
    assert_eq!(other.text, "child package");
    let (server, channel) = serve(
        sockrpc::Server::builder()
            .add_service(FooServer::new(Echo))
            .add_service(BarServer::new(Echo)),
    )
    .await;
    let thing = || Thing {
        text: "t".to_owned(),
    };
    let mut foo = FooClient::new(channel.clone());
    let reply = bounded("Foo.Get", foo.get(thing())).await.expect("Foo.Get");
    assert_eq!(reply.into_inner().text, "t");
    let mut bar = BarClient::new(channel);
    let reply = bounded("Bar.Get", bar.get(thing())).await.expect("Bar.Get");
    assert_eq!(reply.into_inner().text, "bar t");
    server.stop().await;
}
