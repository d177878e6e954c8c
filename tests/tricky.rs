//! Code generated from tricky but valid protos (`tests/proto/sockrpc/test/tricky.proto`, and
//! what it imports: `a.b.v1` and a file without a package) builds, and every generated method
//! answers over TCP on loopback: keyword and helper-colliding rpc names, acronyms, services named
//! `Service`, `Server` and `Empty`, well-known types, types from other and missing packages,
//! every call shape, `optional`/`oneof`/`map`/enums, deprecation and a service without methods.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::stream::{self, BoxStream, StreamExt};
use sockrpc::codegen::prost_types::value::Kind;
use sockrpc::codegen::prost_types::{Any, Duration, FieldMask, Struct, Timestamp, Value};
use sockrpc::{Code, NamedService, Request, Response, Status, Streaming};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

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
use sockrpc_tests::tricky::naked_client::NakedClient;
use sockrpc_tests::tricky::naked_server::{Naked, NakedServer};
use sockrpc_tests::tricky::Bare;
// prost took `echo_client` / `echo_server` for the nested items of the messages `EchoClient` and
// `EchoServer`; the service `Echo`'s modules moved to `_rpc`.
use t::echo_client::Via;
use t::echo_client_rpc::EchoClient as EchoRpcClient;
use t::echo_server::Mode;
use t::echo_server_rpc::{Echo, EchoServer as EchoRpcServer};
use t::empty_server::{Empty, EmptyServer};
use t::fancy::Pick;
use t::keywords_client::KeywordsClient;
use t::keywords_server::{DynKeywords, Keywords, KeywordsServer};
use t::server_client::ServerClient;
use t::server_server::{Server, ServerServer};
use t::service_client::ServiceClient;
use t::service_server::{Service, ServiceServer};
use t::snake_service_client::SnakeServiceClient;
use t::snake_service_server::{SnakeService, SnakeServiceServer};
use t::{Color, Fancy, Msg};

/// Bound on every single step of these tests.
const STEP: std::time::Duration = std::time::Duration::from_secs(10);

fn msg(text: &str, n: i64) -> Msg {
    Msg {
        text: text.to_owned(),
        n,
    }
}

/// What every unary `Keywords` rpc answers: its own proto name, so a call routed to the wrong
/// method shows.
fn tagged(rpc: &str, request: Request<Msg>) -> Response<Msg> {
    let request = request.into_inner();
    Response::new(msg(&format!("{rpc}:{}", request.text), request.n + 1))
}

/// Every rpc of `Keywords` tags its answer with its proto name.
struct Kw;

/// The unary `Keywords` rpcs, each answering [`tagged`] with its proto name.
macro_rules! unary_tagged {
    ($($method:ident => $rpc:literal),* $(,)?) => {
        $(
            async fn $method(&self, request: Request<Msg>) -> Result<Response<Msg>, Status> {
                Ok(tagged($rpc, request))
            }
        )*
    };
}

impl Keywords for Kw {
    unary_tagged! {
        r#type => "Type",
        r#match => "Match",
        self_ => "Self",
        super_ => "Super",
        r#async => "Async",
        r#fn => "Fn",
        r#dyn => "Dyn",
        r#gen => "Gen",
        new_rpc => "New",
        connect_rpc => "Connect",
        with_interceptor_rpc => "WithInterceptor",
        into_inner_rpc => "IntoInner",
        clone_rpc => "Clone",
        call => "Call",
        ready => "Ready",
        poll_ready => "PollReady",
        from_arc => "FromArc",
        unary => "Unary",
        streaming => "Streaming",
        default => "Default",
        drop => "Drop",
        into_rpc => "Into",
        try_into_rpc => "TryInto",
        to_owned_rpc => "ToOwned",
        clone_into_rpc => "CloneInto",
    }

    type LoopStream = BoxStream<'static, Result<Msg, Status>>;

