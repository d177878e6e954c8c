//! What retrying and hedging share: both send one call several times (gRFC A6 treats them as
//! two ways of doing one thing), so both choose a policy per call the same way and keep the
//! same count of the copies sent.
//!
//! - [`PolicyTable`]: which policy a call gets — one set for its method, else for its
//!   service, else the one its idempotency level earns, else the fallback — under the layer's
//!   cap on attempts, with the throttle every attempt after the first asks.
//! - [`Attempts`]: one call's attempts — the copy kept to send again, its deadline, how many
//!   went, `grpc-previous-rpc-attempts` on each later one and on the answer, and the
//!   throttle's accounting of successes and of failures that speak of the server's health.
//! - [`Once`]: the same accounting for a call the layer sends a single time.
//!
//! The layers differ in when the next attempt goes (after a failure and a backoff, or after a
//! delay with the first still running) and in which idempotency level earns a policy; that
//! stays in [`retry`](crate::retry) and [`hedge`](crate::hedge). Both pieces here are plain
//! fields of the layer's config and of the call's future: no allocation and no dynamic call
//! of their own on a call's path.

mod count;
mod once;
mod table;

pub(crate) use count::Attempts;
pub(crate) use once::Once;
pub(crate) use table::{AttemptPolicy, PolicyTable};

#[cfg(test)]
mod tests;
