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
//!
//! A stream whose client names an encoding gets one too, and it counts the message its handler
//! read last ([`RequestCharge::hold`], called by `Streaming` in the service layer for each
//! message: what a compressed one decompressed to, nothing for a plain one), about what a
//! handler that works on one message at a time holds. Uncounted, 8 gzip streams of one 1 MiB
//! message each (1 KiB on the wire) held 8 MiB under a 4 MiB budget. Counted at their largest
//! message instead, streams that began with a large message and went on with small ones (a
//! snapshot, then updates) held the budget while their handlers held nothing, and every new
//! call on the connection was refused for as long as they ran
//! (`tests/hostile/compressed_streams.rs`).
//!
//! A charge counts its call's one request message once, however many copies of the call decode
//! it: a layer that runs a call again (`Call::try_clone`, as retry and hedging layers do)
//! clones the extensions, and so the charge, and each copy's handler decompresses the same
//! message and adds its size. Summed, a call retried once counted twice what it held, and the
//! connection refused other calls early, for as long as the call ran. So [`add`](RequestCharge::add)
//! counts the largest size added to the charge, not the sum.

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

    /// Counts that this call's request message decompressed to `bytes`. A copy of the call
    /// (`Call::try_clone`) decoding the same message again counts nothing more: the charge
    /// holds the largest size added to it, not their sum. `RESOURCE_EXHAUSTED` (and nothing
    /// counted) when the count must grow and the connection's requests already hold more than
    /// its budget: as at a call's arrival, a call is refused only past the budget, so the count
    /// exceeds it by one call at most.
    pub fn add(&self, bytes: usize) -> Result<(), Status> {
        self.add_from(bytes, self.0.added.load(Ordering::Relaxed))
    }

    /// Counts `bytes` instead of what this charge counted so far: a stream's handler read a
    /// message that decompressed to `bytes` (0: one that came plain, counted as it arrived),
    /// and works on it now rather than on the one before. What the charge counted is given
    /// back first; then, as for [`add`](Self::add), `RESOURCE_EXHAUSTED` (and nothing
    /// counted) when the connection's requests hold more than its budget. Not for a call whose
    /// copies decode the same message ([`add`](Self::add) is).
    pub fn hold(&self, bytes: usize) -> Result<(), Status> {
        let charged = &*self.0;
        // What was counted leaves first, so the message before does not count against this
        // one: a stream is refused only when the rest of the connection is past the budget,
        // as a new call is.
        let before = charged.added.swap(0, Ordering::Relaxed);
        charged.held.fetch_sub(before, Ordering::Relaxed);
        if bytes == 0 {
            return Ok(());
        }
        if charged.held.fetch_add(bytes, Ordering::Relaxed) > charged.budget {
            charged.held.fetch_sub(bytes, Ordering::Relaxed);
            return Err(over_budget(charged.budget));
        }
        // Added to, not set: what another clone counted meanwhile stays counted, and leaves
        // with the last clone.
        charged.added.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }

    /// [`add`](Self::add), `added` being what this copy last read of the charge's count.
    fn add_from(&self, bytes: usize, mut added: usize) -> Result<(), Status> {
        let charged = &*self.0;
        // Bounded in practice: each retry follows another copy's add of the same charge, and a
        // call has a few copies at most.
        loop {
            let Some(more) = bytes.checked_sub(added).filter(|more| *more > 0) else {
                // Counted already, by this copy or another.
                return Ok(());
            };
            let before = charged.held.fetch_add(more, Ordering::Relaxed);
            if before > charged.budget {
                charged.held.fetch_sub(more, Ordering::Relaxed);
                let now = charged.added.load(Ordering::Relaxed);
                if now != added {
                    // Another copy counted since this one looked, and `before` held its share:
                    // what is left to count (if anything) is judged afresh. (A copy between
                    // its `fetch_add` and its exchange is not seen here: a refusal then is
                    // spurious, in a window of a few instructions.)
                    added = now;
                    continue;
                }
                return Err(over_budget(charged.budget));
            }
            match charged
                .added
                .compare_exchange(added, bytes, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(now) => {
                    // Another copy counted meanwhile: take this count back and look again.
                    charged.held.fetch_sub(more, Ordering::Relaxed);
                    added = now;
                }
            }
        }
    }
}