    /// `n` answers, numbered.
    async fn r#loop(&self, request: Request<Msg>) -> Result<Response<Self::LoopStream>, Status> {
        let request = request.into_inner();
        let answers: Vec<_> = (0..request.n)
            .map(|i| Ok(msg(&format!("Loop:{}", request.text), i)))
            .collect();
        Ok(Response::new(stream::iter(answers).boxed()))
    }

    type YieldStream = BoxStream<'static, Result<Msg, Status>>;

    /// Each message answered, doubled.
    async fn r#yield(
        &self,
        request: Request<Streaming<Msg>>,
    ) -> Result<Response<Self::YieldStream>, Status> {
        let answers = request.into_inner().map(|m| {
            let m = m?;
            Ok(msg(&format!("Yield:{}", m.text), m.n * 2))
        });
        Ok(Response::new(answers.boxed()))
    }

    /// The sum of the numbers sent.
    async fn r#where(&self, request: Request<Streaming<Msg>>) -> Result<Response<Msg>, Status> {
        let mut requests = request.into_inner();
        let mut sum = 0;
        while let Some(m) = requests.message().await? {
            sum += m.n;
        }
        Ok(Response::new(msg("Where", sum)))
    }
}

/// The service named like tower's trait.
struct Svc;

impl Service for Svc {
    async fn get_http_request(
        &self,
        request: Request<t::Request>,
    ) -> Result<Response<t::Response>, Status> {
        Ok(Response::new(t::Response {
            text: format!("GET {}", request.into_inner().text),
        }))
    }

    type ListUrLsStream = BoxStream<'static, Result<Msg, Status>>;

    async fn list_ur_ls(
        &self,
        request: Request<Msg>,
    ) -> Result<Response<Self::ListUrLsStream>, Status> {
        let request = request.into_inner();
        let urls: Vec<_> = request
            .text
            .split(' ')
            .enumerate()
            .map(|(i, url)| Ok(msg(&format!("https://{url}/"), i as i64)))
            .collect();
        Ok(Response::new(stream::iter(urls).boxed()))
    }

    async fn upload_ur_ls(
        &self,
        request: Request<Streaming<Msg>>,
    ) -> Result<Response<Msg>, Status> {
        let mut requests = request.into_inner();
        let mut texts = Vec::new();
        while let Some(m) = requests.message().await? {
            texts.push(m.text);
        }
        Ok(Response::new(msg(&texts.join(","), texts.len() as i64)))
    }

    type ChatStream = BoxStream<'static, Result<Msg, Status>>;

    async fn chat(
        &self,
        request: Request<Streaming<Msg>>,
    ) -> Result<Response<Self::ChatStream>, Status> {
        let answers = request.into_inner().map(|m| {
            let m = m?;
            Ok(msg(&m.text.to_uppercase(), m.n))
        });
        Ok(Response::new(answers.boxed()))
    }

    async fn fail(&self, request: Request<t::Status>) -> Result<Response<t::Result>, Status> {
        let code = request.into_inner().code;
        if code == 0 {
            return Ok(Response::new(t::Result { ok: true }));
        }
        let code = u32::try_from(code).map_err(|_| Status::invalid_argument("negative code"))?;
        Err(Status::new(
            Code::from_u32(code),
            format!("failed as asked: {code}"),
        ))
    }

    async fn get2_fa(&self, request: Request<Msg>) -> Result<Response<Msg>, Status> {
        Ok(tagged("Get2FA", request))
    }
}

/// The deprecated service named `Server`, all well-known types.
struct Wkt;

fn later(t: &Timestamp, by: i64) -> Timestamp {
    Timestamp {
        seconds: t.seconds + by,
        nanos: t.nanos,
    }
}

#[allow(deprecated)]
impl Server for Wkt {
    async fn nothing(&self, request: Request<()>) -> Result<Response<()>, Status> {
        let () = request.into_inner();
        Ok(Response::new(()))
    }

    async fn now(&self, _request: Request<()>) -> Result<Response<Timestamp>, Status> {
        Ok(Response::new(Timestamp {
            seconds: 1_700_000_000,
            nanos: 7,
        }))
    }

    async fn later(&self, request: Request<Timestamp>) -> Result<Response<Timestamp>, Status> {
        Ok(Response::new(later(&request.into_inner(), 60)))
    }

    async fn wrap(&self, request: Request<Any>) -> Result<Response<Any>, Status> {
        let any = request.into_inner();
        let mut value = any.value;
        value.reverse();
        Ok(Response::new(Any {
            type_url: format!("{}.wrapped", any.type_url),
            value,
        }))
    }

