//! `my_co.api_v2.x3`: a service over types of three other packages (one reached only through
//! `import public`, one without a package, `crate.self.v1`), a message nested three deep as an
//! input, recursive messages, maps and oneofs of messages and bytes, every call shape over
//! well-known types (wrappers become Rust scalars, `Vec<u8>` and `()`), and rpcs named like the
//! client's helpers.

use std::collections::HashMap;

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use sockrpc::prost_types::Value;
use sockrpc::prost_types::{value::Kind, Any, Duration, FieldMask, ListValue, Struct, Timestamp};
use sockrpc::{Request, Response, Status, Streaming};
use sockrpc_tests::bounded::{bounded, channel, collect};
use sockrpc_tests::more::a::b::c::d::{self as deep, outer::middle::Inner};
use sockrpc_tests::more::crate_::self_::v1 as kw;
use sockrpc_tests::more::my_co::api_v2::x3::{self as x3, tree::Pick, Tree};
use sockrpc_tests::more::Naked;
use sockrpc_tests::serve::Running;

use x3::api2_service_client::Api2ServiceClient;
use x3::api2_service_server::{Api2Service, Api2ServiceServer};
use x3::tree2_client::Tree2Client;
use x3::tree2_server::{Tree2, Tree2Server};

struct Api;

type Answers<T> = BoxStream<'static, Result<T, Status>>;

/// Echoes a stream's messages through `f`.
fn echo<T: Send + 'static>(request: Request<Streaming<T>>, f: fn(T) -> T) -> Answers<T> {
    request.into_inner().map(move |one| one.map(f)).boxed()
}

impl Api2Service for Api {
    async fn get_inner(&self, request: Request<Inner>) -> Result<Response<Tree>, Status> {
        let inner = request.into_inner();
        let nodes = HashMap::from([(inner.text.clone(), inner)]);
        Ok(Response::new(Tree {
            nodes,
            mode: Some(1), // `MODE_QUICK`, an alias prost has no name for.
            ..Default::default()
        }))
    }

    async fn get_tree(&self, request: Request<Tree>) -> Result<Response<Tree>, Status> {
        let tree = request.into_inner();
        Ok(Response::new(Tree {
            pick: Some(Pick::Subtree(Box::new(tree))),
            ..Default::default()
        }))
    }

    async fn use_self(&self, request: Request<kw::Self_>) -> Result<Response<kw::Option>, Status> {
        Ok(Response::new(kw::Option {
            some: Some(kw::option::Some::Self_(request.into_inner())),
        }))
    }

    async fn use_naked(&self, request: Request<Naked>) -> Result<Response<Naked>, Status> {
        let text = request.into_inner().text;
        Ok(Response::new(Naked {
            text: format!("{text}!"),
        }))
    }

    type AnysStream = Answers<Any>;

    async fn anys(
        &self,
        request: Request<Streaming<Any>>,
    ) -> Result<Response<Self::AnysStream>, Status> {
        Ok(Response::new(echo(request, |mut any| {
            any.type_url.push_str(".back");
            any
        })))
    }

    type StructsStream = Answers<Struct>;

    async fn structs(
        &self,
        request: Request<Struct>,
    ) -> Result<Response<Self::StructsStream>, Status> {
        let one = request.into_inner();
        Ok(Response::new(
            stream::iter([Ok(one.clone()), Ok(one)]).boxed(),
        ))
    }

    async fn masks(
        &self,
        request: Request<Streaming<FieldMask>>,
    ) -> Result<Response<FieldMask>, Status> {
        let mut all = request.into_inner();
        let mut paths = Vec::new();
        while let Some(mask) = all.message().await? {
            paths.extend(mask.paths);
        }
        Ok(Response::new(FieldMask { paths }))
    }

    type DurationsStream = Answers<Duration>;

    async fn durations(
        &self,
        request: Request<Streaming<Duration>>,
    ) -> Result<Response<Self::DurationsStream>, Status> {
        Ok(Response::new(echo(request, |mut d| {
            d.seconds *= 2;
            d
        })))
    }

    type BlobsStream = Answers<Vec<u8>>;

    async fn blobs(
        &self,
        request: Request<Streaming<Vec<u8>>>,
    ) -> Result<Response<Self::BlobsStream>, Status> {
        Ok(Response::new(echo(request, |mut b| {
            b.reverse();
            b
        })))
    }

    async fn values(
        &self,
        request: Request<Streaming<Value>>,
    ) -> Result<Response<ListValue>, Status> {
        let mut all = request.into_inner();
        let mut values = Vec::new();
        while let Some(value) = all.message().await? {
            values.push(value);
        }
        Ok(Response::new(ListValue { values }))
    }

    type StampsStream = Answers<Timestamp>;

