//! `Router`: method path → service.
//!
//! The router is the innermost layer, right in front of the handlers, so it is also where a
//! TCP re-issue of a truncated UDP call is answered from the reply cache: by then the call has
//! passed every middleware (authentication included), exactly like a call that runs.

use crate::{Body, BoxError, IntoCallResponse, ReadyQueue};
use crate::{Call, CallFuture, NamedService};
use foldhash::HashMap;
use sockrpc_protocol::{Response, Status};
use std::{
    sync::Arc,
    task::{Context, Poll},
};
use tower_service::Service;

/// A mounted service with its type erased; cloning the service per call is an `Arc` bump for
/// generated servers, and their boxed future passes through without a second box.
trait Route: Send + Sync {
    fn call(&self, call: Call, queue: &ReadyQueue) -> CallFuture;
}

struct ServiceRoute<S>(S);

/// Past this many services, a call's service is found by hashing its name.
const FEW: usize = 8;

/// Service name (its bytes) → route. A server carries a handful of services, so up to [`FEW`]
/// a call's is found in a list whose names are compared by length before their bytes: hashing
/// the name (20 bytes for `sockrpc.bench.Bench`), probing and comparing took about 150
/// instructions a call (`docs/PERFORMANCE-AMD.md`, session 60).
#[derive(Clone, Default)]
struct Routes {
    map: HashMap<Box<[u8]>, Arc<dyn Route>>,
    /// The map's entries while there are at most [`FEW`]; empty past that.
    few: Vec<NamedRoute>,
}

/// A service's name and its route.
type NamedRoute = (Box<[u8]>, Arc<dyn Route>);

impl Routes {
    fn insert(&mut self, name: Box<[u8]>, route: Arc<dyn Route>) {
        self.map.insert(name, route);
        self.few.clear();
        if self.map.len() <= FEW {
            let entries = self.map.iter();
            self.few
                .extend(entries.map(|(name, route)| (name.clone(), Arc::clone(route))));
        }
    }

    #[inline]
    fn get(&self, name: &[u8]) -> Option<&Arc<dyn Route>> {
        if self.map.len() > FEW {
            return self.map.get(name);
        }
        let found = self
            .few
            .iter()
            .find(|(key, _)| key.len() == name.len() && **key == *name);
        found.map(|(_, route)| route)
    }

    fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = (&Box<[u8]>, &Arc<dyn Route>)> {
        self.map.iter()
    }

    fn keys(&self) -> impl Iterator<Item = &Box<[u8]>> {
        self.map.keys()
    }
}

impl<S> Route for ServiceRoute<S>
where
    S: Service<Call> + Clone + Send + Sync + 'static,
    S::Response: IntoCallResponse,
    S::Error: Into<BoxError> + 'static,
    S::Future: Send + 'static,
{
    fn call(&self, call: Call, queue: &ReadyQueue) -> CallFuture {
        // Generated servers are always ready; a service wrapped in a limit may not be, and
        // then the call waits in the bounded queue (see `ReadyQueue`).
        let mut service = self.0.clone();
        queue.call(&mut service, call)
    }
}

/// Routes calls by their path's service part to mounted services; a path nobody serves is
/// `Unimplemented` with the path in the message.
#[derive(Clone, Default)]
pub struct Router {
    /// Keyed by the service name's bytes: a call's path is looked up without checking its
    /// UTF-8 again.
    routes: Arc<Routes>,
    idempotent: Arc<std::collections::HashSet<String>>,
    queue: ReadyQueue,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.services().collect();
        names.sort();
        f.debug_struct("Router").field("services", &names).finish()
    }
}

impl Router {
    /// An empty router.
    pub fn new() -> Router {
        Router::default()
    }

    /// Mounts a generated server under its name — or any named service over [`Call`]s, such
    /// as one wrapped in an interceptor or a limit: its error may be anything that converts
    /// into a [`BoxError`] and its response body any stream of encoded messages. A name already
    /// mounted is served by the service added last (as [`merge`](Router::merge) does): a
    /// generated `grpc.reflection.v1` server added before `add_reflection` is replaced by it.
    pub fn add_service<S>(mut self, service: S) -> Router
    where
        S: NamedService + Service<Call> + Clone + Send + Sync + 'static,
        S::Response: IntoCallResponse,
        S::Error: Into<BoxError> + 'static,
        S::Future: Send + 'static,
    {
        if !S::IDEMPOTENT_METHODS.is_empty() {
            let idempotent = Arc::make_mut(&mut self.idempotent);
            idempotent.extend(S::IDEMPOTENT_METHODS.iter().map(|path| (*path).to_owned()));
        }
        self.add_named(S::NAME, service)
    }