    async fn old(&self, request: Request<Msg>) -> Result<Response<Msg>, Status> {
        Ok(tagged("Old", request))
    }

    type TicksStream = BoxStream<'static, Result<Timestamp, Status>>;

    async fn ticks(&self, _request: Request<()>) -> Result<Response<Self::TicksStream>, Status> {
        let start = Timestamp {
            seconds: 10,
            nanos: 0,
        };
        let ticks: Vec<_> = (0..3).map(|i| Ok(later(&start, i))).collect();
        Ok(Response::new(stream::iter(ticks).boxed()))
    }

    async fn shout(&self, request: Request<String>) -> Result<Response<String>, Status> {
        Ok(Response::new(request.into_inner().to_uppercase()))
    }

    async fn negate(&self, request: Request<bool>) -> Result<Response<bool>, Status> {
        Ok(Response::new(!request.into_inner()))
    }

    async fn double(&self, request: Request<i32>) -> Result<Response<i64>, Status> {
        Ok(Response::new(i64::from(request.into_inner()) * 2))
    }

    async fn halve(&self, request: Request<f64>) -> Result<Response<f32>, Status> {
        Ok(Response::new((request.into_inner() / 2.0) as f32))
    }

    async fn reverse(&self, request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, Status> {
        let mut bytes = request.into_inner();
        bytes.reverse();
        Ok(Response::new(bytes))
    }

    async fn count(&self, request: Request<Streaming<()>>) -> Result<Response<u64>, Status> {
        let mut requests = request.into_inner();
        let mut count = 0;
        while let Some(()) = requests.message().await? {
            count += 1;
        }
        Ok(Response::new(count))
    }

    type SizesStream = BoxStream<'static, Result<u32, Status>>;

    async fn sizes(&self, request: Request<u32>) -> Result<Response<Self::SizesStream>, Status> {
        let n = request.into_inner();
        Ok(Response::new(stream::iter((0..n).map(Ok)).boxed()))
    }

    async fn since(&self, request: Request<Duration>) -> Result<Response<Struct>, Status> {
        let duration = request.into_inner();
        let seconds = Value {
            kind: Some(Kind::NumberValue(duration.seconds as f64)),
        };
        Ok(Response::new(Struct {
            fields: [("seconds".to_owned(), seconds)].into(),
        }))
    }

    async fn mask(&self, request: Request<FieldMask>) -> Result<Response<Value>, Status> {
        Ok(Response::new(Value {
            kind: Some(Kind::StringValue(request.into_inner().paths.join(","))),
        }))
    }
}

/// `Echo`: messages from other packages, nested types, field features.
struct Echoer;

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
struct Matcher;

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
struct Unwrapper;

impl Nested for Unwrapper {
    async fn unwrap(
        &self,
        request: Request<Outer>,
    ) -> Result<Response<abv1::outer::Inner>, Status> {
        unwrap_outer(request.into_inner())
    }
}

/// `Naked`, from the file without a package.
struct NoPackage;

impl Naked for NoPackage {
    async fn echo(&self, request: Request<Bare>) -> Result<Response<Bare>, Status> {
        Ok(Response::new(request.into_inner()))
    }

    async fn nothing(&self, _request: Request<()>) -> Result<Response<()>, Status> {
        Ok(Response::new(()))
    }

    type StreamStream = BoxStream<'static, Result<Bare, Status>>;

    async fn stream(&self, request: Request<Bare>) -> Result<Response<Self::StreamStream>, Status> {
        let text = request.into_inner().text;
        let parts: Vec<_> = text
            .chars()
            .map(|c| {
                Ok(Bare {
                    text: c.to_string(),
                })
            })
            .collect();
        Ok(Response::new(stream::iter(parts).boxed()))
    }
}

/// `snake_service`.
struct Snake;

impl SnakeService for Snake {
    async fn do_it(&self, request: Request<Msg>) -> Result<Response<Msg>, Status> {
        Ok(tagged("do_it", request))
    }

    async fn r#do(&self, request: Request<Msg>) -> Result<Response<Msg>, Status> {
        Ok(tagged("do", request))
    }

