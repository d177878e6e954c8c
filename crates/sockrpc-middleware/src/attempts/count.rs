//! `Attempts`: one call's attempts under the retry or the hedging layer — the copy kept to
//! send again, the deadline over all of them, how many went, and the throttle's accounting.

use super::{AttemptPolicy, PolicyTable};
use crate::retry::RetryThrottle;
use sockrpc_protocol::{MetadataMap, Response, Status};
use sockrpc_service::{Body, Call, ConfigDefaults, Pushback, PREVIOUS_ATTEMPTS_KEY};
use tokio::time::Instant;

/// One call's attempts: what each later one is made from, and how many were sent.
#[derive(Debug)]
pub(crate) struct Attempts {
    /// The request, kept to make every later attempt from.
    template: Call,
    /// The call's deadline over all its attempts.
    deadline: Option<Instant>,
    /// The policy's attempts under the layer's cap.
    max: u32,
    /// Attempts sent so far (the first included).
    sent: u32,
    throttle: Option<RetryThrottle>,
}

/// How a failed attempt reads, for deciding whether another may go.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Failure {
    /// The server refused it before any handler ran: always safe to send again.
    pub(crate) unprocessed: bool,
    /// The server's pushback, if it sent one.
    pub(crate) pushback: Option<Pushback>,
}

/// Reads a failed attempt's `status` and counts it on `throttle` when it speaks of the server's
/// health, as grpc-go's `shouldRetry` does: its code is one the method's policy lists
/// (`listed`, whether or not another attempt can follow), or the server's pushback refuses
/// more attempts. Never a call refused unprocessed, which reached no handler, nor one this side
/// refused before sending, which reached no server; never twice on
/// one throttle: the status is marked with the throttle it was counted on
/// (`Status::failure_counter`), which a layer above sharing it reads.
pub(crate) fn count_failure(
    throttle: Option<&RetryThrottle>,
    status: &mut Status,
    listed: bool,
) -> Failure {
    let failure = Failure {
        unprocessed: status.is_not_processed(),
        pushback: Pushback::of(status),
    };
    let speaks = !failure.unprocessed
        && !status.is_refused_before_sending()
        && (listed || failure.pushback == Some(Pushback::DontRetry));
    if let Some(throttle) = throttle.filter(|_| speaks) {
        if status.failure_counter() != Some(throttle.id()) {
            throttle.record_failure();
            status.set_failure_counter(throttle.id());
        }
    }
    failure
}

impl Attempts {
    /// The attempts of a call whose first attempt is on its way and `template` a copy of it,
    /// by `policy` under `table`'s cap and throttle.
    pub(crate) fn new<P: AttemptPolicy>(
        mut template: Call,
        policy: &P,
        table: &PolicyTable<P>,
    ) -> Attempts {
        // A `grpc-timeout` entry is the call's deadline as much as a timeout set: the copy kept
        // for later attempts carries it as its timeout (the first attempt, already on its way,
        // leaves it to the channel).
        // A deadline fixed when the caller started the call stands (an attempt never extends it).
        // An entry's deadline stays bounded by the endpoint's default on each attempt.
        ConfigDefaults::resolve_entry(template.request_mut());
        let deadline = template.request_mut().resolve_deadline();
        Attempts {
            template,
            deadline,
            max: policy.max_attempts().min(table.cap),
            sent: 1,
            throttle: table.throttle.clone(),
        }
    }

    /// Attempts sent so far.
    pub(crate) fn sent(&self) -> u32 {
        self.sent
    }

    /// Whether every attempt the policy allows was sent.
    pub(crate) fn exhausted(&self) -> bool {
        self.sent >= self.max
    }

    /// Whether the deadline passed by `now`.
    pub(crate) fn past_deadline(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|deadline| now >= deadline)
    }

    /// Whether the throttle lets another attempt go (always, without one).
    pub(crate) fn throttle_allows(&self) -> bool {
        self.throttle
            .as_ref()
            .is_none_or(RetryThrottle::allows_retry)
    }

    /// The next attempt, counted as sent: a copy of the request with the attempt count and,
    /// at `now`, what remains of the deadline. `None` if the request cannot be copied.
    pub(crate) fn next_call(&mut self, now: Instant) -> Option<Call> {
        let mut call = self.template.try_clone()?;
        let request = call.request_mut();
        // Digits are always a valid value.
        let _ = request
            .metadata_mut()
            .insert_str(PREVIOUS_ATTEMPTS_KEY, &self.sent.to_string());
        if let Some(deadline) = self.deadline {
            // What remains as its timeout, for the layers below; and the deadline itself,
            // which the transport counts from (the server is told what is left when it sends).
            request.hand_on_deadline(deadline, now);
        } else if request.started().is_some() {
            // No deadline of the call's own, but its start noted for one given below (the
            // endpoint's default): that one bounds each attempt afresh, so this attempt's
            // counts from now, not from the call's start (tests/unary/deadline_attempts.rs).
            request.start_call(true);
        }
        self.sent += 1;
        Some(call)
    }

    /// An attempt this side refused before sending it (a message or metadata over its
    /// limits): it does not count as sent.
    pub(crate) fn unsent(&mut self) {
        self.sent = self.sent.saturating_sub(1);
    }

    /// Tells the throttle of an attempt answered `response`: a success once the call ends OK
    /// (`RetryThrottle::count_success`).
    pub(crate) fn succeeded(&self, response: &mut Response<Body>) {
        if let Some(throttle) = &self.throttle {
            throttle.count_success(response);
        }
    }

    /// Reads a failed attempt's `status` (`listed`: the policy sends again on its code) and
    /// tells the throttle of it when it speaks of the server's health ([`count_failure`]).
    pub(crate) fn failed(&self, status: &mut Status, listed: bool) -> Failure {
        count_failure(self.throttle.as_ref(), status, listed)
    }

    /// Puts `grpc-previous-rpc-attempts` (the attempts before the last) on the answer's
    /// metadata, when there was more than one.
    pub(crate) fn annotate(&self, metadata: &mut MetadataMap) {
        if self.sent > 1 {
            let _ = metadata.insert_str(PREVIOUS_ATTEMPTS_KEY, &(self.sent - 1).to_string());
        }
    }

    /// `status`, annotated as the answer.
    pub(crate) fn annotated(&self, mut status: Status) -> Status {
        self.annotate(status.metadata_mut());
        status
    }
}
