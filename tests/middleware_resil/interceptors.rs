//! Interceptors on generated servers and clients: a bearer-token check per method, metadata
//! and extensions handed inward, connection info and the user agent.

use super::*;
use sockrpc::middleware::interceptor::{AsyncInterceptorLayer, InterceptorLayer};
use sockrpc::{Endpoint, MethodPath};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::EchoServer;
use std::sync::atomic::AtomicUsize;

/// `Bearer <name>`: anyone with a token may call `Echo`; only `admin` may call `Fail`.
fn bearer_auth(mut request: Request<()>) -> Result<Request<()>, Status> {
    let token = request
        .metadata()
        .get_str("authorization")
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::to_owned)
        .ok_or_else(|| Status::unauthenticated("missing bearer token"))?;
    let method = request
        .extensions()
        .get::<MethodPath>()
        .map(|path| path.method().to_owned())
        .unwrap_or_default();
    if method == "Fail" && token != "admin" {
        return Err(Status::permission_denied(format!(
            "{token} may not call {method}"
        )));
    }
    request.extensions_mut().insert(Principal(token));
    Ok(request)
}

fn with_token(token: &'static str) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |mut request: Request<()>| {
        request
            .metadata_mut()
            .insert_str("authorization", &format!("Bearer {token}"))
            .map_err(|err| Status::internal(err.to_string()))?;
        Ok(request)
    }
}

fn fail_request() -> FailRequest {
    FailRequest {
        code: Code::Aborted as i32,
        message: "as asked".into(),
        details: Bytes::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interceptor_on_a_generated_server_rejects_per_method_and_annotates() {
    let server = Running::start(
        sockrpc::Server::builder().add_service(EchoServer::with_interceptor(Plain, bearer_auth)),
    )
    .await;
    let channel = server.channel().await;

    let err = bounded("no token", EchoClient::new(channel.clone()).echo(whoami()))
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::Unauthenticated);

    let mut reader = EchoClient::with_interceptor(channel.clone(), with_token("reader"));
    let reply = bounded("reader Echo", reader.echo(whoami()))
        .await
        .expect("reader may echo");
    let text = String::from_utf8(reply.into_inner().payload.to_vec()).expect("utf-8");
    assert!(
        text.starts_with("reader|"),
        "the handler saw the principal: {text}"
    );
    let err = bounded("reader Fail", reader.fail(fail_request()))
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::PermissionDenied);

    let mut admin = EchoClient::with_interceptor(channel, with_token("admin"));
    let err = bounded("admin Fail", admin.fail(fail_request()))
        .await
        .expect_err("the handler's own failure");
    assert_eq!(err.code(), Code::Aborted, "admin passed the interceptor");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interceptor_on_a_client_refuses_before_sending() {
    let server =
        Running::start(sockrpc::Server::builder().add_service(EchoServer::new(Plain))).await;
    let sent = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&sent);
    let mut client =
        EchoClient::with_interceptor(server.channel().await, move |_request: Request<()>| {
            counted.fetch_add(1, Ordering::SeqCst);
            Err::<Request<()>, _>(Status::failed_precondition("offline mode"))
        });
    let err = bounded("Echo", client.echo(whoami()))
        .await
        .expect_err("refused locally");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(sent.load(Ordering::SeqCst), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interceptor_async_layer_on_the_server_sees_connection_info_and_user_agent() {
    // An async check (a token lookup) in front of every service, from the builder.
    let lookup = |request: Request<()>| async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        bearer_auth(request)
    };
    let server = Running::start(
        sockrpc::Server::builder()
            // The first layer added is the outermost and runs first: only calls with a token
            // reach the async check.
            .layer(InterceptorLayer::new(|request: Request<()>| match request
                .metadata()
                .contains_key("authorization")
            {
                true => Ok(request),
                false => Err(Status::unauthenticated("no token at all")),
            }))
            .layer(AsyncInterceptorLayer::new(lookup))
            .add_service(EchoServer::new(Plain)),
    )
    .await;
    let endpoint = Endpoint::new("127.0.0.1", server.addr.port())
        .user_agent("resil-test/1.0")
        .expect("ascii");
    let channel = sockrpc::Channel::connect(endpoint).await.expect("connect");
    let mut client = EchoClient::with_interceptor(channel, with_token("ops"));
    let reply = bounded("Echo", client.echo(whoami())).await.expect("Echo");
    let text = String::from_utf8(reply.into_inner().payload.to_vec()).expect("utf-8");
    // principal | user agent | transport, peer (the client's ephemeral port), local (ours)
    let prefix = format!(
        "ops|resil-test/1.0 sockrpc/{}|Tcp Some(127.0.0.1:",
        env!("CARGO_PKG_VERSION")
    );
    assert!(text.starts_with(&prefix), "{text}");
    assert!(
        text.ends_with(&format!(") Some({})", server.addr)),
        "{text}"
    );

    let err = bounded(
        "no token",
        EchoClient::new(server.channel().await).echo(whoami()),
    )
    .await
    .expect_err("the sync layer refuses first");
    assert_eq!(err.message(), "no token at all");
    server.stop().await;
}
