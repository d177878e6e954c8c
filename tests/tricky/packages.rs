//! Types and services from other packages (`a.b.v1`, the keyword-named `kw.type.v1`), nested
//! types, field features (`optional`, `oneof`, `map`, enums), messages named like the generated
//! modules, and the descriptor set every package module carries.

use std::collections::HashMap;

use futures_util::stream::{self, BoxStream, StreamExt};
use sockrpc::codegen::prost_types::Timestamp;
use sockrpc::{Code, NamedService, Request, Response, Status, Streaming};

use sockrpc_tests::tricky::a::b::v1 as abv1;
use sockrpc_tests::tricky::kw::r#type::v1 as kw;
use sockrpc_tests::tricky::sockrpc::test::tricky as t;

use abv1::nested_client::NestedClient;
use abv1::nested_server::{Nested, NestedServer};
use abv1::outer::inner::Kind as InnerKind;
use abv1::outer::Choice;
use abv1::{Level, Outer};
use kw::match_client::MatchClient;
use kw::match_server::{Match, MatchServer};
use sockrpc_tests::tricky::Bare;
// prost took `echo_client` / `echo_server` for the nested items of the messages `EchoClient` and
// `EchoServer`; the service `Echo`'s modules moved to `_rpc`.
use t::echo_client::Via;
use t::echo_client_rpc::EchoClient as EchoRpcClient;
use t::echo_server::Mode;
use t::echo_server_rpc::Echo;
use t::fancy::Pick;
use t::{Color, Fancy};

use crate::support::{bounded, channel, collect, msg, start_all};

/// `Echo`: messages from other packages, nested types, field features.
pub(crate) struct Echoer;

impl Echo for Echoer {
    async fn echo(&self, request: Request<abv1::Echo>) -> Result<Response<abv1::Echo>, Status> {
        Ok(Response::new(request.into_inner()))
    }

    async fn client(
        &self,
        request: Request<t::EchoClient>,
    ) -> Result<Response<t::EchoServer>, Status> {
        let request = request.into_inner();
        let text = match request.via {
            Some(Via::Host(host)) => format!("{} via {host}", request.text),
            Some(Via::Port(port)) => format!("{} via :{port}", request.text),
            None => request.text,
        };
        Ok(Response::new(t::EchoServer {
            text,
            mode: Mode::Loud as i32,
        }))
    }

    async fn cross(&self, request: Request<Outer>) -> Result<Response<abv1::outer::Inner>, Status> {
        unwrap_outer(request.into_inner())
    }

    async fn bare(&self, request: Request<Bare>) -> Result<Response<Bare>, Status> {
        Ok(Response::new(Bare {
            text: format!("bare {}", request.into_inner().text),
        }))
    }

    async fn fancy(&self, request: Request<Fancy>) -> Result<Response<Fancy>, Status> {
        let mut fancy = request.into_inner();
        fancy.maybe = fancy.maybe.map(|m| m.to_uppercase());
        fancy.pick = match fancy.pick {
            Some(Pick::Id(id)) => Some(Pick::Name(format!("#{id}"))),
            Some(Pick::Name(name)) => Some(Pick::Id(name.len() as u32)),
            Some(Pick::Msg(m)) => Some(Pick::Msg(msg(&m.text, m.n + 1))),
            None => None,
        };
        fancy
            .counts
            .insert("seen".to_owned(), fancy.counts.len() as i64);
        fancy.colors.push(fancy.color);
        fancy.color = Color::Green as i32;
        fancy.level = Some(Level::High as i32);
        Ok(Response::new(fancy))
    }

    async fn keyword(
        &self,
        request: Request<kw::Self_>,
    ) -> Result<Response<kw::self_::Super>, Status> {
        Matcher.self_(request).await
    }

    async fn level(&self, request: Request<abv1::outer::Inner>) -> Result<Response<Fancy>, Status> {
        let inner = request.into_inner();
        let level = match inner.kind() {
            InnerKind::Fancy => Level::High,
            _ => Level::Low,
        };
        Ok(Response::new(Fancy {
            maybe: Some(inner.text),
            level: Some(level as i32),
            ..Default::default()
        }))
    }
}

/// `kw.type.v1.Match`: keyword package, service, rpcs and messages.
pub(crate) struct Matcher;

