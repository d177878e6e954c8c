//! `HedgingPolicy`: gRFC A6's `hedgingPolicy` — how many copies of a call, how far apart, and
//! which failures leave the others worth waiting for.

use crate::attempts::AttemptPolicy;
use crate::retry::CodeSet;
use sockrpc_protocol::Code;
use std::time::Duration;

/// A hedging policy for a method.
#[derive(Debug, Clone, PartialEq)]
pub struct HedgingPolicy {
    pub(crate) max_attempts: u32,
    pub(crate) delay: Duration,
    pub(crate) non_fatal: CodeSet,
}

impl HedgingPolicy {
    /// Up to `max_attempts` copies (the first included; capped at 5 by the layer), each sent
    /// `delay` after the one before unless an answer came first. `UNAVAILABLE` is the one
    /// non-fatal code.
    pub fn new(max_attempts: u32, delay: Duration) -> HedgingPolicy {
        HedgingPolicy {
            max_attempts: max_attempts.max(1),
            delay,
            non_fatal: CodeSet::of([Code::Unavailable]),
        }
    }

    /// Sets the codes after which the other copies are still worth waiting for (and the next
    /// copy goes out at once). Any other failure ends the call and cancels the rest.
    pub fn non_fatal(mut self, codes: impl IntoIterator<Item = Code>) -> HedgingPolicy {
        self.non_fatal = CodeSet::of(codes);
        self
    }

    /// The most copies, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The time between copies.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// Whether a failure with `code` leaves the call going.
    pub fn is_non_fatal(&self, code: Code) -> bool {
        self.non_fatal.contains(code)
    }
}

impl AttemptPolicy for HedgingPolicy {
    fn max_attempts(&self) -> u32 {
        self.max_attempts
    }
}
