use super::*;
use bytes::Bytes;
use sockrpc_protocol::{Code, Response};
use sockrpc_service::Body;
use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};
use tower::ServiceExt;

#[derive(Debug, Clone, PartialEq)]
struct Principal(String);

fn call(path: &'static str, token: Option<&str>) -> Call {
    let mut request = Request::new(Body::once(Bytes::from_static(b"hi")));
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert_str("authorization", &format!("Bearer {token}"))
            .expect("valid");
    }
    Call::new(MethodPath::from_static(path), request)
}

/// Answers with what the call carried: the principal, the tag and the method path.
fn echo(
    calls: Arc<AtomicUsize>,
) -> impl Service<Call, Response = Response<Body>, Error = Status, Future: Send> + Clone {
    tower::service_fn(move |call: Call| {
        calls.fetch_add(1, Ordering::SeqCst);
        let request = call.request();
        let who = request
            .extensions()
            .get::<Principal>()
            .map_or("nobody".to_owned(), |p| p.0.clone());
        let tag = request
            .metadata()
            .get_str("x-tag")
            .unwrap_or("-")
            .to_owned();
        let method = request
            .extensions()
            .get::<MethodPath>()
            .map_or("?".to_owned(), |m| m.as_str().to_owned());
        let answer = format!("{who} {tag} {method}");
        async move { Ok(Response::new(Body::once(Bytes::from(answer)))) }
    })
}

fn auth(mut request: Request<()>) -> Result<Request<()>, Status> {
    let token = request
        .metadata()
        .get_str("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let method = request
        .extensions()
        .get::<MethodPath>()
        .map(|m| m.method().to_owned());
    match (token.as_deref(), method.as_deref()) {
        (None, _) => Err(Status::unauthenticated("no token")),
        (Some("reader"), Some("Write")) => Err(Status::permission_denied("read only")),
        (Some(who), _) => {
            request.extensions_mut().insert(Principal(who.to_owned()));
            request
                .metadata_mut()
                .insert_str("x-tag", "seen")
                .expect("valid");
            Ok(request)
        }
    }
}

async fn text(response: Response<Body>) -> String {
    let body = response.into_inner().single().await.expect("one message");
    String::from_utf8(body.to_vec()).expect("utf-8")
}

#[tokio::test]
async fn interceptor_rejects_per_method_without_calling_the_service() {
    let calls = Arc::new(AtomicUsize::new(0));
    let service = InterceptedService::new(echo(Arc::clone(&calls)), auth);

    let err = service
        .clone()
        .oneshot(call("/s.Svc/Read", None))
        .await
        .expect_err("no token");
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = service
        .clone()
        .oneshot(call("/s.Svc/Write", Some("reader")))
        .await
        .expect_err("reader may not write");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(calls.load(Ordering::SeqCst), 0, "refused calls never ran");

    let ok = service
        .oneshot(call("/s.Svc/Read", Some("reader")))
        .await
        .expect("reader may read");
    assert_eq!(text(ok).await, "reader seen /s.Svc/Read");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn interceptor_async_waits_then_annotates_or_rejects() {
    let calls = Arc::new(AtomicUsize::new(0));
    let lookup = |request: Request<()>| async move {
        // A token lookup that takes a while.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        auth(request)
    };
    let layer = AsyncInterceptorLayer::new(lookup);
    let service = tower_layer::Layer::layer(&layer, echo(Arc::clone(&calls)));

    let started = tokio::time::Instant::now();
    let ok = service
        .clone()
        .oneshot(call("/s.Svc/Write", Some("admin")))
        .await
        .expect("admin may write");
    assert_eq!(text(ok).await, "admin seen /s.Svc/Write");
    assert!(started.elapsed() >= std::time::Duration::from_millis(50));

    let err = service
        .oneshot(call("/s.Svc/Write", Some("reader")))
        .await
        .expect_err("reader may not write");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn interceptor_layer_keeps_a_boxed_error_type() {
    // Behind tower's timeout the error is a BoxError; a refusal still comes out as the status.
    let calls = Arc::new(AtomicUsize::new(0));
    let stack = tower::ServiceBuilder::new()
        .layer(InterceptorLayer::new(auth))
        .timeout(std::time::Duration::from_secs(1))
        .service(echo(calls));
    let err = stack
        .oneshot(call("/s.Svc/Read", None))
        .await
        .expect_err("no token");
    let status = sockrpc_service::status_from_error(err);
    assert_eq!(status.code(), Code::Unauthenticated);
}
