//! tonic's `extensions.rs`, `interceptor.rs`, `client_layer.rs`, `user_agent.rs` and
//! `connect_info.rs`: values an interceptor or a tower layer puts in a request's extensions
//! reach the handler; a client interceptor sees the method it intercepts (tonic's
//! `GrpcMethod`); client-side tower layers set metadata; `Endpoint::user_agent` names the
//! client; a handler knows its caller's addresses (TCP) or that it came over a Unix socket.

use crate::support::{bounded, channel, channel_with, serve, uri};
use sockrpc::middleware::interceptor::InterceptorLayer;
use sockrpc::{Call, Channel, Code, GrpcMethod, NamedService, Request, Response, Server, Status};
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::{Input, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Service, ServiceBuilder};

#[derive(Clone, Debug, PartialEq)]
struct ExtensionValue(i32);

/// Answers with what it found: the extension's value, a metadata entry, the caller's
/// addresses; counts the calls that reached it.
#[derive(Clone, Default)]
struct Svc {
    calls: Arc<AtomicUsize>,
}

impl Test for Svc {
    async fn unary_call(&self, request: Request<Input>) -> Result<Response<Output>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let what = request.metadata().get_str("x-want").unwrap_or("extension");
        let message = match what {
            "extension" => match request.extensions().get::<ExtensionValue>() {
                Some(ExtensionValue(n)) => n.to_string(),
                None => return Err(Status::internal("no ExtensionValue")),
            },
            "conn" => {
                let conn = request
                    .conn_info()
                    .ok_or_else(|| Status::internal("no ConnInfo"))?;
                let cred = conn
                    .peer_cred
                    .map(|cred| (cred.uid(), cred.gid(), cred.pid()));
                format!(
                    "{:?} remote={:?} local={:?} conn_peer={:?} conn_local={:?} cred={cred:?}",
                    conn.transport,
                    request.remote_addr(),
                    conn.local,
                    conn.peer,
                    conn.local
                )
            }
            key => request
                .metadata()
                .get_str(key)
                .ok_or_else(|| Status::internal(format!("{key} is missing")))?
                .to_owned(),
        };
        Ok(Response::new(Output { message }))
    }
}

fn wanting(key: &str) -> Request<Input> {
    let mut request = Request::new(Input {});
    request
        .metadata_mut()
        .insert_str("x-want", key)
        .expect("ascii");
    request
}

async fn message_of(
    client: &mut TestClient<impl sockrpc::ClientService>,
    request: Request<Input>,
) -> String {
    bounded("call", client.unary_call(request))
        .await
        .expect("call")
        .into_inner()
        .message
}

#[tokio::test]
async fn setting_extension_from_interceptor() {
    let svc = TestServer::with_interceptor(Svc::default(), |mut request: Request<()>| {
        request.extensions_mut().insert(ExtensionValue(42));
        Ok(request)
    });
    let server = serve(Server::builder().add_service(svc));
    let mut client = TestClient::new(channel(server.addr).await);
    assert_eq!(message_of(&mut client, Request::new(Input {})).await, "42");
    server.stop().await;
}

/// A tower service in front of a generated server, as tonic's test writes its own: it puts
/// a value in every call's extensions and is mounted like the server it wraps.
#[derive(Clone)]
struct Intercepted<S> {
    inner: S,
}

impl<S: Service<Call>> Service<Call> for Intercepted<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut call: Call) -> S::Future {
        call.request_mut()
            .extensions_mut()
            .insert(ExtensionValue(42));
        self.inner.call(call)
    }
}

impl<S: NamedService> NamedService for Intercepted<S> {
    const NAME: &'static str = S::NAME;
}

#[tokio::test]
async fn setting_extension_from_tower() {
    let svc = Intercepted {
        inner: TestServer::new(Svc::default()),
    };
    let server = serve(Server::builder().add_service(svc));
    let mut client = TestClient::new(channel(server.addr).await);
    assert_eq!(message_of(&mut client, Request::new(Input {})).await, "42");
    server.stop().await;
}

#[tokio::test]
async fn setting_extension_from_a_server_layer() {
    let builder = Server::builder().layer(tower::util::MapRequestLayer::new(|mut call: Call| {
        call.request_mut()
            .extensions_mut()
            .insert(ExtensionValue(7));
        call
    }));
    let server =
        crate::support::serve_layered(builder.add_service(TestServer::new(Svc::default())));
    let mut client = TestClient::new(channel(server.addr).await);
    assert_eq!(message_of(&mut client, Request::new(Input {})).await, "7");
    server.stop().await;
}

#[tokio::test]
async fn interceptor_retrieves_grpc_method() {
    let server = serve(Server::builder().add_service(TestServer::new(Svc::default())));
    let seen = Arc::new(std::sync::Mutex::new(None::<(String, String)>));
    let record = Arc::clone(&seen);
    // A lazy channel, as tonic's test has.
    let channel = Channel::lazy(uri(server.addr)).expect("endpoint");
    let mut client = TestClient::with_interceptor(channel, move |mut request: Request<()>| {
        let method = request
            .extensions()
            .get::<GrpcMethod>()
            .ok_or_else(|| Status::internal("no GrpcMethod"))?;
        *record.lock().expect("lock") =
            Some((method.service().to_owned(), method.method().to_owned()));
        request
            .metadata_mut()
            .insert_str("x-intercepted", "yes")
            .expect("ascii");
        Ok(request)
    });
    assert_eq!(
        message_of(&mut client, wanting("x-intercepted")).await,
        "yes"
    );
    assert_eq!(
        seen.lock().expect("lock").clone(),
        Some(("test.Test".to_owned(), "UnaryCall".to_owned()))
    );
    server.stop().await;
}