impl Match for Matcher {
    async fn self_(
        &self,
        request: Request<kw::Self_>,
    ) -> Result<Response<kw::self_::Super>, Status> {
        let request = request.into_inner();
        let mut inner = request.super_.unwrap_or_default();
        inner.text = format!("{}/{}", request.text, inner.text);
        Ok(Response::new(inner))
    }

    type RefStream = BoxStream<'static, Result<kw::Self_, Status>>;

    async fn r#ref(
        &self,
        request: Request<Streaming<kw::Self_>>,
    ) -> Result<Response<Self::RefStream>, Status> {
        let answers = request.into_inner().map(|m| {
            let m = m?;
            Ok(kw::Self_ {
                text: m.text.chars().rev().collect(),
                super_: None,
            })
        });
        Ok(Response::new(answers.boxed()))
    }
}

fn unwrap_outer(outer: Outer) -> Result<Response<abv1::outer::Inner>, Status> {
    outer
        .inner
        .map(Response::new)
        .ok_or_else(|| Status::invalid_argument("no inner"))
}

/// `a.b.v1.Nested`.
pub(crate) struct Unwrapper;

impl Nested for Unwrapper {
    async fn unwrap(
        &self,
        request: Request<Outer>,
    ) -> Result<Response<abv1::outer::Inner>, Status> {
        unwrap_outer(request.into_inner())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_packages_nested_types_and_field_features() {
    let server = start_all();
    let mut echo = EchoRpcClient::new(channel(&server).await);

    let reply = bounded(
        "Echo",
        echo.echo(abv1::Echo {
            text: "same name".to_owned(),
        }),
    )
    .await
    .expect("Echo")
    .into_inner();
    assert_eq!(reply.text, "same name");

    let reply = bounded(
        "Client",
        echo.client(t::EchoClient {
            text: "struct names".to_owned(),
            via: Some(Via::Port(8080)),
        }),
    )
    .await
    .expect("Client")
    .into_inner();
    assert_eq!(reply.text, "struct names via :8080");
    assert_eq!(reply.mode(), Mode::Loud);

    let inner = abv1::outer::Inner {
        text: "deep".to_owned(),
        kind: InnerKind::Fancy as i32,
    };
    let outer = Outer {
        inner: Some(inner.clone()),
        many: vec![inner.clone(); 2],
        by_name: HashMap::from([("k".to_owned(), inner.clone())]),
        choice: Some(Choice::Nested(inner.clone())),
        at: Some(Timestamp {
            seconds: 5,
            nanos: 0,
        }),
        r#type: "keyword field".to_owned(),
    };
    let reply = bounded("Cross", echo.cross(outer.clone()))
        .await
        .expect("Cross")
        .into_inner();
    assert_eq!(reply, inner);
    let err = bounded("Cross without inner", echo.cross(Outer::default()))
        .await
        .expect_err("Cross without inner fails");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(err.message(), "no inner");

    let reply = bounded(
        "Bare",
        echo.bare(Bare {
            text: "b".to_owned(),
        }),
    )
    .await
    .expect("Bare")
    .into_inner();
    assert_eq!(reply.text, "bare b");

    let reply = bounded(
        "Fancy",
        echo.fancy(Fancy {
            maybe: Some("m".to_owned()),
            pick: Some(Pick::Id(42)),
            counts: HashMap::from([("a".to_owned(), 1)]),
            color: Color::Red as i32,
            colors: vec![Color::Green as i32],
            level: None,
        }),
    )
    .await
    .expect("Fancy")
    .into_inner();
    assert_eq!(reply.maybe.as_deref(), Some("M"));
    assert_eq!(reply.pick, Some(Pick::Name("#42".to_owned())));
    assert_eq!(
        reply.counts,
        HashMap::from([("a".to_owned(), 1), ("seen".to_owned(), 1)])
    );
    assert_eq!(reply.color(), Color::Green);
    assert_eq!(reply.colors, [Color::Green as i32, Color::Red as i32]);
    assert_eq!(reply.level(), Level::High);
    // An unset `optional` stays unset; a oneof message round-trips.
    let reply = bounded(
        "Fancy (unset)",
        echo.fancy(Fancy {
            pick: Some(Pick::Msg(msg("in", 1))),
            ..Default::default()
        }),
    )
    .await
    .expect("Fancy unset")
    .into_inner();
    assert_eq!(reply.maybe, None);
    assert_eq!(reply.pick, Some(Pick::Msg(msg("in", 2))));

    let reply = bounded("Level", echo.level(inner.clone()))
        .await
        .expect("Level")
        .into_inner();
    assert_eq!(reply.maybe.as_deref(), Some("deep"));
    assert_eq!(reply.level(), Level::High);

    // Types from the package with a keyword segment, named like keywords.
    let self_ = kw::Self_ {
        text: "me".to_owned(),
        super_: Some(kw::self_::Super {
            text: "up".to_owned(),
        }),
    };
    let reply = bounded("Keyword", echo.keyword(self_.clone()))
        .await
        .expect("Keyword")
        .into_inner();
    assert_eq!(reply.text, "me/up");
    let mut matcher = MatchClient::new(channel(&server).await);
    let reply = bounded("Match.Self", matcher.self_(self_.clone()))
        .await
        .expect("Match.Self")
        .into_inner();
    assert_eq!(reply.text, "me/up");
    let refs = bounded(
        "Match.Ref",
        matcher.r#ref(stream::iter([self_.clone(), self_])),
    )
    .await
    .expect("Match.Ref")
    .into_inner();
    let texts: Vec<String> = collect("Match.Ref stream", refs)
        .await
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts, ["em", "em"]);
    assert_eq!(
        <MatchServer<Matcher> as NamedService>::NAME,
        "kw.type.v1.Match"
    );

    // The service of the nested package, under its wire name.
    let mut nested = NestedClient::new(channel(&server).await);
    let reply = bounded("Unwrap", nested.unwrap(outer))
        .await
        .expect("Unwrap")
        .into_inner();
    assert_eq!(reply, inner);
    assert_eq!(
        <NestedServer<Unwrapper> as NamedService>::NAME,
        "a.b.v1.Nested"
    );
    server.stop().await;
}

/// Every package module carries its encoded descriptors, the keyword-named package and the file
/// without a package included (prost names the files `kw.r#type.v1.rs` and `_.rs`).
#[test]
fn every_package_carries_its_descriptor_set() {
    use prost::Message;
    use sockrpc::codegen::prost_types::FileDescriptorSet;
    for (package, bytes, file) in [
        ("kw.type.v1", kw::FILE_DESCRIPTOR_SET, "kw/type/v1/kw.proto"),
        (
            "(none)",
            sockrpc_tests::tricky::FILE_DESCRIPTOR_SET,
            "nopkg/nopkg.proto",
        ),
        ("a.b.v1", abv1::FILE_DESCRIPTOR_SET, "a/b/v1/types.proto"),
        (
            "sockrpc.test.tricky",
            t::FILE_DESCRIPTOR_SET,
            "sockrpc/test/tricky.proto",
        ),
    ] {
        let set = FileDescriptorSet::decode(bytes)
            .unwrap_or_else(|e| panic!("{package}: descriptor set does not decode: {e}"));
        let names: Vec<&str> = set.file.iter().map(|f| f.name()).collect();
        assert_eq!(names.last(), Some(&file), "{package}: {names:?}");
    }
}

/// `include_proto!` takes the keyword-named package as written in the `.proto`
/// (`sockrpc_tests::kw_type`), and includes the same code as prost-build's `kw.r#type.v1.rs`.
#[test]
fn include_proto_takes_a_keyword_package_as_written() {
    use sockrpc_tests::kw_type;
    let message = kw_type::Self_ {
        text: "me".to_owned(),
        super_: Some(kw_type::self_::Super {
            text: "up".to_owned(),
        }),
    };
    assert_eq!(message.super_.map(|s| s.text).as_deref(), Some("up"));
    assert_eq!(
        <kw_type::match_server::MatchServer<std::sync::Arc<dyn kw_type::match_server::DynMatch>> as NamedService>::NAME,
        "kw.type.v1.Match"
    );
    assert_eq!(kw_type::FILE_DESCRIPTOR_SET, kw::FILE_DESCRIPTOR_SET);
    let source = include_str!(concat!(env!("OUT_DIR"), "/kw.type.v1.rs"));
    assert!(
        source.ends_with("include!(\"kw.r#type.v1.rs\");\n"),
        "{source}"
    );
}
