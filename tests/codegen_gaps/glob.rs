//! `use greeter_server::*;` brings the trait and its object-safe twin `DynGreeter` into scope;
//! calling a handler method must still name one method, on an implementation and on
//! `Arc<dyn DynGreeter>` alike.

use std::sync::Arc;

use futures_util::stream::{self, BoxStream, StreamExt};
use sockrpc::{Request, Response, Status};

use crate::generated::gaps::glob::greeter_client::GreeterClient;
use crate::generated::gaps::glob::greeter_server::*;
use crate::generated::gaps::glob::Hello;
use crate::{bounded, serve};

struct Hi;

impl Greeter for Hi {
    async fn say_hello(&self, request: Request<Hello>) -> Result<Response<Hello>, Status> {
        let text = format!("hello {}", request.into_inner().text);
        Ok(Response::new(Hello { text }))
    }

    type WatchStream = BoxStream<'static, Result<Hello, Status>>;

    async fn watch(&self, request: Request<Hello>) -> Result<Response<Self::WatchStream>, Status> {
        let text = request.into_inner().text;
        let items = (0..2).map(move |i| {
            Ok(Hello {
                text: format!("{text} {i}"),
            })
        });
        Ok(Response::new(stream::iter(items).boxed()))
    }
}

fn hello(text: &str) -> Request<Hello> {
    Request::new(Hello {
        text: text.to_owned(),
    })
}

#[tokio::test]
async fn glob_imported_handler_methods_are_called_by_name() {
    let direct = Hi.say_hello(hello("direct")).await.expect("say_hello");
    assert_eq!(direct.into_inner().text, "hello direct");
    let mut watched = Hi.watch(hello("w")).await.expect("watch").into_inner();
    assert_eq!(watched.next().await.expect("one").expect("ok").text, "w 0");

    let boxed: Arc<dyn DynGreeter> = Arc::new(Hi);
    let reply = boxed.say_hello(hello("dyn")).await.expect("say_hello");
    assert_eq!(reply.into_inner().text, "hello dyn");
    let watched = boxed.watch(hello("d")).await.expect("watch").into_inner();
    let texts: Vec<String> = watched.map(|m| m.expect("ok").text).collect().await;
    assert_eq!(texts, ["d 0", "d 1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_glob_imported_server_serves() {
    let boxed: Arc<dyn DynGreeter> = Arc::new(Hi);
    let (server, channel) =
        serve(sockrpc::Server::builder().add_service(GreeterServer::new(boxed))).await;
    let mut client = GreeterClient::new(channel);
    let reply = bounded(
        "say_hello",
        client.say_hello(Hello {
            text: "net".to_owned(),
        }),
    )
    .await
    .expect("say_hello");
    assert_eq!(reply.into_inner().text, "hello net");
    server.stop().await;
}
