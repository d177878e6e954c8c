//! `ConcurrencyLimitLayer`: which methods are limited, to how many, and how calls wait.

use super::{ConcurrencyLimit, Limit};
use crate::limit::WaitQueue;
use std::{collections::HashMap, sync::Arc, time::Duration};
use tower_layer::Layer;

/// Wraps a service in [`ConcurrencyLimit`]. Every service it makes shares the same limits (so
/// one layer on a server limits calls across all its connections).
///
/// ```ignore
/// Server::builder().layer(
///     ConcurrencyLimitLayer::new()
///         .method("/shop.Orders/Place", 8)
///         .others(64),
/// )
/// ```
#[derive(Debug, Clone)]
pub struct ConcurrencyLimitLayer {
    limits: Arc<Limits>,
}

#[derive(Debug, Clone)]
pub(crate) struct Limits {
    methods: HashMap<String, Arc<Limit>>,
    others: Option<Arc<Limit>>,
    pub(crate) queue: WaitQueue,
}

impl Limits {
    pub(crate) fn for_path(&self, path: &str) -> Option<&Arc<Limit>> {
        if self.methods.is_empty() {
            return self.others.as_ref();
        }
        self.methods.get(path).or(self.others.as_ref())
    }
}

impl Default for ConcurrencyLimitLayer {
    fn default() -> ConcurrencyLimitLayer {
        ConcurrencyLimitLayer::new()
    }
}

impl ConcurrencyLimitLayer {
    /// No limits yet; add them with [`method`](Self::method) and [`others`](Self::others).
    /// Calls over a limit wait in a [`WaitQueue::default()`].
    pub fn new() -> ConcurrencyLimitLayer {
        ConcurrencyLimitLayer {
            limits: Arc::new(Limits {
                methods: HashMap::new(),
                others: None,
                queue: WaitQueue::default(),
            }),
        }
    }

    fn limits(&mut self) -> &mut Limits {
        Arc::make_mut(&mut self.limits)
    }

    /// At most `max` calls of the method at `path` (`/package.Service/Method`) run at once.
    pub fn method(mut self, path: impl Into<String>, max: usize) -> ConcurrencyLimitLayer {
        self.limits()
            .methods
            .insert(path.into(), Arc::new(Limit::new(max)));
        self
    }

    /// At most `max` calls of all other methods together run at once.
    pub fn others(mut self, max: usize) -> ConcurrencyLimitLayer {
        self.limits().others = Some(Arc::new(Limit::new(max)));
        self
    }

    /// Sets how calls over a limit wait.
    pub fn queue(mut self, queue: WaitQueue) -> ConcurrencyLimitLayer {
        self.limits().queue = queue;
        self
    }

    /// Sets the pushback hint of a refusal.
    pub fn pushback(mut self, pushback: Duration) -> ConcurrencyLimitLayer {
        self.limits().queue.pushback = pushback;
        self
    }
}

impl<S> Layer<S> for ConcurrencyLimitLayer {
    type Service = ConcurrencyLimit<S>;

    fn layer(&self, inner: S) -> ConcurrencyLimit<S> {
        ConcurrencyLimit {
            inner,
            limits: Arc::clone(&self.limits),
        }
    }
}
