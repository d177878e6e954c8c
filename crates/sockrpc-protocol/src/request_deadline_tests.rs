//! A client request's fixed deadline (`Request::{set_timeout, fix_deadline, deadline}`): once
//! the caller has started the call, a layer that sets a timeout may bring the deadline closer,
//! never push it back.

use super::*;

#[test]
fn a_longer_timeout_never_lifts_a_fixed_deadline() {
    let mut request = Request::new(());
    request.set_timeout(Duration::from_secs(1));
    let fixed = request.fix_deadline().expect("fixed from the timeout");
    // A layer below (an interceptor, a tower layer) sets a far longer timeout.
    request.set_timeout(Duration::from_secs(3600));
    assert_eq!(request.timeout(), Some(Duration::from_secs(3600)));
    assert_eq!(
        request.deadline(),
        Some(fixed),
        "the caller's deadline stands"
    );
    assert_eq!(request.fix_deadline(), Some(fixed));
}

#[test]
fn a_shorter_timeout_brings_a_fixed_deadline_closer() {
    let mut request = Request::new(());
    request.set_timeout(Duration::from_secs(3600));
    let fixed = request.fix_deadline().expect("fixed from the timeout");
    request.set_timeout(Duration::from_secs(1));
    let after = Instant::now();
    let deadline = request.deadline().expect("still fixed");
    assert!(deadline < fixed, "{deadline:?} not before {fixed:?}");
    assert!(
        deadline <= after + Duration::from_secs(1),
        "counted from the set"
    );
}

#[test]
fn a_timeout_before_the_deadline_is_fixed_only_sets_the_timeout() {
    let mut request = Request::new(());
    request.set_timeout(Duration::from_secs(1));
    request.set_timeout(Duration::from_secs(5));
    assert_eq!(request.deadline(), None);
    let before = Instant::now();
    let fixed = request.fix_deadline().expect("fixed");
    // The last timeout set, counted from the fix.
    assert!(fixed >= before + Duration::from_secs(5));
}

#[test]
fn a_deadline_is_fixed_outside_any_runtime() {
    // tokio's `Instant::now` reads the system clock when no runtime is running (no panic).
    assert!(tokio::runtime::Handle::try_current().is_err());
    let mut request = Request::new(());
    request.set_timeout(Duration::from_millis(250));
    let before = Instant::now();
    let fixed = request.fix_deadline().expect("fixed");
    assert!(fixed >= before + Duration::from_millis(250));
}
