//! `Dispatcher`: the service layer as the transport sees it.
//!
//! The transport hands every call, from TCP, Unix sockets and UDP alike, to one
//! [`Dispatch`] implementation; this is it. It turns the transport's [`IncomingCall`] into a
//! [`Call`] and runs the layered router, so both transports go through the same middleware and
//! the same router, in the same way.

use crate::{Body, Call, RouteService};
use sockrpc_transport::{Dispatch, DispatchFuture, IncomingCall};

/// Runs the layered router for each call a transport receives.
#[derive(Debug, Clone)]
pub struct Dispatcher<S> {
    service: S,
}

impl<S> Dispatcher<S> {
    /// Wraps the service every connection runs (the router inside its layers).
    pub fn new(service: S) -> Dispatcher<S> {
        Dispatcher { service }
    }
}

impl<S> Dispatch for Dispatcher<S>
where
    S: RouteService + Clone + Send + Unpin + 'static,
{
    type Body = Body;

    fn dispatch(&mut self, call: IncomingCall) -> DispatchFuture<Body> {
        self.service.call(Call::from_incoming(call))
    }
}
