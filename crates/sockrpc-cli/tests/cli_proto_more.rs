//! `sockrpc call`, `list` and `describe` through reflection against `tests/proto_more/`'s
//! service `my_co.api_v2.x3.Api2Service` and `crate.self.v1`'s service `super`: packages whose
//! segments are keywords Rust can't write raw (`crate`, `self`), a message nested three deep
//! from a package reached only through `import public`, one from a file without a package, an
//! `import weak`, and well-known types as a bidi stream's messages. The generated code comes
//! from the package names through `include_proto!` (`crate.self.v1`, whose file prost-build
//! names `crate_.self_.v1.rs`).

mod call_support;
mod support;

use call_support::{call, json_lines, serve_on_runtime};
use futures_util::stream::{self, StreamExt};
use serde_json::json;
use sockrpc::prost_types::{Any, Duration, FieldMask, ListValue, Timestamp, Value};
use sockrpc::{BoxStream, Request, Response, Server, Status, Streaming};
use sockrpc_reflection::ReflectionExt;

/// The packages as nested modules, as prost-build's relative paths between them need.
#[allow(missing_docs, unreachable_pub, dead_code, clippy::all)]
pub mod pb {
    sockrpc::include_proto!("_");
    pub mod a {
        pub mod b {
            pub mod c {
                pub mod d {
                    sockrpc::include_proto!("a.b.c.d");
                }
            }
        }
    }
    pub mod crate_ {
        pub mod self_ {
            pub mod v1 {
                sockrpc::include_proto!("crate.self.v1");
            }
        }
    }
    pub mod my_co {
        pub mod api_v2 {
            pub mod x3 {
                sockrpc::include_proto!("my_co.api_v2.x3");
            }
        }
    }
}

use pb::a::b::c::d::outer::middle::Inner;
use pb::crate_::self_::v1 as kw;
use pb::my_co::api_v2::x3::{self as x3, Tree};

struct Api;

impl x3::api2_service_server::Api2Service for Api {
    async fn get_inner(&self, request: Request<Inner>) -> Result<Response<Tree>, Status> {
        let inner = request.into_inner();
        Ok(Response::new(Tree {
            nodes: [(inner.text.clone(), inner)].into(),
            ..Default::default()
        }))
    }

    async fn use_self(&self, request: Request<kw::Self_>) -> Result<Response<kw::Option>, Status> {
        Ok(Response::new(kw::Option {
            some: Some(kw::option::Some::Self_(request.into_inner())),
        }))
    }

    async fn use_naked(&self, request: Request<pb::Naked>) -> Result<Response<pb::Naked>, Status> {
        let mut naked = request.into_inner();
        naked.text.push('!');
        Ok(Response::new(naked))
    }