    /// Full paths of the mounted methods that may run more than once (see
    /// [`NamedService::IDEMPOTENT_METHODS`]).
    pub fn idempotent_methods(&self) -> impl Iterator<Item = &str> {
        self.idempotent.iter().map(String::as_str)
    }

    /// Mounts a service under `name` (`package.Service`).
    pub fn add_named<S>(mut self, name: &str, service: S) -> Router
    where
        S: Service<Call> + Clone + Send + Sync + 'static,
        S::Response: IntoCallResponse,
        S::Error: Into<BoxError> + 'static,
        S::Future: Send + 'static,
    {
        let route = ServiceRoute(service);
        Arc::make_mut(&mut self.routes).insert(name.as_bytes().into(), Arc::new(route));
        self
    }

    /// Adds every service `other` mounts to this router (tonic's `Routes` put together):
    /// a service both mount is `other`'s afterwards. This router's ready queue stays.
    pub fn merge(mut self, other: Router) -> Router {
        if !other.routes.is_empty() {
            let routes = Arc::make_mut(&mut self.routes);
            for (name, route) in other.routes.iter() {
                routes.insert(name.clone(), Arc::clone(route));
            }
        }
        if !other.idempotent.is_empty() {
            let idempotent = Arc::make_mut(&mut self.idempotent);
            idempotent.extend(other.idempotent.iter().cloned());
        }
        self
    }

    /// Sets how calls wait for a mounted service that is not ready (see [`ReadyQueue`]).
    pub fn ready_queue(mut self, queue: ReadyQueue) -> Router {
        self.queue = queue;
        self
    }

    /// Names of the mounted services.
    pub fn services(&self) -> impl Iterator<Item = &str> {
        // Inserted from `&str`: always UTF-8.
        self.routes
            .keys()
            .map(|name| std::str::from_utf8(name).unwrap_or_default())
    }
}

impl Service<Call> for Router {
    type Response = Response<Body>;
    type Error = Status;
    type Future = CallFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut call: Call) -> Self::Future {
        match self.routes.get(call.method_path().service_bytes()) {
            // The mark on the call, or, should a layer have rebuilt the call without it, the
            // one the dispatcher keeps beside it (see server/dispatcher.rs).
            Some(route) => match call.take_replay().or_else(crate::server::replay_in_scope) {
                None => route.call(call, &self.queue),
                Some(replay) => {
                    let idempotent = self.idempotent.contains(call.path())
                        || replay.cache.is_idempotent(call.path());
                    let queue = self.queue.clone();
                    replay_call(Arc::clone(route), call, replay, idempotent, queue)
                }
            },
            None => Box::pin(std::future::ready(Err(Status::unimplemented(format!(
                "unknown service {} (path {})",
                call.service(),
                call.path()
            ))))),
        }
    }
}

/// Answers a TCP re-issue of UDP call `replay` from the reply cache: the call already ran, so it
/// must not run again, unless its method is idempotent (the UDP side kept no answer for it).
/// The UDP call, held with an answer that went out TRUNCATED, was let go by the transport as
/// the re-issue arrived, before the layers (`sockrpc-transport`'s `server/reissued.rs`); one
/// still held here ends as this answer does ([`Replayed`]).
fn replay_call(
    route: Arc<dyn Route>,
    call: Call,
    replay: sockrpc_transport::Replay,
    idempotent: bool,
    queue: ReadyQueue,
) -> CallFuture {
    use sockrpc_transport::udp::Lookup;
    Box::pin(Replayed {
        inner: async move {
            let deadline = call
                .request()
                .timeout()
                .map(|t| tokio::time::Instant::now() + t);
            let path = call.method_path().as_bytes().clone();
            let (peer, instance, id) = (replay.peer, replay.instance, replay.call_id);
            let (found, held) = replay
                .cache
                .wait_taking(peer, instance, id, &path, deadline)
                .await;
            let answer = match found {
                Lookup::Done(answer) => answer.map(|response| response.map(Body::once)),
                Lookup::Missing if idempotent => route.call(call, &queue).await,
                Lookup::Missing => Err(Status::aborted(
                    "no cached reply for this UDP re-issue; not running the call again",
                )),
                Lookup::InProgress => Err(Status::deadline_exceeded(
                    "the UDP call this re-issues is still running",
                )),
                Lookup::OtherMethod => Err(Status::invalid_argument(format!(
                    "re-issue of UDP call {id} names {}, not the method that call ran",
                    call.path()
                ))),
            };
            (answer, held)
        },
        held: None,
    })
}

