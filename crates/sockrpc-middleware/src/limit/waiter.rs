//! `Waiter`: a call waiting for room under a limit, and what every limit does when its wait
//! ends — give back its place in the queue, and send it with what remains of its deadline
//! (or fail it `DEADLINE_EXCEEDED`, unsent: [the deadline rule](super#the-wait-counts-against-the-calls-deadline)).
//!
//! The concurrency limit and the rate limit wait for different things (a permit, a token's
//! time) but end a wait the same way; this is that one way. It is a plain field of their
//! futures: nothing allocated, no dynamic call.

use super::{after_wait, Place};
use sockrpc_protocol::Status;
use sockrpc_service::Call;
use tokio::time::Instant;
use tower_service::Service;

/// A waiting call: its deadline, its place in the queue, and the service and call it goes on
/// with.
#[derive(Debug)]
pub(crate) struct Waiter<S> {
    /// The call's deadline, fixed when it entered the layer.
    deadline: Option<Instant>,
    place: Option<Place>,
    rest: Option<(S, Call)>,
}

impl<S: Service<Call>> Waiter<S> {
    /// `call`, holding `place`, waits to go on to `service` (the instance that was ready).
    pub(crate) fn new(deadline: Option<Instant>, place: Place, service: S, call: Call) -> Self {
        Waiter {
            deadline,
            place: Some(place),
            rest: Some((service, call)),
        }
    }

    /// The waiting call's method path, for its refusal (`"?"` once it went on).
    pub(crate) fn path(&self) -> &str {
        self.rest.as_ref().map_or("?", |(_, call)| call.path())
    }

    /// The wait is over: gives back the place and sends the call with what remains of its
    /// deadline; `DEADLINE_EXCEEDED` unsent if none remains.
    pub(crate) fn send(&mut self) -> Result<S::Future, Status> {
        drop(self.place.take());
        let Some((mut service, mut call)) = self.rest.take() else {
            return Err(Status::internal("call lost while waiting"));
        };
        // The wait counts against the call's deadline: it goes with what remains.
        after_wait(&mut call, self.deadline)?;
        Ok(service.call(call))
    }
}