/// The refusal of a request past the connection's budget of running requests.
fn over_budget(budget: usize) -> Status {
    Status::resource_exhausted(format!(
        "calls running on this connection hold over {budget} bytes of requests (decompressed)"
    ))
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
        let second = RequestCharge::new(Arc::clone(&held), 100);
        second
            .add(80)
            .expect("the count was under the budget before");
        assert_eq!(held.load(Ordering::Relaxed), 160);
        let other = RequestCharge::new(Arc::clone(&held), 100);
        let refused = other.add(1).expect_err("past the budget");
        assert_eq!(refused.code(), crate::Code::ResourceExhausted);
        assert_eq!(
            held.load(Ordering::Relaxed),
            160,
            "a refusal counts nothing"
        );
        drop(second);
        assert_eq!(held.load(Ordering::Relaxed), 80);
        drop(charge);
        assert_eq!(held.load(Ordering::Relaxed), 80, "a clone still holds it");
        drop(copy);
        assert_eq!(held.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_copy_of_the_call_decoding_its_message_again_counts_it_once() {
        // A retry layer on the server copies the call (`Call::try_clone` clones the
        // extensions, and so the charge) and runs it again: each attempt's handler decodes the
        // same message and adds its size. Summed, the call counted 2 x 80 against a budget of
        // 100, and the second attempt was refused although the call held one 80-byte message.
        let held = Arc::new(AtomicUsize::new(0));
        let charge = RequestCharge::new(Arc::clone(&held), 100);
        let retried = charge.clone();
        charge.add(80).expect("under the budget");
        // Over the budget meanwhile by another call's count: the copy is not refused, since
        // its message is counted already.
        held.fetch_add(50, Ordering::Relaxed);
        retried.add(80).expect("the same message, counted already");
        assert_eq!(held.load(Ordering::Relaxed), 130, "counted once");
        held.fetch_sub(50, Ordering::Relaxed);
        // A larger size (never the same message, but so defined) counts the difference.
        retried.add(90).expect("under the budget before");
        assert_eq!(held.load(Ordering::Relaxed), 90);
        drop(charge);
        drop(retried);
        assert_eq!(held.load(Ordering::Relaxed), 0, "the count returns to zero");
    }

    #[test]
    fn a_stream_counts_the_message_it_read_last() {
        let held = Arc::new(AtomicUsize::new(0));
        let stream = RequestCharge::new(Arc::clone(&held), 100);
        let kept = stream.clone();
        stream.hold(80).expect("under the budget");
        assert_eq!(held.load(Ordering::Relaxed), 80);
        // A small message after the large one: the large one no longer counts.
        stream.hold(5).expect("smaller");
        assert_eq!(held.load(Ordering::Relaxed), 5);
        // The rest of the connection past the budget: a larger message is refused, and the
        // stream counts nothing more (its call ends).
        held.fetch_add(150, Ordering::Relaxed);
        let refused = stream.hold(10).expect_err("past the budget");
        assert_eq!(refused.code(), crate::Code::ResourceExhausted);
        assert_eq!(held.load(Ordering::Relaxed), 150);
        held.fetch_sub(150, Ordering::Relaxed);
        // Its own message before does not count against the next one.
        stream.hold(90).expect("under the budget");
        stream.hold(95).expect("the 90 before leaves first");
        // A plain message: nothing counted beyond its wire size.
        stream.hold(0).expect("nothing");
        assert_eq!(held.load(Ordering::Relaxed), 0);
        stream.hold(60).expect("under the budget");
        drop(stream);
        assert_eq!(held.load(Ordering::Relaxed), 60, "a clone still holds it");
        drop(kept);
        assert_eq!(held.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_copy_that_looked_before_another_counted_is_not_refused_for_its_share() {
        // Hedging runs copies of a call at once: each decodes the same message and adds its
        // size. A copy that read `added` before the other counted (`add_from(.., 0)`), and
        // added after, saw the count with the other's share in it: past the budget, it was
        // refused, although the message was counted and the count without it was under the
        // budget. (A two-thread stress of this interleaving refused about one copy in 10^5.)
        let held = Arc::new(AtomicUsize::new(50));
        let charge = RequestCharge::new(Arc::clone(&held), 100);
        let hedged = charge.clone();
        charge.add(80).expect("under the budget");
        hedged
            .add_from(80, 0)
            .expect("the same message, counted by the other copy meanwhile");
        assert_eq!(held.load(Ordering::Relaxed), 130, "counted once");
        drop((charge, hedged));
        assert_eq!(held.load(Ordering::Relaxed), 50);
    }
}
