//! `brought.names.v2beta`: services named `Result`, `Option`, `Box`, `Future`, `Send`, `Sync`,
//! `Clone`, `Debug`, `Default`, `Request`, `Response`, `Status`, `Client`, `Streaming`, `Arc`,
//! `Interceptor`, `T`, `Svc`, `F`, `D` and `Greeter`, over messages of `brought.std.v1` named
//! like the same items. Each trait is imported under another name, as a user whose own code uses
//! `Result` and `Option` has to, implemented by one type, and every rpc called once.

use futures_util::stream::{self, BoxStream, StreamExt};
use sockrpc::{Code, Request, Response, Status, Streaming};
use sockrpc_tests::brought::brought::names::v2beta as n;
use sockrpc_tests::brought::brought::std::v1 as s;

use crate::support::{bounded, channel, collect, start, Running};

/// Serves every service of the package.
pub(crate) struct Named;

/// `Ok` with `value`.
fn ok<M>(value: M) -> Result<Response<M>, Status> {
    Ok(Response::new(value))
}

impl n::result_server::Result for Named {
    async fn ok(&self, request: Request<s::Ok>) -> Result<Response<s::Err>, Status> {
        ok(s::Err {
            text: format!("not {}", request.into_inner().text),
        })
    }
    async fn ready(&self, request: Request<s::Option>) -> Result<Response<s::Option>, Status> {
        ok(s::Option {
            value: format!("ready {}", request.into_inner().value),
        })
    }
    async fn poll_ready(&self, request: Request<s::Box>) -> Result<Response<s::Box>, Status> {
        ok(s::Box {
            size: request.into_inner().size + 1,
        })
    }
    async fn call(&self, request: Request<s::Call>) -> Result<Response<s::Call>, Status> {
        ok(s::Call {
            path: format!("called {}", request.into_inner().path),
        })
    }
    async fn new_rpc(&self, request: Request<s::Vec>) -> Result<Response<s::Vec>, Status> {
        let mut items = request.into_inner().items;
        items.reverse();
        ok(s::Vec { items })
    }
    async fn connect_rpc(
        &self,
        request: Request<s::Channel>,
    ) -> Result<Response<s::Channel>, Status> {
        ok(s::Channel {
            target: format!("connected {}", request.into_inner().target),
        })
    }
    async fn clone_rpc(&self, request: Request<s::Clone>) -> Result<Response<s::Clone>, Status> {
        ok(s::Clone {
            of: format!("clone of {}", request.into_inner().of),
        })
    }
    async fn http_get(&self, request: Request<s::String>) -> Result<Response<s::String>, Status> {
        ok(s::String {
            text: format!("GET {}", request.into_inner().text),
        })
    }
    async fn v2_beta(&self, request: Request<s::Future>) -> Result<Response<s::Future>, Status> {
        ok(s::Future {
            at: request.into_inner().at * 2,
        })
    }
    async fn get_v1api_keys(&self, request: Request<s::Pin>) -> Result<Response<s::Pin>, Status> {
        ok(s::Pin {
            pinned: !request.into_inner().pinned,
        })
    }
}

impl n::option_server::Option for Named {
    async fn some(&self, request: Request<s::Option>) -> Result<Response<s::Option>, Status> {
        ok(s::Option {
            value: format!("some {}", request.into_inner().value),
        })
    }
    type StreamStream = BoxStream<'static, Result<s::Streaming, Status>>;
    async fn stream(
        &self,
        request: Request<s::Streaming>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let parts = request.into_inner().parts;
        let each = parts
            .into_iter()
            .map(|part| Ok(s::Streaming { parts: vec![part] }));
        ok(stream::iter(each.collect::<Vec<_>>()).boxed())
    }
}

impl n::box_server::Box for Named {
    async fn unbox(&self, request: Request<Streaming<s::Box>>) -> Result<Response<s::Box>, Status> {
        let mut boxes = request.into_inner();
        let mut size = 0;
        while let Some(one) = boxes.message().await? {
            size += one.size;
        }
        ok(s::Box { size })
    }
}

impl n::future_server::Future for Named {
    async fn poll(&self, request: Request<s::Future>) -> Result<Response<s::Future>, Status> {
        ok(s::Future {
            at: request.into_inner().at + 1,
        })
    }
    type AwaitStream = BoxStream<'static, Result<s::Future, Status>>;
    async fn r#await(
        &self,
        request: Request<Streaming<s::Future>>,
    ) -> Result<Response<Self::AwaitStream>, Status> {
        let answers = request
            .into_inner()
            .map(|f| f.map(|f| s::Future { at: -f.at }));
        ok(answers.boxed())
    }
}

