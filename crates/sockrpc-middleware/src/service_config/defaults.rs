//! `MethodDefaults`: a service config's `timeout` and `waitForReady`, applied to each call
//! before the retry and hedging layers see it, so every attempt shares the one deadline.

use super::ServiceConfig;
use sockrpc_service::{Call, ConfigDefaults};
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

/// Sets each call's deadline to the smaller of its own (a timeout set, or a `grpc-timeout`
/// entry) and its method's configured `timeout`, and hands the configured `waitForReady` of a
/// call that made no choice to the channel ([`ConfigDefaults`], in the call's extensions). The
/// channel's endpoint keeps the last word, as grpc-go's channel-wide call options do: its
/// shorter `Endpoint::timeout` still bounds a configured deadline, and its
/// `Endpoint::wait_for_ready` set true waits whatever the config says. Made by
/// [`MethodDefaultsLayer`].
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
            let mut endpoint_applies = false;
            if let Some(limit) = method.timeout {
                // A timeout the caller set overrides the endpoint's default (as without a
                // config); a `grpc-timeout` entry, or none, leaves the endpoint's in force.
                let explicit = request.timeout().is_some();
                let own = request.resolve_timeout();
                if own.is_none_or(|own| limit < own) {
                    // The deadline every attempt shares, retries and hedges included.
                    request.set_timeout(limit);
                }
                endpoint_applies = !explicit;
            }
            // Left to the channel, which weighs it against its endpoint's default.
            let wait = method
                .wait_for_ready
                .filter(|_| request.wait_for_ready().is_none());
            if endpoint_applies || wait.is_some() {
                request
                    .extensions_mut()
                    .insert(ConfigDefaults::new(endpoint_applies, wait));
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