#[tokio::test]
async fn a_refusing_interceptor_answers_for_the_handler() {
    let svc = Svc::default();
    let calls = Arc::clone(&svc.calls);
    let refusing = TestServer::with_interceptor(svc, |request: Request<()>| {
        match request.metadata().get_str("authorization") {
            Some("Bearer good") => Ok(request),
            _ => Err(Status::unauthenticated("no valid token")),
        }
    });
    let server = serve(Server::builder().add_service(refusing));
    let mut client = TestClient::new(channel(server.addr).await);
    let err = bounded("refused", client.unary_call(wanting("authorization")))
        .await
        .expect_err("no token");
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(err.message(), "no valid token");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the handler ran");
    let mut request = wanting("authorization");
    request
        .metadata_mut()
        .insert_str("authorization", "Bearer good")
        .expect("ascii");
    assert_eq!(message_of(&mut client, request).await, "Bearer good");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    server.stop().await;
}

#[tokio::test]
async fn connect_supports_standard_tower_layers() {
    let server = serve(Server::builder().add_service(TestServer::new(Svc::default())));
    let channel = Channel::lazy(uri(server.addr)).expect("endpoint");
    // A client-side layer stack that sets a metadata entry on every call, and one of
    // sockrpc's interceptor layers under it.
    let stack = ServiceBuilder::new()
        .map_request(|mut call: Call| {
            let _ = call
                .request_mut()
                .metadata_mut()
                .insert_str("x-test", "test-header");
            call
        })
        .layer(InterceptorLayer::new(|request: Request<()>| Ok(request)))
        .service(channel);
    let mut client = TestClient::new(stack);
    assert_eq!(
        message_of(&mut client, wanting("x-test")).await,
        "test-header"
    );
    server.stop().await;
}

#[tokio::test]
async fn writes_user_agent_header() {
    let server = serve(Server::builder().add_service(TestServer::new(Svc::default())));
    let channel = channel_with(server.addr, |e| {
        e.user_agent("my-client").expect("printable")
    })
    .await;
    let mut client = TestClient::new(channel);
    let agent = message_of(&mut client, wanting("user-agent")).await;
    assert!(agent.starts_with("my-client"), "{agent}");
    // A call that sets its own keeps it.
    let mut request = wanting("user-agent");
    request
        .metadata_mut()
        .insert_str("user-agent", "mine/1.0")
        .expect("ascii");
    assert_eq!(message_of(&mut client, request).await, "mine/1.0");
    server.stop().await;
}

#[tokio::test]
async fn getting_connect_info() {
    let server = serve(Server::builder().add_service(TestServer::new(Svc::default())));
    let mut client = TestClient::new(channel(server.addr).await);
    let seen = message_of(&mut client, wanting("conn")).await;
    let local = format!("local=Some({})", server.addr);
    assert!(seen.starts_with("Tcp remote=Some(127.0.0.1:"), "{seen}");
    assert!(seen.contains(&local), "{seen}");
    assert!(seen.contains("conn_peer=Some(127.0.0.1:"), "{seen}");
    assert!(
        seen.ends_with("cred=None"),
        "no credentials over TCP: {seen}"
    );
    server.stop().await;
}

#[tokio::test]
async fn getting_connect_info_over_a_unix_socket() {
    let dir = std::env::temp_dir().join(format!("sockrpc-parity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("connect-info.sock");
    let _ = std::fs::remove_file(&path);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        Server::builder()
            .add_service(TestServer::new(Svc::default()))
            .serve_unix_with_shutdown(path.clone(), async {
                let _ = stopped.await;
            }),
    );
    let target = format!("unix://{}", path.display());
    let mut client = bounded("connect", async {
        // The server binds its socket on its own task: retry until it is there.
        loop {
            match TestClient::connect(target.clone()).await {
                Ok(client) => break client,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    })
    .await;
    let seen = message_of(&mut client, wanting("conn")).await;
    // Client-side Unix sockets are unnamed: no addresses.
    assert!(seen.starts_with("Unix remote=None"), "{seen}");
    // tonic's `UdsConnectInfo::peer_cred`: the client's process credentials, this process's.
    let (mine, _) = tokio::net::UnixStream::pair().expect("socket pair");
    let me = mine.peer_cred().expect("own credentials");
    let expected = format!(
        "cred={:?}",
        Some((me.uid(), me.gid(), Some(std::process::id() as i32)))
    );
    assert!(seen.ends_with(&expected), "{seen} (expected {expected})");
    let _ = stop.send(());
    bounded("server stops", server)
        .await
        .expect("server task")
        .expect("serve");
    let _ = std::fs::remove_dir_all(&dir);
}