impl n::send_server::Send for Named {
    async fn send(&self, request: Request<s::Send>) -> Result<Response<s::Sync>, Status> {
        ok(s::Sync {
            synced: !request.into_inner().data.is_empty(),
        })
    }
}

impl n::sync_server::Sync for Named {
    async fn sized(&self, request: Request<s::Sized>) -> Result<Response<s::Sized>, Status> {
        ok(s::Sized {
            size: request.into_inner().size * 3,
        })
    }
}

impl n::clone_server::Clone for Named {
    async fn clone_rpc(&self, request: Request<s::Clone>) -> Result<Response<s::Clone>, Status> {
        ok(s::Clone {
            of: format!("Clone.Clone {}", request.into_inner().of),
        })
    }
}

impl n::debug_server::Debug for Named {
    async fn fmt_rpc(&self, request: Request<s::Debug>) -> Result<Response<s::Debug>, Status> {
        ok(s::Debug {
            text: format!("{:?}", request.into_inner().text),
        })
    }
}

impl n::default_server::Default for Named {
    async fn default(&self, request: Request<s::Default>) -> Result<Response<s::Default>, Status> {
        let name = request.into_inner().name;
        ok(s::Default {
            name: if name.is_empty() {
                "default".to_owned()
            } else {
                name
            },
        })
    }
}

impl n::request_server::Request for Named {
    async fn get_ref_rpc(&self, request: Request<s::Body>) -> Result<Response<s::Body>, Status> {
        let mut data = request.into_inner().data;
        data.push(b'!');
        ok(s::Body { data })
    }
}

impl n::response_server::Response for Named {
    async fn into_inner_rpc(&self, request: Request<s::Body>) -> Result<Response<s::Body>, Status> {
        let mut data = request.into_inner().data;
        data.insert(0, b'<');
        ok(s::Body { data })
    }
}

impl n::status_server::Status for Named {
    async fn code(
        &self,
        _: Request<()>,
    ) -> Result<Response<sockrpc::codegen::prost_types::Struct>, Status> {
        Err(Status::new(Code::DataLoss, "Status.Code"))
    }
}

impl n::client_server::Client for Named {
    async fn client(&self, request: Request<s::Client>) -> Result<Response<s::Client>, Status> {
        ok(s::Client {
            name: request.into_inner().name.to_uppercase(),
        })
    }
}

impl n::streaming_server::Streaming for Named {
    type MessageStream = BoxStream<'static, Result<s::Streaming, Status>>;
    async fn message(
        &self,
        request: Request<Streaming<s::Streaming>>,
    ) -> Result<Response<Self::MessageStream>, Status> {
        let answers = request.into_inner().map(|m| {
            m.map(|mut m| {
                m.parts.reverse();
                m
            })
        });
        ok(answers.boxed())
    }
}

impl n::arc_server::Arc for Named {
    async fn count(&self, request: Request<s::Arc>) -> Result<Response<s::Arc>, Status> {
        ok(s::Arc {
            count: request.into_inner().count + 1,
        })
    }
}

impl n::interceptor_server::Interceptor for Named {
    async fn with_interceptor_rpc(
        &self,
        request: Request<s::Interceptor>,
    ) -> Result<Response<s::Interceptor>, Status> {
        ok(s::Interceptor {
            name: format!("intercepted {}", request.into_inner().name),
        })
    }
}

impl n::t_server::T for Named {
    async fn t(&self, request: Request<s::T>) -> Result<Response<s::Svc>, Status> {
        ok(s::Svc {
            svc: request.into_inner().t,
        })
    }
}

impl n::svc_server::Svc for Named {
    async fn svc(&self, request: Request<s::Svc>) -> Result<Response<s::T>, Status> {
        ok(s::T {
            t: request.into_inner().svc,
        })
    }
}

impl n::f_server::F for Named {
    async fn f(&self, request: Request<s::F>) -> Result<Response<s::D>, Status> {
        ok(s::D {
            d: request.into_inner().f,
        })
    }
}

impl n::d_server::D for Named {
    async fn d(&self, request: Request<s::D>) -> Result<Response<s::F>, Status> {
        ok(s::F {
            f: request.into_inner().d,
        })
    }
}

impl n::greeter_server::Greeter for Named {
    async fn greet(
        &self,
        request: Request<s::holder::Greeter>,
    ) -> Result<Response<s::holder::Result>, Status> {
        let switch = if request.into_inner().name.is_empty() {
            s::Switch::Off
        } else {
            s::Switch::On
        };
        ok(s::holder::Result {
            switch: switch as i32,
        })
    }
}

