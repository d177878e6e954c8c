//! `crate.self.v1`'s service `super` (keyword package segments, service and rpc names) and
//! `crlf.v1`'s `Lines` (a file with a byte order mark and CRLF line endings).

use futures_util::stream::{self, BoxStream, StreamExt};
use sockrpc::{NamedService, Request, Response, Status, Streaming};
use sockrpc_tests::bounded::{bounded, channel, collect};
use sockrpc_tests::more::crate_::self_::v1 as kw;
use sockrpc_tests::more::crlf::v1 as crlf;
use sockrpc_tests::serve::Running;

use crlf::lines_client::LinesClient;
use crlf::lines_server::{Lines, LinesServer};
use kw::super_client::SuperClient;
use kw::super_server::{Super, SuperServer};

struct Keywords;

impl Super for Keywords {
    async fn crate_(&self, request: Request<kw::Self_>) -> Result<Response<kw::Self_>, Status> {
        let mut this = request.into_inner();
        this.r#async += 1;
        this.r#await = !this.r#await;
        this.r#match.push("crate".to_owned());
        Ok(Response::new(this))
    }

    async fn self_(&self, request: Request<kw::Option>) -> Result<Response<kw::Option>, Status> {
        let some = match request.into_inner().some {
            Some(kw::option::Some::None(text)) => kw::option::Some::Self_(kw::Self_ {
                r#type: text,
                ..Default::default()
            }),
            Some(kw::option::Some::Self_(this)) => kw::option::Some::None(this.r#type),
            None => return Err(Status::invalid_argument("no arm set")),
        };
        Ok(Response::new(kw::Option { some: Some(some) }))
    }

    type GenStream = BoxStream<'static, Result<kw::Box, Status>>;

    async fn r#gen(&self, request: Request<kw::Box>) -> Result<Response<Self::GenStream>, Status> {
        let boxed = request.into_inner();
        let copies = vec![Ok(boxed.clone()), Ok(boxed)];
        Ok(Response::new(stream::iter(copies).boxed()))
    }

    async fn r#try(
        &self,
        request: Request<Streaming<kw::self_::Super>>,
    ) -> Result<Response<kw::self_::Super>, Status> {
        let mut all = request.into_inner();
        let mut joined = Vec::new();
        while let Some(one) = all.message().await? {
            joined.push(one.crate_);
        }
        Ok(Response::new(kw::self_::Super {
            crate_: joined.join("+"),
        }))
    }

    type dynStream = BoxStream<'static, Result<kw::Box, Status>>;

    async fn r#dyn(
        &self,
        request: Request<Streaming<kw::Box>>,
    ) -> Result<Response<Self::dynStream>, Status> {
        let echoed = request.into_inner().map(|one| {
            one.map(|mut b| {
                b.r#gen = b.r#gen.iter().rev().copied().collect();
                b
            })
        });
        Ok(Response::new(echoed.boxed()))
    }

    async fn names(&self, request: Request<kw::Names>) -> Result<Response<kw::Names>, Status> {
        Ok(Response::new(request.into_inner()))
    }
}

struct Windows;

impl Lines for Windows {
    async fn echo(&self, request: Request<crlf::Line>) -> Result<Response<crlf::Line>, Status> {
        Ok(Response::new(request.into_inner()))
    }

    type SplitStream = BoxStream<'static, Result<crlf::Line, Status>>;

    async fn split(
        &self,
        request: Request<crlf::Line>,
    ) -> Result<Response<Self::SplitStream>, Status> {
        let words: Vec<_> = request
            .into_inner()
            .text
            .split(' ')
            .map(|w| Ok(crlf::Line { text: w.to_owned() }))
            .collect();
        Ok(Response::new(stream::iter(words).boxed()))
    }
}

fn start() -> Running {
    Running::start(
        sockrpc::Server::builder()
            .add_service(SuperServer::new(Keywords))
            .add_service(LinesServer::new(Windows)),
    )
}

#[tokio::test]
async fn keyword_package_service_and_rpcs_answer_every_shape() {
    // The wire names are the .proto's, whatever Rust had to call them.
    assert_eq!(
        <SuperServer<Keywords> as NamedService>::NAME,
        "crate.self.v1.super"
    );
    assert_eq!(
        <LinesServer<Windows> as NamedService>::NAME,
        "crlf.v1.Lines"
    );
    let server = start();
    let mut client = SuperClient::new(channel(&server).await);

    let this = kw::Self_ {
        r#type: "t".to_owned(),
        r#async: 1,
        r#await: false,
        r#match: vec!["m".to_owned()],
        super_: Some(kw::self_::Super {
            crate_: "c".to_owned(),
        }),
    };
    let back = bounded("crate", client.crate_(this.clone())).await;
    let back = back.expect("crate").into_inner();
    assert_eq!((back.r#async, back.r#await), (2, true));
    assert_eq!(back.r#match, ["m", "crate"]);
    assert_eq!(back.super_, this.super_);

    let none = kw::Option {
        some: Some(kw::option::Some::None("x".to_owned())),
    };
    let back = bounded("self", client.self_(none)).await;
    let back = back.expect("self").into_inner();
    let Some(kw::option::Some::Self_(inner)) = back.some.clone() else {
        panic!("answered {back:?}");
    };
    assert_eq!(inner.r#type, "x");
    let back = bounded("self again", client.self_(back)).await;
    let back = back.expect("self again").into_inner();
    assert_eq!(back.some, Some(kw::option::Some::None("x".to_owned())));

    let boxed = kw::Box {
        r#gen: bytes::Bytes::from_static(b"ab"),
    };
    let answers = bounded("gen", client.r#gen(boxed.clone())).await;
    let answers = collect("gen", answers.expect("gen").into_inner()).await;
    assert_eq!(answers, [boxed.clone(), boxed.clone()]);

    let supers = ["a", "b", "c"].map(|c| kw::self_::Super {
        crate_: c.to_owned(),
    });
    let joined = bounded("try", client.r#try(stream::iter(supers))).await;
    assert_eq!(joined.expect("try").into_inner().crate_, "a+b+c");

    let answers = bounded("dyn", client.r#dyn(stream::iter([boxed.clone(), boxed]))).await;
    let answers = collect("dyn", answers.expect("dyn").into_inner()).await;
    let texts: Vec<_> = answers.iter().map(|b| b.r#gen.as_ref()).collect();
    assert_eq!(texts, [b"ba", b"ba"]);
    server.stop().await;
}

#[tokio::test]
async fn a_crlf_file_with_a_byte_order_mark_serves_and_keeps_its_comments() {
    let server = start();
    let mut client = LinesClient::new(channel(&server).await);
    let line = crlf::Line {
        text: "one two".to_owned(),
    };
    let back = bounded("echo", client.echo(line.clone())).await;
    assert_eq!(back.expect("echo").into_inner(), line);
    let words = bounded("split", client.split(line)).await;
    let words = collect("split", words.expect("split").into_inner()).await;
    let words: Vec<_> = words.into_iter().map(|l| l.text).collect();
    assert_eq!(words, ["one", "two"]);
    server.stop().await;

    // The comments came through without their CRs (rustc refuses a bare CR in a doc comment).
    let generated = include_str!(concat!(env!("OUT_DIR"), "/more/crlf.v1.rs"));
    assert!(!generated.contains('\r'));
    assert!(generated.contains("/// Echoes a line.\n"), "{generated}");
    assert!(generated.contains("/// over CRLF lines.\n"), "{generated}");
}
