//! Server pushback: how a server tells a client when (or whether) to try a call again.
//!
//! gRPC's retry design (gRFC A6) puts it in the status's trailing metadata under
//! `grpc-retry-pushback-ms`: a non-negative integer asks the client to wait that many
//! milliseconds before its next attempt (instead of its own backoff); a negative or unreadable
//! value asks it not to retry at all. sockrpc's load shedding sets it on the
//! `RESOURCE_EXHAUSTED` it answers with; the retry and hedging layers obey it.
//!
//! The attempt number travels the other way, client to server, under
//! `grpc-previous-rpc-attempts`: absent on a first attempt, `1` on the second, and so on.

use sockrpc_protocol::Status;
use std::time::Duration;

/// Trailing metadata key of a server's pushback.
pub const RETRY_PUSHBACK_KEY: &str = "grpc-retry-pushback-ms";

/// Request metadata key with how many attempts of this call went before.
pub const PREVIOUS_ATTEMPTS_KEY: &str = "grpc-previous-rpc-attempts";

/// What a server's pushback asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushback {
    /// Try again after this long, not sooner.
    RetryAfter(Duration),
    /// Do not try again.
    DontRetry,
}

impl Pushback {
    /// The pushback a status carries, if any. A value that is not a whole number of
    /// milliseconds, a negative one, and more than one value all mean do not retry, as in
    /// grpc-go.
    pub fn of(status: &Status) -> Option<Pushback> {
        let mut values = status.metadata().get_all(RETRY_PUSHBACK_KEY);
        let raw = values.next()?;
        if values.next().is_some() {
            return Some(DontRetry);
        }
        let parsed = std::str::from_utf8(raw)
            .ok()
            .and_then(|text| text.parse::<i32>().ok());
        Some(match parsed {
            Some(ms) if ms >= 0 => RetryAfter(Duration::from_millis(ms as u64)),
            _ => DontRetry,
        })
    }

    /// Puts this pushback on `status` (replacing any it had).
    pub fn apply(self, status: &mut Status) {
        let value = match self {
            RetryAfter(delay) => delay.as_millis().min(i32::MAX as u128).to_string(),
            DontRetry => "-1".to_owned(),
        };
        // The key and the digits are always valid metadata.
        let _ = status.metadata_mut().insert_str(RETRY_PUSHBACK_KEY, &value);
    }

    /// `status` with this pushback on it.
    pub fn on(self, mut status: Status) -> Status {
        self.apply(&mut status);
        status
    }
}

use Pushback::{DontRetry, RetryAfter};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_garbage_as_dont_retry() {
        let status =
            Pushback::RetryAfter(Duration::from_millis(250)).on(Status::resource_exhausted("busy"));
        assert_eq!(
            Pushback::of(&status),
            Some(Pushback::RetryAfter(Duration::from_millis(250)))
        );
        let status = Pushback::DontRetry.on(Status::unavailable("down"));
        assert_eq!(Pushback::of(&status), Some(Pushback::DontRetry));
        let mut status = Status::unavailable("x");
        status
            .metadata_mut()
            .insert_str(RETRY_PUSHBACK_KEY, "soon")
            .expect("valid");
        assert_eq!(Pushback::of(&status), Some(Pushback::DontRetry));
        assert_eq!(Pushback::of(&Status::unavailable("x")), None);
        // Two values, each valid alone: the server did not say one thing.
        let mut status = Status::unavailable("x");
        for value in ["100", "200"] {
            status
                .metadata_mut()
                .append_str(RETRY_PUSHBACK_KEY, value)
                .expect("valid");
        }
        assert_eq!(Pushback::of(&status), Some(Pushback::DontRetry));
    }
}