/// Every service of the package on one server.
pub(crate) fn start_named() -> Running {
    start(
        sockrpc::Server::builder()
            .add_service(n::result_server::ResultServer::new(Named))
            .add_service(n::option_server::OptionServer::new(Named))
            .add_service(n::box_server::BoxServer::new(Named))
            .add_service(n::future_server::FutureServer::new(Named))
            .add_service(n::send_server::SendServer::new(Named))
            .add_service(n::sync_server::SyncServer::new(Named))
            .add_service(n::clone_server::CloneServer::new(Named))
            .add_service(n::debug_server::DebugServer::new(Named))
            .add_service(n::default_server::DefaultServer::new(Named))
            .add_service(n::request_server::RequestServer::new(Named))
            .add_service(n::response_server::ResponseServer::new(Named))
            .add_service(n::status_server::StatusServer::new(Named))
            .add_service(n::client_server::ClientServer::new(Named))
            .add_service(n::streaming_server::StreamingServer::new(Named))
            .add_service(n::arc_server::ArcServer::new(Named))
            .add_service(n::interceptor_server::InterceptorServer::new(Named))
            .add_service(n::t_server::TServer::new(Named))
            .add_service(n::svc_server::SvcServer::new(Named))
            .add_service(n::f_server::FServer::new(Named))
            .add_service(n::d_server::DServer::new(Named))
            .add_service(n::greeter_server::GreeterServer::new(Named)),
    )
}

/// The message of a unary call's answer, within [`crate::support::STEP`].
async fn answer<M>(
    what: &str,
    call: impl std::future::Future<Output = Result<Response<M>, Status>>,
) -> M {
    bounded(what, call).await.expect(what).into_inner()
}

#[tokio::test]
async fn result_service_rpcs_named_like_client_and_tower_methods() {
    let server = start_named();
    let mut client = n::result_client::ResultClient::new(channel(&server).await);
    let text = |t: &str| t.to_owned();
    assert_eq!(
        answer("ok", client.ok(s::Ok { text: text("fine") }))
            .await
            .text,
        "not fine"
    );
    let value = answer("ready", client.ready(s::Option { value: text("x") })).await;
    assert_eq!(value.value, "ready x");
    assert_eq!(
        answer("poll_ready", client.poll_ready(s::Box { size: 4 }))
            .await
            .size,
        5
    );
    let call = answer("call", client.call(s::Call { path: text("/p") })).await;
    assert_eq!(call.path, "called /p");
    let items = answer(
        "new",
        client.new_rpc(s::Vec {
            items: vec![1, 2, 3],
        }),
    )
    .await;
    assert_eq!(items.items, [3, 2, 1]);
    let target = answer(
        "connect",
        client.connect_rpc(s::Channel { target: text("t") }),
    )
    .await;
    assert_eq!(target.target, "connected t");
    let of = answer("clone", client.clone_rpc(s::Clone { of: text("me") })).await;
    assert_eq!(of.of, "clone of me");
    let get = answer("HTTPGet", client.http_get(s::String { text: text("/") })).await;
    assert_eq!(get.text, "GET /");
    assert_eq!(
        answer("V2Beta", client.v2_beta(s::Future { at: 21 }))
            .await
            .at,
        42
    );
    // heck's snake case, as prost-build and tonic-build have it: `GetV1APIKeys` → `get_v1api_keys`.
    let pin = answer("keys", client.get_v1api_keys(s::Pin { pinned: false })).await;
    assert!(pin.pinned);
    // The client's own helpers are still there beside the rpcs of their names.
    let _ = client.clone().into_inner();
}