pin_project_lite::pin_project! {
    /// A re-issue's future, which keeps the UDP call held with its answer
    /// ([`HeldCall`](sockrpc_transport::udp::HeldCall)) until it is dropped itself: after its
    /// answer is sent, or inside the transport's `drop_as` when that answer is refused (its
    /// metadata over the client's announced limit, say), so that the UDP side's layers record
    /// the code the caller got. An error answer (an answer too large to keep is `ABORTED`)
    /// ends it at once, with its code.
    struct Replayed<F> {
        #[pin]
        inner: F,
        held: Option<sockrpc_transport::udp::HeldCall>,
    }
}

impl<F> std::future::Future for Replayed<F>
where
    F: std::future::Future<
        Output = (
            Result<Response<Body>, Status>,
            Option<sockrpc_transport::udp::HeldCall>,
        ),
    >,
{
    type Output = Result<Response<Body>, Status>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let (answer, held) = std::task::ready!(this.inner.poll(cx));
        match (&answer, held) {
            (Err(status), Some(held)) => held.drop_as(status.code()),
            (Ok(_), held) => *this.held = held,
            (Err(_), None) => {}
        }
        Poll::Ready(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sockrpc_protocol::{Code, MethodPath, Request};

    /// A service that fails every call with its own name, to show which one a call reached.
    #[derive(Clone)]
    struct Named(String);

    impl Service<Call> for Named {
        type Response = Response<Body>;
        type Error = Status;
        type Future = std::future::Ready<Result<Response<Body>, Status>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Call) -> Self::Future {
            std::future::ready(Err(Status::aborted(self.0.clone())))
        }
    }

    /// Which service a call of `service`'s method reached: its name, or the code it failed with.
    async fn reached(router: &mut Router, service: &str) -> Result<String, Code> {
        let path = Bytes::from(format!("/{service}/Method"));
        let path = MethodPath::try_from_bytes(path).map_err(|_| Code::InvalidArgument)?;
        let call = Call::new(path, Request::new(Body::empty()));
        match router.call(call).await {
            Err(status) if status.code() == Code::Aborted => Ok(status.message().to_owned()),
            Err(status) => Err(status.code()),
            Ok(_) => Err(Code::Ok),
        }
    }

    #[tokio::test]
    async fn few_services_are_found_by_name_and_length() {
        // Names of one length, and one that is another's prefix: the scan compares bytes.
        let names = ["pkg.One", "pkg.Two", "pkg.Six", "pkg.Tw"];
        let mut router = names.iter().fold(Router::new(), |router, name| {
            router.add_named(name, Named((*name).to_owned()))
        });
        for name in names {
            assert_eq!(reached(&mut router, name).await, Ok(name.to_owned()));
        }
        assert_eq!(
            reached(&mut router, "pkg.Ten").await,
            Err(Code::Unimplemented)
        );
        assert_eq!(
            reached(&mut router, "pkg.T").await,
            Err(Code::Unimplemented)
        );
    }

    #[tokio::test]
    async fn many_services_are_found_by_hash() {
        let names: Vec<String> = (0..FEW + 3).map(|i| format!("pkg.Service{i}")).collect();
        let mut router = Router::new();
        for name in &names {
            router = router.add_named(name, Named(name.clone()));
        }
        // Merged in afterwards, past the list: still found.
        let mut router = router.merge(Router::new().add_named("pkg.Late", Named("late".into())));
        assert!(router.routes.few.is_empty());
        for name in &names {
            assert_eq!(reached(&mut router, name).await, Ok(name.clone()));
        }
        assert_eq!(
            reached(&mut router, "pkg.Late").await,
            Ok("late".to_owned())
        );
        assert_eq!(
            reached(&mut router, "pkg.Other").await,
            Err(Code::Unimplemented)
        );
    }
}
