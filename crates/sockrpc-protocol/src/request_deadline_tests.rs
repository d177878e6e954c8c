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

#[test]
fn a_request_rebuilt_from_its_parts_keeps_its_deadline() {
    let mut request = Request::new(());
    request.set_timeout(Duration::from_secs(2));
    let fixed = request.fix_deadline().expect("fixed");
    let (metadata, message, timing) = request.into_parts();
    let rebuilt = Request::from_parts(metadata, message, timing);
    assert_eq!(rebuilt.deadline(), Some(fixed));
    assert_eq!(rebuilt.timeout(), Some(Duration::from_secs(2)));
    // A bare timeout still makes a request with no deadline.
    let bare = Request::from_parts(MetadataMap::new(), (), Some(Duration::from_secs(2)));
    assert_eq!(
        (bare.deadline(), bare.timeout()),
        (None, Some(Duration::from_secs(2)))
    );
}

#[test]
fn a_timeout_that_comes_later_counts_from_the_noted_start() {
    // No timeout and nothing that may give one: no start noted (no clock read).
    let mut request = Request::new(());
    assert_eq!(request.start_call(false), None);
    assert_eq!(request.started(), None);
    // A `grpc-timeout` entry, or a channel's default, may give one: the start is noted.
    let mut request = Request::new(());
    let _ = request
        .metadata_mut()
        .insert_str(crate::GRPC_TIMEOUT_KEY, "1S");
    assert_eq!(request.start_call(false), None);
    let started = request.started().expect("noted");
    assert!(started <= Instant::now());
    let mut request = Request::new(());
    request.start_call(true);
    let began = request.started().expect("noted");
    // A timeout set later counts from the start, not from its fixing.
    request.set_timeout(Duration::from_secs(1));
    let deadline = request.fix_deadline().expect("fixed");
    assert_eq!(deadline, began + Duration::from_secs(1));
    assert_eq!(request.started(), None, "the deadline replaced the start");
}

#[test]
fn a_deadline_handed_on_keeps_its_instant_and_says_what_is_left() {
    let mut request = Request::new(());
    request.set_timeout(Duration::from_secs(5));
    let fixed = request.fix_deadline().expect("fixed");
    let now = fixed - Duration::from_secs(2);
    request.hand_on_deadline(fixed, now);
    assert_eq!(request.deadline(), Some(fixed));
    assert_eq!(request.timeout(), Some(Duration::from_secs(2)));
    // Past it: nothing left, the instant unchanged.
    request.hand_on_deadline(fixed, fixed + Duration::from_secs(1));
    assert_eq!(
        (request.deadline(), request.timeout()),
        (Some(fixed), Some(Duration::ZERO))
    );
}
