//! `Dispatcher`: the service layer as the transport sees it.
//!
//! The transport hands every call, from TCP, Unix sockets and UDP alike, to one
//! [`Dispatch`] implementation; this is it. It turns the transport's [`IncomingCall`] into a
//! [`Call`] and runs the layered router, so both transports go through the same middleware and
//! the same router, in the same way.
//!
//! A TCP re-issue of a UDP call must reach the router still marked as one, or the router would
//! run a call that already ran. A middleware layer may rebuild the `Call` (`into_parts`, then
//! `Call::new`) and drop the mark with it, so the mark also travels beside the call, in a
//! task-local scope around both the synchronous `call` and every poll of its future: whatever a
//! layer does, the router finds it.
//!
//! Not with tokio's `LocalKey::scope`, whose future drops the call's future as soon as it
//! completes: the transport drops a call's future after it checked the answer, inside
//! `ending::drop_as` when it refused it (its metadata over the client's limit, say), and the
//! layers that record a one-message answer at that drop recorded such a re-issue `OK`, as did
//! the UDP call held with it (`sockrpc_transport::udp::HeldCall`).

use crate::{Body, Call, RouteService};
use pin_project_lite::pin_project;
use sockrpc_transport::{Dispatch, DispatchFuture, IncomingCall, Replay};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

tokio::task_local! {
    static REPLAY: Replay;
}

/// The re-issue being dispatched on this task, if any (read by the router).
pub(crate) fn replay_in_scope() -> Option<Replay> {
    REPLAY.try_with(Replay::clone).ok()
}

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
        match call.replay.clone() {
            None => self.service.call(Call::from_incoming(call)),
            Some(replay) => {
                let service = &mut self.service;
                let future =
                    REPLAY.sync_scope(replay.clone(), || service.call(Call::from_incoming(call)));
                Box::pin(InReplay {
                    inner: future,
                    replay,
                })
            }
        }
    }
}

pin_project! {
    /// A re-issue's future, polled inside the task-local scope of its mark, and dropped only
    /// when the transport drops it (see the module's documentation).
    struct InReplay<F> {
        #[pin]
        inner: F,
        replay: Replay,
    }
}

impl<F: Future> Future for InReplay<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let inner = this.inner;
        REPLAY.sync_scope(this.replay.clone(), || inner.poll(cx))
    }
}