    async fn stamps(&self, request: Request<()>) -> Result<Response<Self::StampsStream>, Status> {
        let () = request.into_inner();
        let stamps = (1..=3).map(|seconds| Ok(Timestamp { seconds, nanos: 0 }));
        Ok(Response::new(stream::iter(stamps).boxed()))
    }

    type NothingStream = Answers<()>;

    async fn nothing(
        &self,
        request: Request<Streaming<()>>,
    ) -> Result<Response<Self::NothingStream>, Status> {
        Ok(Response::new(echo(request, |()| ())))
    }

    async fn max_decoding_message_size_rpc(
        &self,
        request: Request<u64>,
    ) -> Result<Response<u64>, Status> {
        Ok(Response::new(request.into_inner() + 1))
    }

    async fn send_compressed_rpc(
        &self,
        request: Request<String>,
    ) -> Result<Response<String>, Status> {
        Ok(Response::new(request.into_inner().to_uppercase()))
    }

    async fn accept_compressed_rpc(&self, request: Request<()>) -> Result<Response<()>, Status> {
        let () = request.into_inner();
        Ok(Response::new(()))
    }

    async fn ready(&self, request: Request<()>) -> Result<Response<()>, Status> {
        let () = request.into_inner();
        Ok(Response::new(()))
    }
}

struct Grower;

impl Tree2 for Grower {
    type GrowStream = Answers<Tree>;

    async fn grow(
        &self,
        request: Request<Streaming<Tree>>,
    ) -> Result<Response<Self::GrowStream>, Status> {
        Ok(Response::new(echo(request, |tree| Tree {
            pick: Some(Pick::Subtree(Box::new(tree))),
            ..Default::default()
        })))
    }
}

fn start() -> Running {
    Running::start(
        sockrpc::Server::builder()
            .add_service(Api2ServiceServer::new(Api))
            .add_service(Tree2Server::new(Grower)),
    )
}

fn leaf(text: &str) -> Inner {
    Inner {
        text: text.to_owned(),
        children: vec![Inner {
            text: format!("{text}.child"),
            ..Default::default()
        }],
        parent: None,
    }
}

#[tokio::test]
async fn types_of_other_packages_nested_and_recursive_round_trip() {
    let server = start();
    let mut client = Api2ServiceClient::new(channel(&server).await);

    let tree = bounded("GetInner", client.get_inner(leaf("x"))).await;
    let tree = tree.expect("GetInner").into_inner();
    assert_eq!(tree.nodes.get("x"), Some(&leaf("x")));
    // `MODE_QUICK` aliases `MODE_FAST`: one number, prost's first name.
    assert_eq!(tree.mode(), deep::Mode::Fast);

    let sent = Tree {
        nodes: HashMap::from([("k".to_owned(), leaf("k"))]),
        pick: Some(Pick::Outer(deep::Outer {
            middle: Some(deep::outer::Middle {
                inner: Some(leaf("deep")),
            }),
        })),
        mode: Some(deep::Mode::Slow as i32),
        blob: Some(Bytes::from_static(b"\0\xff")),
        chunks: HashMap::from([(-1, Bytes::from_static(b"c"))]),
    };
    let back = bounded("get_tree", client.get_tree(sent.clone())).await;
    let back = back.expect("get_tree").into_inner();
    assert_eq!(back.pick, Some(Pick::Subtree(Box::new(sent.clone()))));
    let raw = Tree {
        pick: Some(Pick::Raw(Bytes::from_static(b"raw"))),
        ..Default::default()
    };
    let back = bounded("get_tree raw", client.get_tree(raw.clone())).await;
    let back = back.expect("get_tree raw").into_inner();
    assert_eq!(back.pick, Some(Pick::Subtree(Box::new(raw))));

    let this = kw::Self_ {
        r#type: "self".to_owned(),
        ..Default::default()
    };
    let back = bounded("UseSelf", client.use_self(this.clone())).await;
    let back = back.expect("UseSelf").into_inner();
    assert_eq!(back.some, Some(kw::option::Some::Self_(this)));

    let naked = Naked {
        text: "bare".to_owned(),
    };
    let back = bounded("UseNaked", client.use_naked(naked)).await;
    assert_eq!(back.expect("UseNaked").into_inner().text, "bare!");

    let mut grower = Tree2Client::new(channel(&server).await);
    let grown = bounded(
        "Grow",
        grower.grow(stream::iter([sent.clone(), Tree::default()])),
    )
    .await;
    let grown = collect("Grow", grown.expect("Grow").into_inner()).await;
    let picks: Vec<_> = grown.into_iter().map(|t| t.pick).collect();
    let expected = [sent, Tree::default()].map(|t| Some(Pick::Subtree(Box::new(t))));
    assert_eq!(picks, expected);
    server.stop().await;
}

