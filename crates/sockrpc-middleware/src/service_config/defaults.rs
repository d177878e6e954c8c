//! `MethodDefaults`: a service config's `timeout`, `waitForReady` and message size limits,
//! applied to each call before the retry and hedging layers see it, so every attempt shares
//! the one deadline and the same limits.

use super::ServiceConfig;
use pin_project_lite::pin_project;
use sockrpc_protocol::Response;
use sockrpc_service::{Body, Call, ConfigDefaults};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

/// Sets each call's deadline to the smaller of its own (a timeout set, or a `grpc-timeout`
/// entry) and its method's configured `timeout`, and hands the configured `waitForReady` of a
/// call that made no choice to the channel ([`ConfigDefaults`], in the call's extensions). The
/// channel's endpoint keeps the last word, as grpc-go's channel-wide call options do: its
/// shorter `Endpoint::timeout` still bounds a configured deadline, and its
/// `Endpoint::wait_for_ready` set true waits whatever the config says.
///
/// `maxRequestMessageBytes` bounds each request message (before compression, as the client's
/// own limit counts; a larger one fails the call `RESOURCE_EXHAUSTED` without being sent, and
/// is not retried or hedged) and `maxResponseMessageBytes` each answer message (after
/// decompression; a larger one fails the call `RESOURCE_EXHAUSTED`), on top of the client's own
/// `max_encoding_message_size` / `max_decoding_message_size`: the smaller wins. The
/// connection's own message limit (the endpoint's, 4 MiB by default) still applies: a config
/// cannot raise it. Made by [`MethodDefaultsLayer`].
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

impl<S: Service<Call, Response = Response<Body>>> Service<Call> for MethodDefaults<S> {
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = MethodDefaultsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut call: Call) -> Self::Future {
        let mut max_response = None;
        if let Some(method) = self.config.method_config(call.path()) {
            let request = call.request_mut();
            if let Some(max) = method.max_request_message_bytes {
                request.get_mut().limit_sent(bytes(max));
            }
            max_response = method.max_response_message_bytes.map(bytes);
            let mut endpoint_applies = false;
            if let Some(limit) = method.timeout {
                // A timeout the caller set overrides the endpoint's default (as without a
                // config); a `grpc-timeout` entry, or none, leaves the endpoint's in force.
                let explicit = request.timeout().is_some();
                let own = request.resolve_timeout();
                if own.is_none_or(|own| limit < own) {
                    // The deadline every attempt shares, retries and hedges included; counted,
                    // like the caller's, from when the call started (a fixed deadline is
                    // `own` after that start).
                    let fixed = request.deadline();
                    request.set_timeout(limit);
                    if let Some(fixed) = fixed {
                        request.set_deadline(shorter(fixed, own, limit));
                    }
                }
                endpoint_applies = !explicit;
            }
            // Left to the channel, which weighs it against its endpoint's default.
            let wait = method
                .wait_for_ready
                .filter(|_| request.wait_for_ready().is_none());
            // A layer above (retries, hedging) that moved a `grpc-timeout` entry into the
            // timeout marked the call so (`ConfigDefaults::resolve_entry`): that mark is kept.
            endpoint_applies |= request
                .extensions()
                .get::<ConfigDefaults>()
                .is_some_and(|d| d.endpoint_timeout_applies);
            if endpoint_applies || wait.is_some() {
                request
                    .extensions_mut()
                    .insert(ConfigDefaults::new(endpoint_applies, wait));
            }
        }
        MethodDefaultsFuture {
            inner: self.inner.call(call),
            max_response,
        }
    }
}

/// A configured size in bytes, as this machine counts them (a larger one is no limit).
fn bytes(max: u64) -> usize {
    usize::try_from(max).unwrap_or(usize::MAX)
}

pin_project! {
    /// The future of a [`MethodDefaults`] call: the inner call's, whose answer it bounds by
    /// the method's `maxResponseMessageBytes`.
    #[derive(Debug)]
    pub struct MethodDefaultsFuture<F> {
        #[pin]
        inner: F,
        max_response: Option<usize>,
    }
}

impl<F, E> Future for MethodDefaultsFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = std::task::ready!(this.inner.poll(cx))?;
        if let Some(max) = *this.max_response {
            response.get_mut().limit_received(max);
        }
        Poll::Ready(Ok(response))
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

/// The deadline of a call whose deadline was `fixed` (its own timeout `own`, if it has one)
/// under a config's shorter `limit`, counted from when the call started: `own` before `fixed`
/// for a deadline fixed from the call's timeout (no clock read), now for one fixed without.
fn shorter(
    fixed: tokio::time::Instant,
    own: Option<std::time::Duration>,
    limit: std::time::Duration,
) -> tokio::time::Instant {
    let limited = match own {
        Some(own) => fixed.checked_sub(own.saturating_sub(limit)),
        None => tokio::time::Instant::now().checked_add(limit),
    };
    limited.map_or(fixed, |limited| limited.min(fixed))
}
