//! `brought.names.v2beta.Empties`: every call shape over `google.protobuf.Empty` (`()` in Rust),
//! deprecated rpcs (unary and bidi, over `Any`, `Value` and `ListValue`), a comment full of
//! Markdown rustdoc warns about, and an enum with aliases (`allow_alias`).

use futures_util::stream::{self, BoxStream, StreamExt};
use sockrpc::codegen::prost_types::{value::Kind, Any, ListValue, Timestamp, Value};
use sockrpc::{Request, Response, Status, Streaming};
use sockrpc_tests::brought::brought::names::v2beta as n;
use sockrpc_tests::brought::brought::std::v1 as s;

use n::empties_client::EmptiesClient;
use n::empties_server::{Empties, EmptiesServer};

use crate::support::{bounded, channel, collect, start};

struct Hollow;

impl Empties for Hollow {
    async fn unary(&self, _: Request<()>) -> Result<Response<()>, Status> {
        Ok(Response::new(()))
    }

    type ManyStream = BoxStream<'static, Result<(), Status>>;

    async fn many(&self, _: Request<()>) -> Result<Response<Self::ManyStream>, Status> {
        Ok(Response::new(
            stream::iter([Ok(()), Ok(()), Ok(())]).boxed(),
        ))
    }

    async fn count(&self, request: Request<Streaming<()>>) -> Result<Response<Timestamp>, Status> {
        let mut empties = request.into_inner();
        let mut seconds = 0;
        while empties.message().await?.is_some() {
            seconds += 1;
        }
        Ok(Response::new(Timestamp { seconds, nanos: 0 }))
    }

    type EchoStream = BoxStream<'static, Result<(), Status>>;

    async fn echo(
        &self,
        request: Request<Streaming<()>>,
    ) -> Result<Response<Self::EchoStream>, Status> {
        Ok(Response::new(request.into_inner().boxed()))
    }

    async fn old(&self, request: Request<Any>) -> Result<Response<Any>, Status> {
        let mut any = request.into_inner();
        any.type_url.push_str("#old");
        Ok(Response::new(any))
    }

    type OldStreamStream = BoxStream<'static, Result<ListValue, Status>>;

    async fn old_stream(
        &self,
        request: Request<Streaming<Value>>,
    ) -> Result<Response<Self::OldStreamStream>, Status> {
        let lists = request.into_inner().map(|value| {
            let value = value?;
            Ok(ListValue {
                values: vec![value.clone(), value],
            })
        });
        Ok(Response::new(lists.boxed()))
    }

    async fn flip(&self, request: Request<s::Holder>) -> Result<Response<s::Holder>, Status> {
        let mut holder = request.into_inner();
        let result = holder.result.get_or_insert_with(Default::default);
        let flipped = match result.switch() {
            s::Switch::On => s::Switch::Off,
            s::Switch::Off => s::Switch::On,
            s::Switch::Unspecified => s::Switch::Unspecified,
        };
        result.switch = flipped as i32;
        Ok(Response::new(holder))
    }
}

#[tokio::test]
async fn every_call_shape_over_empty() {
    let server = start(sockrpc::Server::builder().add_service(EmptiesServer::new(Hollow)));
    let mut client = EmptiesClient::new(channel(&server).await);

    bounded("unary", client.unary(())).await.expect("unary");
    let many = bounded("many", client.many(()))
        .await
        .expect("many")
        .into_inner();
    assert_eq!(collect("many", many).await.len(), 3);
    let counted = bounded("count", client.count(stream::iter([(), (), (), ()])))
        .await
        .expect("count")
        .into_inner();
    assert_eq!(counted.seconds, 4);
    let none = bounded("count", client.count(stream::iter(Vec::<()>::new())))
        .await
        .expect("count nothing")
        .into_inner();
    assert_eq!(none.seconds, 0);
    let echoed = bounded("echo", client.echo(stream::iter([(), ()])))
        .await
        .expect("echo")
        .into_inner();
    assert_eq!(collect("echo", echoed).await, [(), ()]);
}

#[tokio::test]
#[allow(deprecated)]
async fn deprecated_rpcs_still_answer() {
    let server = start(sockrpc::Server::builder().add_service(EmptiesServer::new(Hollow)));
    let mut client = EmptiesClient::new(channel(&server).await);

    let any = Any {
        type_url: "type.example.com/x".to_owned(),
        value: vec![1, 2],
    };
    let old = bounded("old", client.old(any))
        .await
        .expect("old")
        .into_inner();
    assert_eq!(old.type_url, "type.example.com/x#old");
    assert_eq!(old.value, [1, 2]);

    let values = [Kind::NumberValue(1.5), Kind::StringValue("s".to_owned())]
        .map(|kind| Value { kind: Some(kind) });
    let lists = bounded(
        "old stream",
        client.old_stream(stream::iter(values.clone())),
    )
    .await
    .expect("old stream")
    .into_inner();
    let lists = collect("old stream", lists).await;
    assert_eq!(lists.len(), 2);
    for (list, value) in lists.iter().zip(&values) {
        assert_eq!(list.values, [value.clone(), value.clone()]);
    }
}

#[tokio::test]
async fn enum_aliases_cross_the_wire() {
    let server = start(sockrpc::Server::builder().add_service(EmptiesServer::new(Hollow)));
    let mut client = EmptiesClient::new(channel(&server).await);
    // prost-build keeps the first name of each number (`SWITCH_ON`, not `SWITCH_ENABLED`), as
    // with tonic; the number crosses the wire either way.
    let on = s::Switch::try_from(1).expect("SWITCH_ON and SWITCH_ENABLED are 1");
    let holder = s::Holder {
        result: Some(s::holder::Result { switch: on as i32 }),
        greeter: Some(s::holder::Greeter {
            name: "kept".to_owned(),
        }),
    };
    let flipped = bounded("flip", client.flip(holder))
        .await
        .expect("flip")
        .into_inner();
    let switch = flipped.result.expect("result").switch();
    assert_eq!(switch, s::Switch::Off);
    assert_eq!(s::Switch::from_str_name("SWITCH_OFF"), Some(s::Switch::Off));
    assert_eq!(flipped.greeter.expect("greeter").name, "kept");
}
