//! `MethodDefaults`: a service config's `timeout` and `waitForReady`, applied to each call
//! before the retry and hedging layers see it, so every attempt shares the one deadline.

use super::ServiceConfig;
use sockrpc_service::Call;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

/// Sets each call's deadline to the smaller of its own (a timeout set, or a `grpc-timeout`
/// entry) and its method's configured `timeout`, and its wait-for-ready choice to the
/// configured `waitForReady` unless the call made one. Made by [`MethodDefaultsLayer`].
#[derive(Debug, Clone)]
pub struct MethodDefaults<S> {
    inner: S,
    config: Arc<ServiceConfig>,
}

impl<S> MethodDefaults<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Service<Call>> Service<Call> for MethodDefaults<S> {
    type Response = S::Response;
    type Error = S::Error;
    // Nothing to do once the call is on its way: the inner future as it is.
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut call: Call) -> S::Future {
        if let Some(method) = self.config.method_config(call.path()) {
            let request = call.request_mut();
            if let Some(limit) = method.timeout {
                let timeout = request
                    .resolve_timeout()
                    .map_or(limit, |own| own.min(limit));
                request.set_timeout(timeout);
            }
            if let (Some(wait), None) = (method.wait_for_ready, request.wait_for_ready()) {
                request.set_wait_for_ready(wait);
            }
        }
        self.inner.call(call)
    }
}

/// Wraps a service in [`MethodDefaults`].
#[derive(Debug, Clone)]
pub struct MethodDefaultsLayer {
    config: Arc<ServiceConfig>,
}

impl MethodDefaultsLayer {
    /// The timeouts and wait-for-ready choices of `config`.
    pub fn new(config: &ServiceConfig) -> MethodDefaultsLayer {
        MethodDefaultsLayer {
            config: Arc::new(config.clone()),
        }
    }
}

impl<S> Layer<S> for MethodDefaultsLayer {
    type Service = MethodDefaults<S>;

    fn layer(&self, inner: S) -> MethodDefaults<S> {
        MethodDefaults {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}