    async fn anys(
        &self,
        request: Request<Streaming<Any>>,
    ) -> Result<Response<BoxStream<Any>>, Status> {
        Ok(Response::new(request.into_inner().boxed()))
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

    async fn durations(
        &self,
        request: Request<Streaming<Duration>>,
    ) -> Result<Response<BoxStream<Duration>>, Status> {
        Ok(Response::new(request.into_inner().boxed()))
    }

    async fn blobs(
        &self,
        request: Request<Streaming<Vec<u8>>>,
    ) -> Result<Response<BoxStream<Vec<u8>>>, Status> {
        Ok(Response::new(request.into_inner().boxed()))
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

    async fn stamps(&self, request: Request<()>) -> Result<Response<BoxStream<Timestamp>>, Status> {
        let () = request.into_inner();
        let stamp = Timestamp {
            seconds: 1_700_000_000,
            nanos: 5_000_000,
        };
        Ok(Response::new(stream::iter([Ok(stamp)]).boxed()))
    }

    async fn nothing(
        &self,
        request: Request<Streaming<()>>,
    ) -> Result<Response<BoxStream<()>>, Status> {
        Ok(Response::new(request.into_inner().boxed()))
    }
}

struct Keywords;

impl kw::super_server::Super for Keywords {
    async fn names(&self, request: Request<kw::Names>) -> Result<Response<kw::Names>, Status> {
        Ok(Response::new(request.into_inner()))
    }

    async fn crate_(&self, request: Request<kw::Self_>) -> Result<Response<kw::Self_>, Status> {
        let mut this = request.into_inner();
        this.r#async += 1;
        Ok(Response::new(this))
    }

    async fn r#gen(
        &self,
        request: Request<kw::Box>,
    ) -> Result<Response<BoxStream<kw::Box>>, Status> {
        let boxed = request.into_inner();
        Ok(Response::new(
            stream::iter([Ok(boxed.clone()), Ok(boxed)]).boxed(),
        ))
    }
}

/// Both services with reflection over their package's set on `127.0.0.1:0`.
fn serve() -> (tokio::runtime::Runtime, String) {
    serve_on_runtime(
        Server::builder()
            .add_service(x3::api2_service_server::Api2ServiceServer::new(Api))
            .add_service(kw::super_server::SuperServer::new(Keywords))
            .add_reflection(&[x3::FILE_DESCRIPTOR_SET]),
    )
}

#[test]
fn calls_through_reflection_reach_keyword_packages_and_public_imports() {
    let (_runtime, addr) = serve();
    let tree = json_lines(
        &[
            "call",
            &addr,
            "my_co.api_v2.x3.Api2Service/GetInner",
            "-d",
            r#"{"text": "x", "children": [{"text": "y"}]}"#,
        ],
        "",
    );
    assert_eq!(
        tree,
        [json!({"nodes": {"x": {"text": "x", "children": [{"text": "y"}]}}})]
    );

    // The same from the .proto files (`--proto`, imports under `--import-path`), not reflection.
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/proto_more");
    let proto = format!("{root}/my_co/api_v2/x3/svc.proto");
    let from_proto = json_lines(
        &[
            "call",
            &addr,
            "my_co.api_v2.x3.Api2Service/GetInner",
            "-d",
            r#"{"text": "x", "children": [{"text": "y"}]}"#,
            "--proto",
            &proto,
            "--import-path",
            root,
        ],
        "",
    );
    assert_eq!(from_proto, tree);

    let option = json_lines(
        &[
            "call",
            &addr,
            "my_co.api_v2.x3.Api2Service/UseSelf",
            "-d",
            r#"{"type": "t", "async": 1, "await": true, "match": ["m"], "super": {"crate": "c"}}"#,
        ],
        "",
    );
    let this =
        json!({"type": "t", "async": 1, "await": true, "match": ["m"], "super": {"crate": "c"}});
    assert_eq!(option, [json!({ "self": this })]);

    let naked = json_lines(
        &[
            "call",
            &addr,
            "my_co.api_v2.x3.Api2Service/UseNaked",
            "-d",
            r#"{"text": "n"}"#,
        ],
        "",
    );
    assert_eq!(naked, [json!({"text": "n!"})]);

    // `Any`s carrying a well-known type: JSON names it by its type URL.
    let anys = json_lines(
        &["call", &addr, "my_co.api_v2.x3.Api2Service/Anys"],
        concat!(
            r#"{"@type": "type.googleapis.com/google.protobuf.Empty", "value": {}}"#,
            "\n",
            r#"{"@type": "type.googleapis.com/Naked", "text": "no package"}"#,
            "\n",
        ),
    );
    assert_eq!(
        anys,
        [
            json!({"@type": "type.googleapis.com/google.protobuf.Empty", "value": {}}),
            json!({"@type": "type.googleapis.com/Naked", "text": "no package"}),
        ]
    );

    // Well-known types in their JSON forms, streamed.
    let x3 = |method: &str| format!("my_co.api_v2.x3.Api2Service/{method}");
    let mask = json_lines(&["call", &addr, &x3("Masks")], "\"a,bC.d\"\n\"e\"\n");
    assert_eq!(mask, [json!("a,bC.d,e")]);
    let durations = json_lines(
        &["call", &addr, &x3("Durations")],
        "\"3.000000005s\"\n\"-1s\"\n",
    );
    assert_eq!(durations, [json!("3.000000005s"), json!("-1s")]);
    let blobs = json_lines(&["call", &addr, &x3("Blobs")], "\"AAE=\"\n\"\"\n");
    assert_eq!(blobs, [json!("AAE="), json!("")]);
    let list = json_lines(
        &["call", &addr, &x3("Values")],
        "1.5\n\"s\"\nnull\n{\"k\": [true]}\n",
    );
    assert_eq!(list, [json!([1.5, "s", null, {"k": [true]}])]);
    let stamps = json_lines(&["call", &addr, &x3("Stamps"), "-d", "{}"], "");
    assert_eq!(stamps, [json!("2023-11-14T22:13:20.005Z")]);
    let units = json_lines(&["call", &addr, &x3("Nothing")], "{}\n{}\n");
    assert_eq!(units, [json!({}), json!({})]);

    let again = json_lines(
        &[
            "call",
            &addr,
            "crate.self.v1.super/crate",
            "-d",
            r#"{"async": 41}"#,
        ],
        "",
    );
    assert_eq!(again, [json!({"async": 42})]);
    let boxes = json_lines(
        &[
            "call",
            &addr,
            "crate.self.v1.super/Gen",
            "-d",
            r#"{"gen": "AAE="}"#,
        ],
        "",
    );
    assert_eq!(boxes, [json!({"gen": "AAE="}), json!({"gen": "AAE="})]);

    // JSON names as protoc derives them (`foo_2bar` is `foo2bar`, `_leading` is `Leading`), and
    // one given with `json_name`.
    let names = json!({
        "foo2bar": "1", "Leading": "2", "trailing": "3", "FOO": "4", "fooBarBaz": "5",
        "xY": "6", "@given": "7", "a1B2": "8",
    });
    let back = json_lines(
        &[
            "call",
            &addr,
            "crate.self.v1.super/Names",
            "-d",
            &names.to_string(),
        ],
        "",
    );
    assert_eq!(back, [names]);
}

#[test]
fn list_and_describe_name_keyword_packages_as_written() {
    let (_runtime, addr) = serve();
    let (code, listed, stderr) = call(&["list", &addr], "");
    assert_eq!(code, 0, "{stderr}");
    for service in [
        "my_co.api_v2.x3.Api2Service",
        "my_co.api_v2.x3.Tree2",
        "crate.self.v1.super",
    ] {
        assert!(listed.contains(service), "{service} not in {listed}");
    }
    let (code, methods, stderr) = call(&["list", &addr, "crate.self.v1.super"], "");
    assert_eq!(code, 0, "{stderr}");
    for method in ["crate", "self", "Gen", "try", "dyn", "Names"] {
        let line = format!("crate.self.v1.super.{method}");
        assert!(
            methods.lines().any(|l| l == line),
            "{line} not in {methods}"
        );
    }
    let (code, described, stderr) = call(&["describe", &addr, "crate.self.v1.super"], "");
    assert_eq!(code, 0, "{stderr}");
    assert!(
        described.contains(
            "rpc try(stream .crate.self.v1.Self.Super) returns (.crate.self.v1.Self.Super);"
        ),
        "{described}"
    );
    let (code, described, stderr) = call(&["describe", &addr, "a.b.c.d.Outer.Middle.Inner"], "");
    assert_eq!(code, 0, "{stderr}");
    assert!(
        described.contains("repeated .a.b.c.d.Outer.Middle.Inner children = 2;"),
        "{described}"
    );
    // Files: `import public` and `import weak` written back as declared.
    let (code, described, stderr) = call(&["describe", &addr, "my_co/api_v2/x3/types.proto"], "");
    assert_eq!(code, 0, "{stderr}");
    assert!(
        described.contains("\nimport public \"a/b/c/d/deep.proto\";\n"),
        "{described}"
    );
    let (code, described, stderr) = call(&["describe", &addr, "my_co/api_v2/x3/svc.proto"], "");
    assert_eq!(code, 0, "{stderr}");
    assert!(
        described.contains("\nimport weak \"google/protobuf/api.proto\";\n"),
        "{described}"
    );
    assert!(
        described.contains("\n  rpc get_tree(.my_co.api_v2.x3.Tree) returns"),
        "{described}"
    );
    let (code, described, stderr) = call(&["describe", &addr, "crate/self/v1/kw.proto"], "");
    assert_eq!(code, 0, "{stderr}");
    for line in [
        "option optimize_for = LITE_RUNTIME;",
        "string given = 7 [json_name = \"@given\"];",
        "service super {",
        "message Self {",
    ] {
        assert!(described.contains(line), "{line} not in {described}");
    }
}

/// A `--proto` file saved on Windows (a UTF-8 byte order mark, CRLF line ends) is read as
/// protoc and `sockrpc-build` read it, not refused at `1:1: invalid token`. `describe` with
/// `--proto` never connects.
#[test]
fn a_proto_file_with_a_byte_order_mark_is_read() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/proto_more");
    let proto = format!("{root}/crlf/crlf.proto");
    for extra in [&[][..], &["--import-path", root][..]] {
        let mut args = vec![
            "describe",
            "127.0.0.1:1",
            "crlf.v1.Lines",
            "--proto",
            &proto,
        ];
        args.extend(extra);
        let (code, described, stderr) = call(&args, "");
        assert_eq!(code, 0, "{args:?}: {stderr}");
        assert!(
            described.contains("rpc Echo(.crlf.v1.Line) returns (.crlf.v1.Line);"),
            "{described}"
        );
        assert!(!described.contains('\u{feff}'), "{described:?}");
    }
}
