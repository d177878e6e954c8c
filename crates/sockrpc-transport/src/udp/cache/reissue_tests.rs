//! The reply cache's tests of TCP re-issues waiting for a UDP call: each wait is woken by its
//! own call's notifier (`reissue.rs`), whatever happens to that call meanwhile. Apart from
//! `tests.rs`, which holds the cache's bookkeeping.

use super::*;
use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

const PATH: &[u8] = b"/p.S/M";
const HOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

fn path() -> Bytes {
    Bytes::from_static(PATH)
}

fn ok(n: usize) -> Result<Response<Bytes>, Status> {
    Ok(Response::new(Bytes::from(vec![1u8; n])))
}

thread_local! {
    /// Run once by the next wait on this thread after its first look, before it registers with
    /// the notifier that look found (`reissue.rs`).
    static BETWEEN: RefCell<Option<Box<dyn FnOnce()>>> = RefCell::new(None);
}

/// Called by a wait between its first look and registering with the notifier it found.
pub(super) fn between_looks() {
    if let Some(hook) = BETWEEN.with(|hook| hook.borrow_mut().take()) {
        hook();
    }
}

/// Whether `(instance, call_id)` runs with a notifier made for re-issues waiting on it, and
/// how many hold that notifier beside its slot.
fn watchers(cache: &ReplyCache, instance: u64, call_id: u32) -> Option<usize> {
    match cache.lock().map.get(&(instance, call_id)) {
        Some(Slot::Running {
            ended: Some(ended), ..
        }) => Some(Arc::strong_count(ended) - 1),
        _ => None,
    }
}

#[tokio::test(start_paused = true)]
async fn a_wait_that_times_out_leaves_nothing_waiting() {
    let cache = ReplyCache::default();
    assert!(matches!(cache.begin(HOST, 2, 2, &path(), None), Begin::New));
    assert_eq!(
        watchers(&cache, 2, 2),
        None,
        "no notifier until a re-issue waits"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_millis(50);
    assert!(matches!(
        cache.wait(Some(HOST), 2, 2, PATH, Some(deadline)).await,
        Lookup::InProgress
    ));
    assert_eq!(watchers(&cache, 2, 2), Some(0), "the wait let go of it");
    cache.complete(2, 2, ok(1));
    assert!(matches!(
        cache.wait(Some(HOST), 2, 2, PATH, None).await,
        Lookup::Done(Ok(_))
    ));
}

#[tokio::test]
async fn a_wait_wakes_for_its_own_call_only() {
    let cache = Arc::new(ReplyCache::default());
    for id in [1, 2] {
        assert!(matches!(
            cache.begin(HOST, 3, id, &path(), None),
            Begin::New
        ));
    }
    let waiting = Arc::clone(&cache);
    let wait = tokio::spawn(async move { waiting.wait(Some(HOST), 3, 1, PATH, None).await });
    wait_for_watcher(&cache, 3, 1).await;
    // Another call ends: the wait is not told (call 2 has no notifier of its own).
    assert_eq!(watchers(&cache, 3, 2), None);
    cache.complete(3, 2, ok(1));
    // Its own call ends: it gets its answer.
    cache.complete(3, 1, ok(5));
    let found = tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("woken")
        .expect("task");
    assert!(matches!(found, Lookup::Done(Ok(_))), "{found:?}");
}

#[tokio::test]
async fn a_wait_for_a_call_forgotten_unrun_ends_at_once() {
    let cache = Arc::new(ReplyCache::default());
    assert!(matches!(cache.begin(HOST, 4, 1, &path(), None), Begin::New));
    let waiting = Arc::clone(&cache);
    let wait = tokio::spawn(async move { waiting.wait(Some(HOST), 4, 1, PATH, None).await });
    wait_for_watcher(&cache, 4, 1).await;
    // The server was overloaded and did not run it after all: nothing will end it.
    cache.abandon(4, 1);
    let found = tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("woken, not left waiting for ever")
        .expect("task");
    assert!(matches!(found, Lookup::Missing), "{found:?}");
}

#[tokio::test(start_paused = true)]
async fn a_wait_whose_call_runs_again_between_its_looks_wakes_when_the_new_run_ends() {
    let cache = Arc::new(ReplyCache::default());
    assert!(matches!(cache.begin(HOST, 5, 1, &path(), None), Begin::New));
    // After the wait's first look, before it registers, the run it found is forgotten unrun
    // (the server was overloaded; that run's notifier woke no one), and a retransmission
    // begins the call again: the second look finds it running, under a notifier of its own.
    let other = Arc::clone(&cache);
    BETWEEN.with(|hook| {
        *hook.borrow_mut() = Some(Box::new(move || {
            other.abandon(5, 1);
            assert!(matches!(other.begin(HOST, 5, 1, &path(), None), Begin::New));
        }))
    });
    let waiting = Arc::clone(&cache);
    let wait = tokio::spawn(async move { waiting.wait(Some(HOST), 5, 1, PATH, None).await });
    for _ in 0..100 {
        if watchers(&cache, 5, 1) == Some(1) {
            break;
        }
        tokio::task::yield_now().await;
    }
    // The new run ends: the wait gets its answer, not left on the first run's notifier.
    cache.complete(5, 1, ok(2));
    let found = tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("woken by the run that ended")
        .expect("task");
    assert!(matches!(found, Lookup::Done(Ok(_))), "{found:?}");
}

/// Yields until one wait watches call `call_id` of `instance`: at most 10,000 turns (a current-thread
/// runtime runs the spawned wait within a few).
async fn wait_for_watcher(cache: &ReplyCache, instance: u64, call_id: u32) {
    for _ in 0..10_000 {
        if watchers(cache, instance, call_id) == Some(1) {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the wait never registered for call {call_id}");
}
