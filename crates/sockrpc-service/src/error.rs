//! Errors from middleware, as a [`Status`].
//!
//! sockrpc's own services fail with [`Status`]. Tower's layers do not: `TimeoutLayer` fails with
//! `Elapsed`, `LoadShedLayer` with `Overloaded`, `Buffer` with its own errors, each boxed into a
//! [`BoxError`]. Generated clients and the server accept any service whose error converts into
//! a `BoxError` and turn it back into the status a caller can act on here, in one place.
//!
//! The mapping looks at the error and then its `source()` chain:
//!
//! | error | status |
//! |-------|--------|
//! | a [`Status`] | itself |
//! | tower's `Elapsed` (timeout) | `DEADLINE_EXCEEDED` |
//! | tower's `Overloaded` (load shed) | `RESOURCE_EXHAUSTED` |
//! | tower's `Closed` (buffer worker gone) | `UNAVAILABLE` |
//! | `std::io::Error` | as [`Status::from_io_error`] (`UNAVAILABLE`, or `INTERNAL` for bad data) |
//! | anything else | `UNKNOWN`, with the error's text |

use sockrpc_protocol::{Code, Status};
use std::error::Error;

/// A boxed error, as tower's layers return them.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// Turns any middleware error into a [`Status`] (see the module docs for the mapping). A
/// `Status` passes through without being boxed on the way.
pub fn status_from_error<E: Into<BoxError> + 'static>(err: E) -> Status {
    let mut slot = Some(err);
    if let Some(status) = (&mut slot as &mut dyn std::any::Any)
        .downcast_mut::<Option<Status>>()
        .and_then(Option::take)
    {
        return status;
    }
    let Some(err) = slot else {
        return Status::internal("error taken twice");
    };
    let err: BoxError = err.into();
    let err = match err.downcast::<Status>() {
        Ok(status) => return *status,
        Err(err) => err,
    };
    let mut cause: Option<&(dyn Error + 'static)> = Some(err.as_ref());
    while let Some(current) = cause {
        if let Some(status) = known(current) {
            return status;
        }
        cause = current.source();
    }
    Status::new(Code::Unknown, err.to_string())
}

fn known(err: &(dyn Error + 'static)) -> Option<Status> {
    if let Some(status) = err.downcast_ref::<Status>() {
        return Some(status.clone());
    }
    if err.is::<tower::timeout::error::Elapsed>() {
        return Some(Status::deadline_exceeded(format!(
            "middleware timed out: {err}"
        )));
    }
    if err.is::<tower::load_shed::error::Overloaded>() {
        return Some(Status::resource_exhausted(format!(
            "middleware shed the call: {err}"
        )));
    }
    if err.is::<tower::buffer::error::Closed>() {
        return Some(Status::unavailable(format!("middleware is gone: {err}")));
    }
    if let Some(io) = err.downcast_ref::<std::io::Error>() {
        return Some(Status::from_io_error(io));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapped(Status);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("wrapped")
        }
    }

    impl Error for Wrapped {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn maps_what_tower_returns() {
        let status = Status::permission_denied("no");
        assert_eq!(status_from_error(status.clone()), status);
        let elapsed: BoxError = Box::new(tower::timeout::error::Elapsed::new());
        assert_eq!(status_from_error(elapsed).code(), Code::DeadlineExceeded);
        let shed: BoxError = Box::new(tower::load_shed::error::Overloaded::new());
        assert_eq!(status_from_error(shed).code(), Code::ResourceExhausted);
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(status_from_error(io).code(), Code::Unavailable);
        let nested = Wrapped(Status::aborted("inner"));
        assert_eq!(status_from_error(nested).code(), Code::Aborted);
        assert_eq!(status_from_error("plain text").code(), Code::Unknown);
    }
}