#[tokio::test]
async fn well_known_types_stream_in_every_shape() {
    let server = start();
    let mut client = Api2ServiceClient::new(channel(&server).await);

    let any = Any {
        type_url: "type.googleapis.com/x".to_owned(),
        value: vec![1, 2],
    };
    let anys = bounded("Anys", client.anys(stream::iter([any.clone(), any]))).await;
    let anys = collect("Anys", anys.expect("Anys").into_inner()).await;
    assert_eq!(anys.len(), 2);
    assert!(anys
        .iter()
        .all(|a| a.type_url == "type.googleapis.com/x.back"));

    let one = Struct {
        fields: [(
            "k".to_owned(),
            Value {
                kind: Some(Kind::BoolValue(true)),
            },
        )]
        .into(),
    };
    let structs = bounded("Structs", client.structs(one.clone())).await;
    let structs = collect("Structs", structs.expect("Structs").into_inner()).await;
    assert_eq!(structs, [one.clone(), one]);

    let masks = ["a", "b.c"].map(|p| FieldMask {
        paths: vec![p.to_owned()],
    });
    let mask = bounded("Masks", client.masks(stream::iter(masks))).await;
    assert_eq!(mask.expect("Masks").into_inner().paths, ["a", "b.c"]);

    let d = Duration {
        seconds: 3,
        nanos: 5,
    };
    let ds = bounded("Durations", client.durations(stream::iter([d]))).await;
    let ds = collect("Durations", ds.expect("Durations").into_inner()).await;
    assert_eq!(
        ds,
        [Duration {
            seconds: 6,
            nanos: 5
        }]
    );

    let blobs = bounded("Blobs", client.blobs(stream::iter([vec![1, 2, 3], vec![]]))).await;
    let blobs = collect("Blobs", blobs.expect("Blobs").into_inner()).await;
    assert_eq!(blobs, [vec![3, 2, 1], vec![]]);

    let values = [Kind::NumberValue(1.5), Kind::StringValue("s".to_owned())]
        .map(|kind| Value { kind: Some(kind) });
    let list = bounded("Values", client.values(stream::iter(values.clone()))).await;
    assert_eq!(list.expect("Values").into_inner().values, values);

    let stamps = bounded("Stamps", client.stamps(())).await;
    let stamps = collect("Stamps", stamps.expect("Stamps").into_inner()).await;
    let seconds: Vec<_> = stamps.iter().map(|t| t.seconds).collect();
    assert_eq!(seconds, [1, 2, 3]);

    let units = bounded("Nothing", client.nothing(stream::iter([(), (), ()]))).await;
    let units = collect("Nothing", units.expect("Nothing").into_inner()).await;
    assert_eq!(units.len(), 3);
    server.stop().await;
}

#[tokio::test]
async fn rpcs_named_like_client_helpers_keep_the_helpers() {
    let server = start();
    // The helpers are still the client's own.
    let mut client = Api2ServiceClient::new(channel(&server).await)
        .max_decoding_message_size(1 << 20)
        .max_encoding_message_size(1 << 20);
    let n = bounded(
        "MaxDecodingMessageSize",
        client.max_decoding_message_size_rpc(41),
    )
    .await;
    assert_eq!(n.expect("MaxDecodingMessageSize").into_inner(), 42);
    let text = bounded(
        "send_compressed",
        client.send_compressed_rpc("hi".to_owned()),
    )
    .await;
    assert_eq!(text.expect("send_compressed").into_inner(), "HI");
    let unit = bounded("AcceptCompressed", client.accept_compressed_rpc(())).await;
    unit.expect("AcceptCompressed").into_inner();
    let unit = bounded("Ready", client.ready(())).await;
    unit.expect("Ready").into_inner();
    server.stop().await;
}

/// A tree `depth` subtrees deep.
fn nested(depth: usize) -> Tree {
    let mut tree = Tree::default();
    for _ in 0..depth {
        tree = Tree {
            pick: Some(Pick::Subtree(Box::new(tree))),
            ..Default::default()
        };
    }
    tree
}

#[tokio::test]
async fn a_request_nested_past_prosts_recursion_limit_is_refused_with_a_status() {
    let server = start();
    let mut client = Api2ServiceClient::new(channel(&server).await);
    let deep = bounded("GetTree deep", client.get_tree(nested(150))).await;
    // prost stops at 100 levels; the server answers `Internal`, as tonic and grpc-go do for a
    // request that does not decode.
    let status = deep.expect_err("150 levels decode");
    assert_eq!(status.code(), sockrpc::Code::Internal, "{status:?}");
    // prost's error as it is (tonic's message): said once, not behind a prefix saying it again.
    let message = status.message();
    assert!(message.ends_with("recursion limit reached"), "{status:?}");
    assert_eq!(message.matches("decode").count(), 1, "{status:?}");
    // The server still answers.
    let fine = bounded("GetTree", client.get_tree(nested(10))).await;
    fine.expect("10 levels");
    server.stop().await;
}
