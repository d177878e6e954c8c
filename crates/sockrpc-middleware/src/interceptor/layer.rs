//! The layers for interceptors: [`InterceptorLayer`] and [`AsyncInterceptorLayer`].

use super::{AsyncInterceptedService, InterceptedService};
use tower_layer::Layer;

/// Puts a synchronous [`Interceptor`](super::Interceptor) in front of a service.
#[derive(Debug, Clone)]
pub struct InterceptorLayer<F> {
    interceptor: F,
}

impl<F> InterceptorLayer<F> {
    /// A layer running `interceptor` on every call.
    pub fn new(interceptor: F) -> InterceptorLayer<F> {
        InterceptorLayer { interceptor }
    }
}

impl<S, F: Clone> Layer<S> for InterceptorLayer<F> {
    type Service = InterceptedService<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        InterceptedService::new(inner, self.interceptor.clone())
    }
}

/// Puts an [`AsyncInterceptor`](super::AsyncInterceptor) in front of a service.
#[derive(Debug, Clone)]
pub struct AsyncInterceptorLayer<F> {
    interceptor: F,
}

impl<F> AsyncInterceptorLayer<F> {
    /// A layer running `interceptor` on every call.
    pub fn new(interceptor: F) -> AsyncInterceptorLayer<F> {
        AsyncInterceptorLayer { interceptor }
    }
}

impl<S, F: Clone> Layer<S> for AsyncInterceptorLayer<F> {
    type Service = AsyncInterceptedService<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        AsyncInterceptedService::new(inner, self.interceptor.clone())
    }
}
