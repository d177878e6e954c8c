//! Why a call's future or body is being dropped before it finished.
//!
//! A layer that watches a call (a span, a metrics guard) and sees its future or its answer's
//! body dropped unfinished records the call as `CANCELLED`, since that is what a drop usually
//! means: the caller gave up. But a server's transport also drops a call's future or body when
//! it ends the call itself:
//!
//! - a handler, or the stream it answers with, panicked: the client gets `INTERNAL`;
//! - the call's deadline passed: `DEADLINE_EXCEEDED`;
//! - a streamed answer's message was over the send limit: `RESOURCE_EXHAUSTED`;
//! - a one-message answer could not be sent (over the send limit: `RESOURCE_EXHAUSTED`; its
//!   metadata over the client's limit: `INTERNAL`): the handler's future completed `OK`, and is
//!   dropped after the refusal. A layer that waits for its future's drop to record an answer
//!   it passed whole (sockrpc's trace and metrics layers on a server) asks [`ending_as`].
//!
//! Recorded as `CANCELLED`, those failures vanished from dashboards and from error-based trace
//! sampling, which count `CANCELLED` as the client's doing. The transport now drops such a
//! future or body inside [`drop_as`], and a drop path asks [`dropped_as`] which code to record.
//!
//! Why a thread-local and not a field of the call: a drop runs synchronously, so what runs
//! inside [`drop_as`] is what that call's future owns, and no call pays anything unless it is
//! dropped this way. What it owns may include client calls its handler made (a proxy): a
//! watcher of a client call should not read the code, since that call was given up, not failed
//! (sockrpc's middleware reads it on the server side only). A layer of one's own can use it the
//! same way.

use sockrpc_protocol::Code;
use std::{
    cell::Cell,
    panic::{catch_unwind, AssertUnwindSafe},
};

thread_local! {
    /// The code of the call whose parts are being dropped on this thread, if any.
    static DROPPING_AS: Cell<Option<Code>> = const { Cell::new(None) };
}

/// Drops `value`, a call's future or body, as ended with `code`: what runs in its drop sees
/// `code` from [`dropped_as`]. A panic in the drop is caught: the call has already failed, and
/// the connection serves others.
pub fn drop_as<T>(code: Code, value: T) {
    dropping_as(code, move || drop(value));
}

/// Runs `drop`, which drops a call's future or body (in place, say, with `Pin::set`), as
/// [`drop_as`] does.
pub(crate) fn dropping_as(code: Code, drop: impl FnOnce()) {
    let before = DROPPING_AS.with(|cell| cell.replace(Some(code)));
    let dropped = catch_unwind(AssertUnwindSafe(drop));
    DROPPING_AS.with(|cell| cell.set(before));
    if dropped.is_err() {
        tracing::debug!(%code, "a call's future panicked while being dropped");
    }
}

/// Drops `value`, a call's future, catching a panic in its drop, as [`drop_as`] does, but with
/// no code: what runs in its drop sees what an ordinary drop sees (`CANCELLED` for a future
/// the client gave up, nothing for one that finished). A call's future dropped on its
/// connection's task must not unwind through it: every other call there would fail with it,
/// and a second such drop during that unwinding aborts the process.
pub(crate) fn drop_caught<T>(value: T) {
    if catch_unwind(AssertUnwindSafe(move || drop(value))).is_err() {
        tracing::debug!("a call's future panicked while being dropped");
    }
}

/// The code a call's part being dropped now ended with: the one given to [`drop_as`] when the
/// drop runs inside it, else `CANCELLED` (the caller or the connection gave the call up).
pub fn dropped_as() -> Code {
    ending_as().unwrap_or(Code::Cancelled)
}

/// The code given to [`drop_as`] when the drop running now runs inside it, else `None`: for a
/// future that completed, whose drop is ordinary unless the transport then refused its answer.
pub fn ending_as() -> Option<Code> {
    DROPPING_AS.with(Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what [`dropped_as`] says when it is dropped.
    struct Witness<'a>(&'a Cell<Option<Code>>);

    impl Drop for Witness<'_> {
        fn drop(&mut self) {
            self.0.set(Some(dropped_as()));
        }
    }

    #[test]
    fn a_drop_inside_drop_as_sees_its_code_and_one_outside_sees_cancelled() {
        let seen = Cell::new(None);
        drop_as(Code::Internal, Witness(&seen));
        assert_eq!(seen.get(), Some(Code::Internal));
        drop(Witness(&seen));
        assert_eq!(seen.get(), Some(Code::Cancelled));
        assert_eq!(ending_as(), None);
        // Nested: the inner code holds inside, the outer one is back after.
        let inner = Cell::new(None);
        let outer = Cell::new(None);
        drop_as(
            Code::DeadlineExceeded,
            (
                Witness(&outer),
                Nest(Code::ResourceExhausted, Some(Witness(&inner))),
            ),
        );
        assert_eq!(inner.get(), Some(Code::ResourceExhausted));
        assert_eq!(outer.get(), Some(Code::DeadlineExceeded));
        assert_eq!(dropped_as(), Code::Cancelled);
    }

    /// Drops what it holds inside `drop_as` with its own code.
    struct Nest<'a>(Code, Option<Witness<'a>>);

    impl Drop for Nest<'_> {
        fn drop(&mut self) {
            drop_as(self.0, self.1.take());
        }
    }

    #[test]
    fn a_panicking_drop_is_caught_without_a_code() {
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                std::panic::resume_unwind(Box::new("drop panics"));
            }
        }
        let seen = Cell::new(None);
        drop_caught((Bomb, Witness(&seen)));
        assert_eq!(
            seen.get(),
            Some(Code::Cancelled),
            "what it held was dropped too"
        );
        assert_eq!(ending_as(), None);
    }

    #[test]
    fn a_panicking_drop_is_caught_and_the_code_is_cleared() {
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("drop panics");
            }
        }
        drop_as(Code::Internal, Bomb);
        assert_eq!(dropped_as(), Code::Cancelled);
    }
}
