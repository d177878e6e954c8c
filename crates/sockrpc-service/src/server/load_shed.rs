//! tonic's `load_shed(bool)` and `concurrency_limit_per_connection(n)`, settled when serving
//! starts because tonic takes them in either order.
//!
//! tonic's server buffers a call its middleware is not ready for, unless load shedding is on:
//! then the call is refused at once with `RESOURCE_EXHAUSTED`. sockrpc's server already
//! queues such calls (a bounded [`ReadyQueue`]); load shedding empties that queue. tonic's
//! per-connection concurrency limit is a tower layer its clients know nothing of; sockrpc's
//! limit of calls per connection is announced, so a sockrpc client waits for room instead of
//! sending. With load shedding the limit is kept unannounced
//! ([`ServerConfig::shed_past_calls`]): a call past it is sent and refused, as with tonic.

use super::ServerBuilder;
use crate::ReadyQueue;
use sockrpc_transport::server::ServerConfig;

/// The two settings as given, applied by [`Shedding::apply`] when serving starts.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Shedding {
    load_shed: bool,
    per_connection: Option<usize>,
}

impl Shedding {
    /// The config and ready queue the server runs with under these settings.
    pub(super) fn apply(
        &self,
        config: &ServerConfig,
        queue: &ReadyQueue,
    ) -> (ServerConfig, ReadyQueue) {
        let mut config = config.clone();
        match self.per_connection {
            // Without load shedding tonic's calls past the limit wait, as a sockrpc client's
            // do for an announced limit; a limit of 0 would make them wait for ever, so it
            // refuses them instead.
            Some(n) if self.load_shed || n == 0 => config.shed_past_calls = Some(n),
            Some(n) => config.max_concurrent_calls = n,
            None => {}
        }
        let queue = if self.load_shed {
            queue.shedding()
        } else {
            queue.clone()
        };
        (config, queue)
    }
}

impl<L> ServerBuilder<L> {
    /// Turns load shedding on or off (off by default), as tonic's `load_shed`: when on, a call
    /// that finds the server's middleware not ready for it (a concurrency limit that is full,
    /// a rate limit, a service that said "not now") is refused at once with
    /// `RESOURCE_EXHAUSTED` and a pushback hint, its handler never run, instead of waiting in
    /// the [`ReadyQueue`]; with
    /// [`concurrency_limit_per_connection`](ServerBuilder::concurrency_limit_per_connection),
    /// so is a call past that limit. The refusal is the server's: a client is not told
    /// beforehand, and does not retry it unless its retry policy says so.
    pub fn load_shed(mut self, on: bool) -> Self {
        self.shedding.load_shed = on;
        self
    }

    /// How many calls one connection may have in flight, tonic's name. Without
    /// [`load_shed`](ServerBuilder::load_shed) it is
    /// [`max_concurrent_calls`](ServerBuilder::max_concurrent_calls): announced, a sockrpc
    /// client's calls past it wait for room. With `load_shed(true)` it is not announced and a
    /// call past it is refused at once with `RESOURCE_EXHAUSTED`, as tonic's server does
    /// ([`ServerConfig::shed_past_calls`]). A limit of 0 refuses every call (tonic's would
    /// make every call wait for ever without load shedding). A call counts until it ends,
    /// a stream until its status. Settled when serving starts, so it and `load_shed` may come
    /// in either order. Without `load_shed` it replaces `max_concurrent_calls` then, whichever
    /// of the two was set last.
    pub fn concurrency_limit_per_connection(mut self, n: usize) -> Self {
        self.shedding.per_connection = Some(n);
        self
    }
}