    type GetValueStream = BoxStream<'static, Result<Msg, Status>>;

    async fn get_value(
        &self,
        request: Request<Msg>,
    ) -> Result<Response<Self::GetValueStream>, Status> {
        let request = request.into_inner();
        Ok(Response::new(
            stream::iter([Ok(msg(&request.text, 1)), Ok(msg(&request.text, 2))]).boxed(),
        ))
    }
}

/// The service without methods.
struct Hollow;

impl Empty for Hollow {}

/// A running server on `127.0.0.1:0`; stopped (and checked to have returned `Ok`) by `stop`.
struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(STEP, self.task)
            .await
            .expect("server stops in time")
            .expect("server task did not panic");
        result.expect("server returned an error");
    }
}

fn start(builder: sockrpc::service::ServerBuilder<tower::layer::util::Identity>) -> Running {
    let listener =
        sockrpc::transport::bind_tcp("127.0.0.1:0".parse().expect("address"), &Default::default())
            .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(
        builder.serve_with_listener_and_shutdown(listener, async move {
            let _ = stopped.await;
        }),
    );
    Running {
        addr,
        stop: Some(stop),
        task,
    }
}

/// Every tricky service on one server.
fn start_all() -> Running {
    start(
        sockrpc::Server::builder()
            .add_service(KeywordsServer::new(Kw))
            .add_service(ServiceServer::new(Svc))
            .add_service(ServerServer::new(Wkt))
            .add_service(EchoRpcServer::new(Echoer))
            .add_service(EmptyServer::new(Hollow))
            .add_service(SnakeServiceServer::new(Snake))
            .add_service(NestedServer::new(Unwrapper))
            .add_service(NakedServer::new(NoPackage))
            .add_service(MatchServer::new(Matcher)),
    )
}

async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {STEP:?}"))
}

async fn channel(server: &Running) -> sockrpc::Channel {
    bounded(
        "connect",
        sockrpc::Channel::connect(format!("tcp://{}", server.addr)),
    )
    .await
    .expect("connect")
}

/// Reads a response stream to its end, each message within [`STEP`].
async fn collect<T>(what: &str, mut stream: Streaming<T>) -> Vec<T>
where
    T: prost::Message + Default + 'static,
{
    let mut out = Vec::new();
    while let Some(item) = bounded(what, stream.message()).await.expect(what) {
        out.push(item);
    }
    out
}

