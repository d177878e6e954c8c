//! `RequestCharge`: how what a compressed request decompresses to joins its connection's count
//! of running requests.
//!
//! A server bounds what the requests of its unary handlers still running hold on one
//! connection (`Limits::max_running_requests_size`). The transport counts a request's bytes as
//! they arrived; a compressed request is decompressed later, by the service layer, and its
//! handler then holds the decompressed bytes — up to the message limit from about a
//! thousandth of it on the wire (gzip), or less (zstd). Counted at its wire size, 4,096 calls
//! of such requests could hold 16 GiB of one connection against a count of a few MiB. So the
//! transport attaches a `RequestCharge` to a compressed request's extensions, and the layer
//! that decompresses it adds what it decompressed to ([`RequestCharge::add`]); past the
//! budget, that call fails `RESOURCE_EXHAUSTED` as a call past it at arrival does. What was
//! added is given back when the last clone is dropped: the transport keeps one for as long as
//! the call's task runs.

use crate::Status;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A share of one connection's count of what its running requests hold, to which a
/// decompressing layer adds a request's decompressed size. Clones share it; the bytes added
/// leave the count when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct RequestCharge(Arc<Charged>);

#[derive(Debug)]
struct Charged {
    held: Arc<AtomicUsize>,
    budget: usize,
    added: AtomicUsize,
}

impl RequestCharge {
    /// A charge against `held`, a connection's count, whose calls are refused past `budget`.
    pub fn new(held: Arc<AtomicUsize>, budget: usize) -> RequestCharge {
        RequestCharge(Arc::new(Charged {
            held,
            budget,
            added: AtomicUsize::new(0),
        }))
    }

    /// Counts `bytes` more held by this call. `RESOURCE_EXHAUSTED` (and nothing counted) when
    /// the connection's requests already hold more than its budget: as at a call's arrival, a
    /// call is refused only past the budget, so the count exceeds it by one call at most.
    pub fn add(&self, bytes: usize) -> Result<(), Status> {
        let charged = &*self.0;
        let before = charged.held.fetch_add(bytes, Ordering::Relaxed);
        if before > charged.budget {
            charged.held.fetch_sub(bytes, Ordering::Relaxed);
            return Err(Status::resource_exhausted(format!(
                "unary calls running on this connection hold over {} bytes of requests \
                 (decompressed)",
                charged.budget
            )));
        }
        charged.added.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }
}

impl Drop for Charged {
    fn drop(&mut self) {
        self.held
            .fetch_sub(*self.added.get_mut(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_bytes_leave_with_the_last_clone_and_past_the_budget_are_refused() {
        let held = Arc::new(AtomicUsize::new(0));
        let charge = RequestCharge::new(Arc::clone(&held), 100);
        let copy = charge.clone();
        charge.add(80).expect("under the budget");
        copy.add(80).expect("the count was under the budget before");
        assert_eq!(held.load(Ordering::Relaxed), 160);
        let other = RequestCharge::new(Arc::clone(&held), 100);
        let refused = other.add(1).expect_err("past the budget");
        assert_eq!(refused.code(), crate::Code::ResourceExhausted);
        assert_eq!(
            held.load(Ordering::Relaxed),
            160,
            "a refusal counts nothing"
        );
        drop(charge);
        assert_eq!(held.load(Ordering::Relaxed), 160, "a clone still holds it");
        drop(copy);
        assert_eq!(held.load(Ordering::Relaxed), 0);
    }
}
