//! Nested packages: `brought.deep.a.b.c.Greeter` uses types of its parents (`brought.deep.a`,
//! `brought.deep.a.b`) and of its child (`brought.deep.a.b.c.d`), and shares its name with
//! `brought.deep.a.b.Greeter` and with a `Greeter` in a file without a package. All three on
//! one server, each reached by its own full name. And a package in capitals, `Brought.Caps.V1`,
//! whose module prost-build merges with the lower-case `brought`.

use futures_util::stream::{self, BoxStream, StreamExt};
use sockrpc::{NamedService, Request, Response, Status, Streaming};
use sockrpc_tests::brought as root;
use sockrpc_tests::brought::brought::caps::v1 as a_caps;
use sockrpc_tests::brought::brought::deep::a;

use a::b::c::d::Leaf;
use a::b::Middle;

use crate::support::{bounded, channel, collect, start, Running};

/// Serves the three `Greeter`s.
struct Deep;

impl a::b::c::greeter_server::Greeter for Deep {
    async fn up(&self, request: Request<a::Top>) -> Result<Response<Middle>, Status> {
        let top = request.into_inner();
        let mut middle = top.middle.unwrap_or_default();
        middle.text = format!("up from {}", top.text);
        Ok(Response::new(middle))
    }

    async fn down(&self, request: Request<Middle>) -> Result<Response<Leaf>, Status> {
        let middle = request.into_inner();
        let mut leaf = middle.leaf.unwrap_or_default();
        leaf.depth += 1;
        Ok(Response::new(leaf))
    }

    type HereStream = BoxStream<'static, Result<Leaf, Status>>;

    async fn here(
        &self,
        request: Request<a::b::c::Local>,
    ) -> Result<Response<Self::HereStream>, Status> {
        let text = request.into_inner().text;
        let leaves = (0..3).map(move |depth| {
            Ok(Leaf {
                text: text.clone(),
                depth,
            })
        });
        Ok(Response::new(
            stream::iter(leaves.collect::<Vec<_>>()).boxed(),
        ))
    }

    type NothingStream = BoxStream<'static, Result<(), Status>>;

    async fn nothing(
        &self,
        request: Request<Streaming<()>>,
    ) -> Result<Response<Self::NothingStream>, Status> {
        Ok(Response::new(request.into_inner().boxed()))
    }
}

impl a::b::greeter_server::Greeter for Deep {
    async fn up(&self, request: Request<Middle>) -> Result<Response<Middle>, Status> {
        let mut middle = request.into_inner();
        middle.text = format!("a.b {}", middle.text);
        Ok(Response::new(middle))
    }
}

impl root::greeter_server::Greeter for Deep {
    async fn up(&self, request: Request<Leaf>) -> Result<Response<Leaf>, Status> {
        let mut leaf = request.into_inner();
        leaf.text = format!("root {}", leaf.text);
        Ok(Response::new(leaf))
    }
}

fn start_deep() -> Running {
    start(
        sockrpc::Server::builder()
            .add_service(a::b::c::greeter_server::GreeterServer::new(Deep))
            .add_service(a::b::greeter_server::GreeterServer::new(Deep))
            .add_service(root::greeter_server::GreeterServer::new(Deep)),
    )
}

fn leaf(text: &str, depth: i32) -> Leaf {
    Leaf {
        text: text.to_owned(),
        depth,
    }
}

#[tokio::test]
async fn one_service_name_in_three_packages() {
    assert_eq!(
        <a::b::c::greeter_server::GreeterServer<Deep> as NamedService>::NAME,
        "brought.deep.a.b.c.Greeter"
    );
    assert_eq!(
        <a::b::greeter_server::GreeterServer<Deep> as NamedService>::NAME,
        "brought.deep.a.b.Greeter"
    );
    assert_eq!(
        <root::greeter_server::GreeterServer<Deep> as NamedService>::NAME,
        "Greeter"
    );
    let server = start_deep();
    let channel = channel(&server).await;

    let middle = Middle {
        text: "m".to_owned(),
        leaf: Some(leaf("l", 1)),
    };
    let mut abc = a::b::c::greeter_client::GreeterClient::new(channel.clone());
    let top = a::Top {
        text: "top".to_owned(),
        middle: Some(middle.clone()),
    };
    let up = bounded("abc up", abc.up(top))
        .await
        .expect("abc up")
        .into_inner();
    assert_eq!(up.text, "up from top");
    assert_eq!(up.leaf, Some(leaf("l", 1)));

    let mut ab = a::b::greeter_client::GreeterClient::new(channel.clone());
    let up = bounded("ab up", ab.up(middle))
        .await
        .expect("ab up")
        .into_inner();
    assert_eq!(up.text, "a.b m");

    let mut bare = root::greeter_client::GreeterClient::new(channel);
    let up = bounded("root up", bare.up(leaf("x", 0)))
        .await
        .expect("root up")
        .into_inner();
    assert_eq!(up, leaf("root x", 0));
}

#[tokio::test]
async fn types_of_parent_and_child_packages_in_every_shape() {
    let server = start_deep();
    let mut client = a::b::c::greeter_client::GreeterClient::new(channel(&server).await);

    let middle = Middle {
        text: String::new(),
        leaf: Some(leaf("l", 4)),
    };
    let down = bounded("down", client.down(middle))
        .await
        .expect("down")
        .into_inner();
    assert_eq!(down, leaf("l", 5));

    let local = a::b::c::Local {
        text: "here".to_owned(),
    };
    let leaves = bounded("here", client.here(local))
        .await
        .expect("here")
        .into_inner();
    let leaves = collect("here", leaves).await;
    assert_eq!(leaves, [leaf("here", 0), leaf("here", 1), leaf("here", 2)]);

    let nothing = bounded("nothing", client.nothing(stream::iter([(), (), ()])))
        .await
        .expect("nothing")
        .into_inner();
    assert_eq!(collect("nothing", nothing).await.len(), 3);
}

/// `Brought.Caps.V1.API`: a package and a service in capitals. prost-build's module is
/// `brought::caps::v1`, merged with the lower-case packages' `brought`; the service keeps its
/// name as written on the wire.
struct Caps;

impl a_caps::api_server::Api for Caps {
    async fn get_http(
        &self,
        request: Request<a_caps::GetHttpRequest>,
    ) -> Result<Response<sockrpc_tests::brought::brought::std::v1::String>, Status> {
        let request = request.into_inner();
        Ok(Response::new(
            sockrpc_tests::brought::brought::std::v1::String {
                text: format!("{} {}", request.http_code, request.url),
            },
        ))
    }
}

#[tokio::test]
async fn a_package_in_capitals() {
    assert_eq!(
        <a_caps::api_server::ApiServer<Caps> as NamedService>::NAME,
        "Brought.Caps.V1.API"
    );
    let server =
        start(sockrpc::Server::builder().add_service(a_caps::api_server::ApiServer::new(Caps)));
    let mut client = a_caps::api_client::ApiClient::new(channel(&server).await);
    let request = a_caps::GetHttpRequest {
        url: "/x".to_owned(),
        http_code: 200,
    };
    let text = bounded("get_http", client.get_http(request))
        .await
        .expect("get_http")
        .into_inner();
    assert_eq!(text.text, "200 /x");
}
