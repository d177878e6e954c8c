//! [`DynamicServiceConfigLayer`]: a service config that changes while the channel runs, fed by
//! discovery (DNS TXT records: `DnsDiscovery::service_config`), with a default of the user's
//! while the feed has none.
//!
//! Why a layer apart from [`ServiceConfigLayer`]: a channel with a fixed config must not pay
//! for one that may change. Here each service keeps the layers built for the config it saw
//! last and the feed's generation number; a call costs one atomic load of that number, and a
//! change rebuilds the layers once per service (under a mutex taken only then). Calls in
//! flight finish under the config they started with.
//!
//! A published config that gRPC's rules refuse is logged (once per change: a change is a new
//! generation) and the last good one stays, or the default while there was none, as grpc-go's
//! channel keeps its last good config when the resolver reports a bad one.

use super::{MethodDefaults, ServiceConfig, ServiceConfigLayer};
use crate::hedge::Hedge;
use crate::retry::Retry;
use sockrpc_service::discovery::ServiceConfigFeed;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

/// Wraps a channel in the layers of the service config `feed` holds, or of `default` while it
/// holds none. A call costs one atomic load; a change rebuilds the layers once per service, and
/// a config gRPC refuses is logged once and the last good one stays. One layer per channel, as
/// [`ServiceConfigLayer`].
#[derive(Debug, Clone)]
pub struct DynamicServiceConfigLayer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    feed: ServiceConfigFeed,
    default: ServiceConfigLayer,
    /// The layers of the feed's generation read last (the last good config's).
    current: Mutex<(u64, ServiceConfigLayer)>,
}

impl DynamicServiceConfigLayer {
    /// Applies `feed`'s config, or `default` while it has none.
    pub fn new(feed: ServiceConfigFeed, default: &ServiceConfig) -> DynamicServiceConfigLayer {
        let default = default.layer();
        let shared = Shared {
            feed,
            current: Mutex::new((0, default.clone())),
            default,
        };
        // Generation 0 has no config: the default's layers stand for it.
        shared.layers();
        DynamicServiceConfigLayer {
            shared: Arc::new(shared),
        }
    }
}

impl Shared {
    /// The layers of the feed's current config, and its generation; built once per change.
    fn layers(&self) -> (u64, ServiceConfigLayer) {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.0 != self.feed.generation() {
            let (generation, config) = self.feed.current();
            match config {
                None => current.1 = self.default.clone(),
                Some(json) => match ServiceConfig::from_json(&json) {
                    Ok(config) => current.1 = config.layer(),
                    Err(error) => {
                        tracing::warn!(%error, "the discovered service config is refused; keeping the last good one");
                    }
                },
            }
            current.0 = generation;
        }
        (*current).clone()
    }
}

impl<S: Clone> Layer<S> for DynamicServiceConfigLayer {
    type Service = DynamicServiceConfig<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let (seen, layers) = self.shared.layers();
        DynamicServiceConfig {
            stack: layers.layer(inner.clone()),
            inner,
            shared: Arc::clone(&self.shared),
            seen,
        }
    }
}

/// A channel under the layers of the service config last published ([`DynamicServiceConfigLayer`]).
#[derive(Debug, Clone)]
pub struct DynamicServiceConfig<S> {
    inner: S,
    shared: Arc<Shared>,
    /// The feed's generation `stack` was built for.
    seen: u64,
    stack: MethodDefaults<Retry<Hedge<S>>>,
}

impl<S> Service<sockrpc_service::Call> for DynamicServiceConfig<S>
where
    S: Clone,
    MethodDefaults<Retry<Hedge<S>>>: Service<sockrpc_service::Call>,
{
    type Response = <MethodDefaults<Retry<Hedge<S>>> as Service<sockrpc_service::Call>>::Response;
    type Error = <MethodDefaults<Retry<Hedge<S>>> as Service<sockrpc_service::Call>>::Error;
    type Future = <MethodDefaults<Retry<Hedge<S>>> as Service<sockrpc_service::Call>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // A new config is taken here, before readiness, so that `call` uses the layers made
        // ready.
        if self.shared.feed.generation() != self.seen {
            let (seen, layers) = self.shared.layers();
            self.stack = layers.layer(self.inner.clone());
            self.seen = seen;
        }
        self.stack.poll_ready(cx)
    }

    fn call(&mut self, call: sockrpc_service::Call) -> Self::Future {
        self.stack.call(call)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sockrpc_protocol::{MethodPath, Request, Response, Status};
    use sockrpc_service::{Body, Call};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::ServiceExt;

    fn retries(attempts: u32) -> String {
        format!(
            r#"{{"methodConfig": [{{"name": [{{}}], "retryPolicy": {{"maxAttempts": {attempts},
                "initialBackoff": "0.01s", "maxBackoff": "0.01s", "backoffMultiplier": 1,
                "retryableStatusCodes": ["UNAVAILABLE"]}}}}]}}"#
        )
    }

    /// One call through `service` (kept across calls, as a client keeps its channel); how many
    /// attempts the always-failing service under it saw.
    async fn attempts<S>(service: &mut S, seen: &AtomicUsize) -> usize
    where
        S: Service<Call, Error = Status>,
    {
        let before = seen.load(Ordering::SeqCst);
        let call = Call::new(
            MethodPath::from_static("/a.B/C"),
            Request::new(Body::once(Bytes::from_static(b"x"))),
        );
        let result = service.ready().await.map(|s| s.call(call));
        let Ok(future) = result else {
            panic!("not ready");
        };
        assert!(future.await.is_err(), "always down");
        seen.load(Ordering::SeqCst) - before
    }

    #[tokio::test(start_paused = true)]
    async fn each_change_applies_to_the_next_call_and_a_refused_one_keeps_the_last() {
        let seen = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&seen);
        let inner = tower::service_fn(move |_call: Call| {
            count.fetch_add(1, Ordering::SeqCst);
            async { Err::<Response<Body>, Status>(Status::unavailable("down")) }
        });
        let feed = ServiceConfigFeed::new();
        let default = ServiceConfig::from_json(&retries(2)).expect("valid");
        let mut service = DynamicServiceConfigLayer::new(feed.clone(), &default).layer(inner);
        assert_eq!(attempts(&mut service, &seen).await, 2, "the default");
        feed.publish(Some(&retries(4)));
        assert_eq!(
            attempts(&mut service, &seen).await,
            4,
            "the published config"
        );
        feed.publish(Some(
            r#"{"methodConfig": [{"name": [{}], "timeout": "x"}]}"#,
        ));
        assert_eq!(attempts(&mut service, &seen).await, 4, "the last good one");
        feed.publish(Some(&retries(3)));
        assert_eq!(attempts(&mut service, &seen).await, 3);
        feed.publish(None);
        assert_eq!(attempts(&mut service, &seen).await, 2, "the default again");
    }
}