/// Calls one unary `Keywords` rpc and checks it reached the method of that proto name.
macro_rules! check_tagged {
    ($client:expr, $($method:ident => $rpc:literal),* $(,)?) => {
        $(
            let reply = bounded($rpc, $client.$method(msg("x", 1)))
                .await
                .unwrap_or_else(|e| panic!("{} failed: {e:?}", $rpc))
                .into_inner();
            assert_eq!(reply, msg(concat!($rpc, ":x"), 2), "{}", $rpc);
        )*
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyword_and_helper_named_rpcs_reach_their_methods() {
    let server = start_all();
    let mut client = KeywordsClient::connect(format!("tcp://{}", server.addr))
        .await
        .expect("connect");
    check_tagged! {
        client,
        r#type => "Type",
        r#match => "Match",
        self_ => "Self",
        super_ => "Super",
        r#async => "Async",
        r#fn => "Fn",
        r#dyn => "Dyn",
        r#gen => "Gen",
        new_rpc => "New",
        connect_rpc => "Connect",
        with_interceptor_rpc => "WithInterceptor",
        into_inner_rpc => "IntoInner",
        clone_rpc => "Clone",
        call => "Call",
        ready => "Ready",
        poll_ready => "PollReady",
        from_arc => "FromArc",
        unary => "Unary",
        streaming => "Streaming",
        default => "Default",
        drop => "Drop",
        into_rpc => "Into",
        try_into_rpc => "TryInto",
        to_owned_rpc => "ToOwned",
        clone_into_rpc => "CloneInto",
    }

    // Server streaming through a keyword-named rpc.
    let answers = bounded("Loop", client.r#loop(msg("l", 3)))
        .await
        .expect("Loop")
        .into_inner();
    assert_eq!(
        collect("Loop stream", answers).await,
        [msg("Loop:l", 0), msg("Loop:l", 1), msg("Loop:l", 2)]
    );
    // Bidi.
    let answers = bounded(
        "Yield",
        client.r#yield(stream::iter([msg("a", 1), msg("b", 2)])),
    )
    .await
    .expect("Yield")
    .into_inner();
    assert_eq!(
        collect("Yield stream", answers).await,
        [msg("Yield:a", 2), msg("Yield:b", 4)]
    );
    // Client streaming.
    let sum = bounded(
        "Where",
        client.r#where(stream::iter((1..=4).map(|n| msg("", n)))),
    )
    .await
    .expect("Where")
    .into_inner();
    assert_eq!(sum, msg("Where", 10));

    // The client's own helpers still are the helpers, next to the rpcs named like them.
    let mut clone = client.clone();
    let reply = bounded("Call on a clone", clone.call(msg("c", 0)))
        .await
        .expect("Call on a clone");
    assert_eq!(reply.into_inner().text, "Call:c");
    let mut rebuilt = KeywordsClient::new(client.into_inner());
    let reply = bounded("Type on a rebuilt client", rebuilt.r#type(msg("r", 0)))
        .await
        .expect("Type on a rebuilt client");
    assert_eq!(reply.into_inner().text, "Type:r");

    // Wire names are the proto names.
    assert_eq!(
        <KeywordsServer<Kw> as NamedService>::NAME,
        "sockrpc.test.tricky.Keywords"
    );
    let mut raw = sockrpc::Client::new(channel(&server).await);
    for (path, tag) in [
        ("/sockrpc.test.tricky.Keywords/Self", "Self:w"),
        ("/sockrpc.test.tricky.Keywords/Connect", "Connect:w"),
        ("/sockrpc.test.tricky.Keywords/Type", "Type:w"),
    ] {
        let reply = bounded(
            path,
            raw.unary::<Msg, Msg, _>(Request::new(msg("w", 0)), path, sockrpc::ProstCodec),
        )
        .await
        .expect(path);
        assert_eq!(reply.into_inner().text, tag, "{path}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyword_rpcs_through_the_dyn_twin() {
    let imp: Arc<dyn DynKeywords> = Arc::new(Kw);
    let server = start(sockrpc::Server::builder().add_service(KeywordsServer::new(imp)));
    let mut client = KeywordsClient::new(channel(&server).await);
    check_tagged! {
        client,
        r#type => "Type",
        self_ => "Self",
        connect_rpc => "Connect",
        call => "Call",
    }
    let answers = bounded("Loop", client.r#loop(msg("d", 2)))
        .await
        .expect("Loop")
        .into_inner();
    assert_eq!(
        collect("Loop stream", answers).await,
        [msg("Loop:d", 0), msg("Loop:d", 1)]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_named_service_all_call_shapes_and_errors() {
    let server = start_all();
    let mut client = ServiceClient::new(channel(&server).await);

    let reply = bounded(
        "GetHTTPRequest",
        client.get_http_request(t::Request {
            text: "/index.html".to_owned(),
        }),
    )
    .await
    .expect("GetHTTPRequest")
    .into_inner();
    assert_eq!(reply.text, "GET /index.html");

    let urls = bounded("ListURLs", client.list_ur_ls(msg("a.io b.io c.io", 0)))
        .await
        .expect("ListURLs")
        .into_inner();
    assert_eq!(
        collect("ListURLs stream", urls).await,
        [
            msg("https://a.io/", 0),
            msg("https://b.io/", 1),
            msg("https://c.io/", 2)
        ]
    );

    let joined = bounded(
        "UploadURLs",
        client.upload_ur_ls(stream::iter([msg("x", 0), msg("y", 0), msg("z", 0)])),
    )
    .await
    .expect("UploadURLs")
    .into_inner();
    assert_eq!(joined, msg("x,y,z", 3));
    let empty = bounded(
        "UploadURLs (no messages)",
        client.upload_ur_ls(stream::iter(Vec::<Msg>::new())),
    )
    .await
    .expect("UploadURLs with no messages")
    .into_inner();
    assert_eq!(empty, msg("", 0));

    let chat = bounded(
        "Chat",
        client.chat(stream::iter([msg("hi", 1), msg("there", 2)])),
    )
    .await
    .expect("Chat")
    .into_inner();
    assert_eq!(
        collect("Chat stream", chat).await,
        [msg("HI", 1), msg("THERE", 2)]
    );

    let ok = bounded("Fail(0)", client.fail(t::Status { code: 0 }))
        .await
        .expect("Fail with code 0 succeeds")
        .into_inner();
    assert!(ok.ok);
    for code in [Code::NotFound, Code::PermissionDenied, Code::Unavailable] {
        let err = bounded("Fail", client.fail(t::Status { code: code as i32 }))
            .await
            .expect_err("Fail fails");
        assert_eq!(err.code(), code, "{err:?}");
        assert_eq!(err.message(), format!("failed as asked: {}", code as i32));
    }

    let reply = bounded("Get2FA", client.get2_fa(msg("otp", 5)))
        .await
        .expect("Get2FA")
        .into_inner();
    assert_eq!(reply, msg("Get2FA:otp", 6));

    // The idempotency level reaches the server's list, under the wire name.
    assert_eq!(
        <ServiceServer<Svc> as NamedService>::IDEMPOTENT_METHODS,
        ["/sockrpc.test.tricky.Service/GetHTTPRequest"]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(deprecated)]
async fn well_known_types_on_a_deprecated_service() {
    let server = start_all();
    let mut client = ServerClient::new(channel(&server).await);

    let () = bounded("Nothing", client.nothing(()))
        .await
        .expect("Nothing")
        .into_inner();
    let now = bounded("Now", client.now(()))
        .await
        .expect("Now")
        .into_inner();
    assert_eq!(
        now,
        Timestamp {
            seconds: 1_700_000_000,
            nanos: 7
        }
    );
    let later = bounded("Later", client.later(now))
        .await
        .expect("Later")
        .into_inner();
    assert_eq!(
        later,
        Timestamp {
            seconds: 1_700_000_060,
            nanos: 7
        }
    );
    let wrapped = bounded(
        "Wrap",
        client.wrap(Any {
            type_url: "type.googleapis.com/x.Y".to_owned(),
            value: vec![1, 2, 3],
        }),
    )
    .await
    .expect("Wrap")
    .into_inner();
    assert_eq!(wrapped.type_url, "type.googleapis.com/x.Y.wrapped");
    assert_eq!(wrapped.value, [3, 2, 1]);

    let old = bounded("Old", client.old(msg("o", 0)))
        .await
        .expect("Old")
        .into_inner();
    assert_eq!(old, msg("Old:o", 1));

    let ticks = bounded("Ticks", client.ticks(()))
        .await
        .expect("Ticks")
        .into_inner();
    let seconds: Vec<i64> = collect("Ticks stream", ticks)
        .await
        .iter()
        .map(|t| t.seconds)
        .collect();
    assert_eq!(seconds, [10, 11, 12]);

    // Wrapper types, as prost maps them.
    let shouted = bounded("Shout", client.shout("hey".to_owned()))
        .await
        .expect("Shout")
        .into_inner();
    assert_eq!(shouted, "HEY");
    let negated = bounded("Negate", client.negate(true))
        .await
        .expect("Negate")
        .into_inner();
    assert!(!negated);
    let doubled = bounded("Double", client.double(i32::MAX))
        .await
        .expect("Double")
        .into_inner();
    assert_eq!(doubled, i64::from(i32::MAX) * 2);
    let halved = bounded("Halve", client.halve(5.0))
        .await
        .expect("Halve")
        .into_inner();
    assert_eq!(halved, 2.5);
    let reversed = bounded("Reverse", client.reverse(vec![1, 2, 3]))
        .await
        .expect("Reverse")
        .into_inner();
    assert_eq!(reversed, [3, 2, 1]);
    let count = bounded("Count", client.count(stream::iter([(), (), (), ()])))
        .await
        .expect("Count")
        .into_inner();
    assert_eq!(count, 4);
    let sizes = bounded("Sizes", client.sizes(3))
        .await
        .expect("Sizes")
        .into_inner();
    assert_eq!(collect("Sizes stream", sizes).await, [0, 1, 2]);
    let since = bounded(
        "Since",
        client.since(Duration {
            seconds: 90,
            nanos: 0,
        }),
    )
    .await
    .expect("Since")
    .into_inner();
    assert_eq!(
        since.fields.get("seconds").and_then(|v| v.kind.clone()),
        Some(Kind::NumberValue(90.0))
    );
    let mask = bounded(
        "Mask",
        client.mask(FieldMask {
            paths: vec!["a.b".to_owned(), "c".to_owned()],
        }),
    )
    .await
    .expect("Mask")
    .into_inner();
    assert_eq!(mask.kind, Some(Kind::StringValue("a.b,c".to_owned())));

    // The deprecated rpc is marked so in the generated code.
    let source = include_str!(concat!(env!("OUT_DIR"), "/tricky/sockrpc.test.tricky.rs"));
    let old_at = source
        .find("pub async fn old(")
        .expect("client method `old`");
    assert!(
        source[..old_at].trim_end().ends_with("#[deprecated]"),
        "client method `old` lacks #[deprecated]"
    );
    server.stop().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_package_snake_case_and_empty_services() {
    let server = start_all();

    // No package: the wire name is the bare service name.
    let mut naked = NakedClient::new(channel(&server).await);
    let reply = bounded(
        "Naked.Echo",
        naked.echo(Bare {
            text: "n".to_owned(),
        }),
    )
    .await
    .expect("Naked.Echo")
    .into_inner();
    assert_eq!(reply.text, "n");
    let () = bounded("Naked.Nothing", naked.nothing(()))
        .await
        .expect("Naked.Nothing")
        .into_inner();
    let parts = bounded(
        "Naked.Stream",
        naked.stream(Bare {
            text: "abc".to_owned(),
        }),
    )
    .await
    .expect("Naked.Stream")
    .into_inner();
    let parts: Vec<String> = collect("Naked.Stream stream", parts)
        .await
        .into_iter()
        .map(|b| b.text)
        .collect();
    assert_eq!(parts, ["a", "b", "c"]);
    assert_eq!(<NakedServer<NoPackage> as NamedService>::NAME, "Naked");
    let mut raw = sockrpc::Client::new(channel(&server).await);
    let reply = bounded(
        "/Naked/Echo",
        raw.unary::<Bare, Bare, _>(
            Request::new(Bare {
                text: "raw".to_owned(),
            }),
            "/Naked/Echo",
            sockrpc::ProstCodec,
        ),
    )
    .await
    .expect("/Naked/Echo by path");
    assert_eq!(reply.into_inner().text, "raw");

    // lower_snake_case service and rpc names.
    let mut snake = SnakeServiceClient::new(channel(&server).await);
    let reply = bounded("do_it", snake.do_it(msg("s", 0)))
        .await
        .expect("do_it")
        .into_inner();
    assert_eq!(reply, msg("do_it:s", 1));
    let reply = bounded("do", snake.r#do(msg("s", 0)))
        .await
        .expect("do")
        .into_inner();
    assert_eq!(reply, msg("do:s", 1));
    let values = bounded("getValue", snake.get_value(msg("v", 0)))
        .await
        .expect("getValue")
        .into_inner();
    assert_eq!(
        collect("getValue stream", values).await,
        [msg("v", 1), msg("v", 2)]
    );
    assert_eq!(
        <SnakeServiceServer<Snake> as NamedService>::NAME,
        "sockrpc.test.tricky.snake_service"
    );

    // The service without methods is mounted and answers UNIMPLEMENTED with the path.
    assert_eq!(
        <EmptyServer<Hollow> as NamedService>::NAME,
        "sockrpc.test.tricky.Empty"
    );
    let path = "/sockrpc.test.tricky.Empty/Anything";
    let err = bounded(
        path,
        raw.unary::<Msg, Msg, _>(Request::new(msg("", 0)), path, sockrpc::ProstCodec),
    )
    .await
    .expect_err("a service without methods has nothing to call");
    assert_eq!(err.code(), Code::Unimplemented, "{err:?}");
    assert!(err.message().contains(path), "{err:?}");
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