#[tokio::test]
async fn services_named_like_std_items_answer_every_shape() {
    let server = start_named();
    let channel = channel(&server).await;

    let mut option = n::option_client::OptionClient::new(channel.clone());
    let some = answer(
        "some",
        option.some(s::Option {
            value: "v".to_owned(),
        }),
    )
    .await;
    assert_eq!(some.value, "some v");
    let parts = s::Streaming {
        parts: vec!["a".to_owned(), "b".to_owned()],
    };
    let each = answer("stream", option.stream(parts)).await;
    assert_eq!(collect("stream", each).await.len(), 2);

    let mut boxes = n::box_client::BoxClient::new(channel.clone());
    let boxed = [1, 2, 3].map(|size| s::Box { size });
    assert_eq!(
        answer("unbox", boxes.unbox(stream::iter(boxed))).await.size,
        6
    );

    let mut future = n::future_client::FutureClient::new(channel.clone());
    assert_eq!(answer("poll", future.poll(s::Future { at: 1 })).await.at, 2);
    let futures = [5, 6].map(|at| s::Future { at });
    let answers = answer("await", future.r#await(stream::iter(futures))).await;
    let ats: Vec<_> = collect("await", answers)
        .await
        .iter()
        .map(|f| f.at)
        .collect();
    assert_eq!(ats, [-5, -6]);

    let mut send = n::send_client::SendClient::new(channel.clone());
    let data = s::Send { data: vec![1] };
    assert!(answer("send", send.send(data)).await.synced);
    let mut sync = n::sync_client::SyncClient::new(channel.clone());
    assert_eq!(
        answer("sized", sync.sized(s::Sized { size: 2 })).await.size,
        6
    );

    let mut clone = n::clone_client::CloneClient::new(channel.clone());
    let of = answer("clone", clone.clone_rpc(s::Clone { of: "x".to_owned() })).await;
    assert_eq!(of.of, "Clone.Clone x");
    let mut debug = n::debug_client::DebugClient::new(channel.clone());
    let text = answer(
        "fmt",
        debug.fmt_rpc(s::Debug {
            text: "q".to_owned(),
        }),
    )
    .await;
    assert_eq!(text.text, "\"q\"");
    let mut default = n::default_client::DefaultClient::new(channel.clone());
    let named = answer("default", default.default(s::Default::default())).await;
    assert_eq!(named.name, "default");

    let mut arc = n::arc_client::ArcClient::new(channel.clone());
    assert_eq!(
        answer("count", arc.count(s::Arc { count: 1 })).await.count,
        2
    );
}

#[tokio::test]
async fn services_named_like_generated_items_answer() {
    let server = start_named();
    let channel = channel(&server).await;

    let mut request = n::request_client::RequestClient::new(channel.clone());
    let body = answer(
        "get_ref",
        request.get_ref_rpc(s::Body {
            data: b"a".to_vec(),
        }),
    )
    .await;
    assert_eq!(body.data, b"a!");
    let mut response = n::response_client::ResponseClient::new(channel.clone());
    let body = answer(
        "into_inner",
        response.into_inner_rpc(s::Body {
            data: b"a".to_vec(),
        }),
    )
    .await;
    assert_eq!(body.data, b"<a");
    let mut status = n::status_client::StatusClient::new(channel.clone());
    let refused = bounded("code", status.code(())).await.expect_err("refuses");
    assert_eq!(
        (refused.code(), refused.message()),
        (Code::DataLoss, "Status.Code")
    );
    let mut client = n::client_client::ClientClient::new(channel.clone());
    let name = answer(
        "client",
        client.client(s::Client {
            name: "c".to_owned(),
        }),
    )
    .await;
    assert_eq!(name.name, "C");
    let mut streaming = n::streaming_client::StreamingClient::new(channel.clone());
    let parts = s::Streaming {
        parts: vec!["1".to_owned(), "2".to_owned()],
    };
    let answers = answer("message", streaming.message(stream::iter([parts]))).await;
    assert_eq!(collect("message", answers).await[0].parts, ["2", "1"]);
    let mut interceptor = n::interceptor_client::InterceptorClient::new(channel.clone());
    let name = s::Interceptor {
        name: "i".to_owned(),
    };
    let name = answer("with_interceptor", interceptor.with_interceptor_rpc(name)).await;
    assert_eq!(name.name, "intercepted i");

    let mut t = n::t_client::TClient::new(channel.clone());
    assert_eq!(answer("t", t.t(s::T { t: "1".to_owned() })).await.svc, "1");
    let mut svc = n::svc_client::SvcClient::new(channel.clone());
    assert_eq!(
        answer(
            "svc",
            svc.svc(s::Svc {
                svc: "2".to_owned()
            })
        )
        .await
        .t,
        "2"
    );
    let mut f = n::f_client::FClient::new(channel.clone());
    assert_eq!(answer("f", f.f(s::F { f: "3".to_owned() })).await.d, "3");
    let mut d = n::d_client::DClient::new(channel.clone());
    assert_eq!(answer("d", d.d(s::D { d: "4".to_owned() })).await.f, "4");

    let mut greeter = n::greeter_client::GreeterClient::new(channel);
    let name = s::holder::Greeter {
        name: "g".to_owned(),
    };
    let result = answer("greet", greeter.greet(name)).await;
    assert_eq!(result.switch(), s::Switch::On);
}
