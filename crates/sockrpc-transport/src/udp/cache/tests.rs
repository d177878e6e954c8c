//! The reply cache's own tests: at-most-once bookkeeping, bounds, ageing, watermarks.

use super::paths::MAX_PATHS;
use super::*;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const PATH: &[u8] = b"/p.S/M";
/// The source of every call unless a test says otherwise.
const HOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

fn path() -> Bytes {
    Bytes::from_static(PATH)
}

fn ok(n: usize) -> Result<Response<Bytes>, Status> {
    Ok(Response::new(Bytes::from(vec![1u8; n])))
}

#[test]
fn begin_complete_lookup() {
    let cache = ReplyCache::default();
    assert!(matches!(cache.begin(HOST, 1, 1, &path(), None), Begin::New));
    assert!(matches!(
        cache.begin(HOST, 1, 1, &path(), None),
        Begin::InProgress
    ));
    assert!(matches!(
        cache.lookup(Some(HOST), 1, 1, PATH),
        Lookup::InProgress
    ));
    cache.complete(1, 1, ok(3));
    assert!(matches!(
        cache.begin(HOST, 1, 1, &path(), None),
        Begin::Done(Ok(_))
    ));
    let other = Bytes::from_static(b"/p.S/Other");
    assert!(matches!(
        cache.begin(HOST, 1, 1, &other, None),
        Begin::OtherMethod
    ));
    assert!(
        matches!(cache.lookup(Some(HOST), 1, 1, PATH), Lookup::Done(Ok(r)) if r.get_ref().len() == 3)
    );
    assert!(matches!(
        cache.lookup(Some(HOST), 1, 1, b"/p.S/Other"),
        Lookup::OtherMethod
    ));
    assert!(matches!(
        cache.lookup(Some(HOST), 2, 1, PATH),
        Lookup::Missing
    ));
}

#[test]
fn young_answers_are_never_evicted_a_full_cache_refuses_new_calls() {
    let config = ReplyCacheConfig {
        max_entries: 2,
        max_bytes: 10_000,
        ..ReplyCacheConfig::default()
    };
    let cache = ReplyCache::new(config);
    for id in 1..=2 {
        assert!(matches!(
            cache.begin(HOST, 1, id, &path(), None),
            Begin::New
        ));
        cache.complete(1, id, ok(10));
    }
    // Full of answers younger than the ttl: a new call is refused, the old answers stay.
    assert!(matches!(
        cache.begin(HOST, 1, 3, &path(), None),
        Begin::Full
    ));
    assert!(matches!(
        cache.lookup(Some(HOST), 1, 1, PATH),
        Lookup::Done(Ok(_))
    ));
    assert!(matches!(
        cache.begin(HOST, 1, 2, &path(), None),
        Begin::Done(Ok(_))
    ));
}

#[test]
fn an_answer_over_the_byte_bound_is_kept_as_an_aborted_status() {
    let config = ReplyCacheConfig {
        max_bytes: 10_000,
        ..ReplyCacheConfig::default()
    };
    let cache = ReplyCache::new(config);
    assert!(matches!(cache.begin(HOST, 1, 4, &path(), None), Begin::New));
    cache.complete(1, 4, ok(20_000));
    assert!(cache.bytes() <= 10_000);
    assert!(matches!(
        cache.lookup(Some(HOST), 1, 4, PATH),
        Lookup::Done(Err(s)) if s.code() == sockrpc_protocol::Code::Aborted
    ));
}

#[tokio::test(start_paused = true)]
async fn entries_age_out_after_the_ttl() {
    let cache = ReplyCache::default();
    assert!(matches!(cache.begin(HOST, 1, 1, &path(), None), Begin::New));
    cache.complete(1, 1, ok(1));
    assert_eq!(cache.len(), 1);
    // The cache reads the std clock: step past the ttl by waiting on it for real would be
    // slow, so check the rule directly on a state aged by hand.
    let mut state = cache.lock();
    let old = Instant::now() - cache.config.ttl - Duration::from_millis(1);
    state.order[0].1 = old;
    if let Some(Slot::Done { finished, .. }) = state.map.get_mut(&(1, 1)) {
        *finished = old;
    }
    cache.expire(&mut state, Instant::now());
    assert!(state.map.is_empty());
}

/// The ttl's edge: an answer exactly `ttl` old goes, one a millisecond younger stays.
#[test]
fn the_ttl_is_counted_from_the_answer_to_the_instant() {
    let cache = ReplyCache::default();
    for id in [1, 2] {
        assert!(matches!(
            cache.begin(HOST, 1, id, &path(), None),
            Begin::New
        ));
        cache.complete(1, id, ok(1));
    }
    let now = Instant::now();
    let mut state = cache.lock();
    let ages = [
        cache.config.ttl,
        cache.config.ttl - Duration::from_millis(1),
    ];
    for (i, age) in ages.into_iter().enumerate() {
        state.order[i].1 = now - age;
        let key = state.order[i].0;
        if let Some(Slot::Done { finished, .. }) = state.map.get_mut(&key) {
            *finished = now - age;
        }
    }
    cache.expire(&mut state, now);
    assert!(!state.map.contains_key(&(1, 1)), "ttl old: gone");
    assert!(state.map.contains_key(&(1, 2)), "younger: kept");
    assert_eq!(state.order.len(), 1);
}

/// A client with one call in flight acks each call in its next REQUEST: the acked answer's
/// record in the eviction order goes with it, instead of waiting to be compacted away.
#[test]
fn acked_answers_leave_no_record_in_the_eviction_order() {
    let cache = ReplyCache::default();
    cache.ack(HOST, 9, 1);
    for id in 1..=200u32 {
        assert!(matches!(
            cache.begin(HOST, 9, id, &path(), Some(id)),
            Begin::New
        ));
        cache.complete(9, id, ok(10));
        let state = cache.lock();
        assert_eq!((state.done, state.order.len()), (1, 1), "call {id}");
    }
    // Two in flight (201 and 202, each REQUEST acking 200): the acked call is not the newest, so its record waits (and is passed
    // over by `expire`, or compacted away, later); the entry itself still goes at once.
    assert!(matches!(
        cache.begin(HOST, 9, 201, &path(), Some(201)),
        Begin::New
    ));
    assert!(matches!(
        cache.begin(HOST, 9, 202, &path(), Some(201)),
        Begin::New
    ));
    cache.complete(9, 201, ok(10));
    cache.complete(9, 202, ok(10));
    assert!(matches!(
        cache.begin(HOST, 9, 203, &path(), Some(202)),
        Begin::New
    ));
    let state = cache.lock();
    assert_eq!(state.done, 1);
    assert!(state.map.contains_key(&(9, 202)));
    assert_eq!(state.order.len(), 2, "the record of 201 waits behind 202's");
}

#[tokio::test]
async fn wait_sees_completion_and_guard_completes_on_drop() {
    let cache = std::sync::Arc::new(ReplyCache::default());
    assert!(matches!(cache.begin(HOST, 5, 5, &path(), None), Begin::New));
    let waiter = {
        let cache = std::sync::Arc::clone(&cache);
        tokio::spawn(async move { cache.wait(Some(HOST), 5, 5, PATH, None).await })
    };
    tokio::task::yield_now().await;
    drop(CompletionGuard {
        cache: std::sync::Arc::clone(&cache),
        key: Some((5, 5)),
    });
    let got = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("in time")
        .expect("task");
    assert!(matches!(got, Lookup::Done(Err(s)) if s.code() == sockrpc_protocol::Code::Aborted));
}

#[test]
fn a_watermark_drops_answers_at_once_and_refuses_late_duplicates() {
    let config = ReplyCacheConfig {
        max_entries: 4,
        ..ReplyCacheConfig::default()
    };
    let cache = ReplyCache::new(config);
    // The client's first watermark: nothing done yet.
    cache.ack(HOST, 9, 1);
    // Far more calls than max_entries: each REQUEST says the one before it is done.
    for id in 1..=100u32 {
        cache.ack(HOST, 9, id);
        assert!(
            matches!(cache.begin(HOST, 9, id, &path(), None), Begin::New),
            "call {id}"
        );
        cache.complete(9, id, ok(10));
        assert!(
            cache.len() <= 2,
            "{} answers kept at call {id}",
            cache.len()
        );
    }
    assert!(matches!(
        cache.begin(HOST, 9, 99, &path(), None),
        Begin::Stale
    ));
    assert!(matches!(
        cache.begin(HOST, 9, 100, &path(), None),
        Begin::Done(Ok(_))
    ));
    cache.ack(HOST, 9, 101);
    assert_eq!(cache.len(), 0);
    assert!(matches!(
        cache.lookup(Some(HOST), 9, 100, PATH),
        Lookup::Missing
    ));
    // Another client is untouched by this one's watermark.
    assert!(matches!(
        cache.begin(HOST, 10, 5, &path(), None),
        Begin::New
    ));
    // A call given up while it ran: its answer is not kept.
    assert!(matches!(
        cache.begin(HOST, 9, 101, &path(), None),
        Begin::New
    ));
    cache.ack(HOST, 9, 102);
    cache.complete(9, 101, ok(1));
    assert!(matches!(
        cache.lookup(Some(HOST), 9, 101, PATH),
        Lookup::Missing
    ));
    assert!(cache.bytes() < 1_000);
}

/// A call that needed retransmissions holds its client's watermark back while later calls
/// finish; when it ends, the mark jumps past all of them at once. Their answers go too, over
/// the client's next requests, so round after round of such stragglers never fills the cache.
/// (When a jump swept at most 256 ids and left the rest to the 30 s ttl, 745 answers of the
/// first round stayed, and the second round would have been refused: `Begin::Full`.)
#[test]
fn a_straggler_s_jump_leaves_no_answer_behind() {
    const LATER: u32 = 1_000;
    let config = ReplyCacheConfig {
        max_entries: 1_500,
        ..ReplyCacheConfig::default()
    };
    let cache = ReplyCache::new(config);
    let mut next = 1u32;
    for round in 0..5 {
        // The straggler, still outstanding: every later request carries its id as the mark.
        let straggler = next;
        assert!(matches!(
            cache.begin(HOST, 9, straggler, &path(), Some(straggler)),
            Begin::New
        ));
        for id in straggler + 1..=straggler + LATER {
            assert!(
                matches!(
                    cache.begin(HOST, 9, id, &path(), Some(straggler)),
                    Begin::New
                ),
                "round {round}, call {id}: {} answers kept",
                cache.len()
            );
            cache.complete(9, id, ok(10));
        }
        cache.complete(9, straggler, ok(10));
        assert_eq!(
            cache.len(),
            LATER as usize + 1,
            "all held behind the straggler"
        );
        // Its answer came: the mark jumps past everything, and the next calls sweep.
        next = straggler + LATER + 1;
        for id in next..next + 8 {
            assert!(matches!(
                cache.begin(HOST, 9, id, &path(), Some(id)),
                Begin::New
            ));
            cache.complete(9, id, ok(10));
        }
        next += 8;
        assert!(
            cache.len() <= 2,
            "round {round}: {} answers left behind by the jump",
            cache.len()
        );
    }
    // The jump still refuses late duplicates of what it passed over.
    assert!(matches!(
        cache.begin(HOST, 9, 2, &path(), Some(next)),
        Begin::Stale
    ));
}

#[test]
fn an_entry_does_not_keep_its_request_datagram_alive() {
    let cache = ReplyCache::default();
    // The path as the UDP server hands it over: a slice of the whole datagram.
    let mut datagram = vec![0u8; 1200];
    datagram[..PATH.len()].copy_from_slice(PATH);
    let datagram = Bytes::from(datagram);
    let path = datagram.slice(..PATH.len());
    assert!(matches!(cache.begin(HOST, 1, 1, &path, None), Begin::New));
    drop(path);
    assert!(
        datagram.is_unique(),
        "the cache holds a slice of the datagram, which keeps all of it"
    );
    cache.complete(1, 1, ok(3));
    assert!(datagram.is_unique());
    assert!(matches!(
        cache.lookup(Some(HOST), 1, 1, PATH),
        Lookup::Done(Ok(_))
    ));
}

#[test]
fn many_distinct_paths_stay_told_apart() {
    let cache = ReplyCache::default();
    let count = MAX_PATHS as u32 + 10;
    for id in 1..=count {
        let own = Bytes::from(format!("/p.S/M{id}"));
        assert!(matches!(cache.begin(HOST, 1, id, &own, None), Begin::New));
        cache.complete(1, id, ok(1));
    }
    assert!(cache.lock().paths.len() <= MAX_PATHS);
    for id in [1, MAX_PATHS as u32, count] {
        let own = format!("/p.S/M{id}");
        assert!(matches!(
            cache.lookup(Some(HOST), 1, id, own.as_bytes()),
            Lookup::Done(Ok(_))
        ));
        assert!(matches!(
            cache.lookup(Some(HOST), 1, id, PATH),
            Lookup::OtherMethod
        ));
    }
}

#[test]
fn a_kept_answer_holds_none_of_the_buffers_it_was_cut_from() {
    let cache = ReplyCache::default();
    // An encoder's shared chunk, and a request whose metadata the handler passed on.
    let chunk = Bytes::from(vec![7u8; 8192]);
    let request = Bytes::from(vec![9u8; 1200]);
    let mut response = Response::new(chunk.slice(100..164));
    response
        .trailers_mut()
        .insert_bin("x-echo-bin", request.slice(10..20).into())
        .expect("valid");
    assert!(matches!(cache.begin(HOST, 1, 1, &path(), None), Begin::New));
    cache.complete(1, 1, Ok(response));
    assert!(
        chunk.is_unique(),
        "the entry keeps the encoder's chunk alive"
    );
    assert!(request.is_unique(), "the entry keeps the request alive");

    let mut status = Status::with_details(sockrpc_protocol::Code::Internal, "no", chunk.slice(..8));
    status
        .metadata_mut()
        .insert_bin("x-why-bin", request.slice(..4).into())
        .expect("valid");
    assert!(matches!(cache.begin(HOST, 1, 2, &path(), None), Begin::New));
    cache.complete(1, 2, Err(status));
    assert!(chunk.is_unique() && request.is_unique());

    // Kept whole all the same.
    match cache.lookup(Some(HOST), 1, 1, PATH) {
        Lookup::Done(Ok(kept)) => {
            assert_eq!(&kept.get_ref()[..], &[7u8; 64][..]);
            assert_eq!(
                kept.trailers().get_bin_bytes("x-echo-bin").map(|v| v.len()),
                Some(10)
            );
        }
        _ => panic!("the first answer is kept"),
    }
    match cache.lookup(Some(HOST), 1, 2, PATH) {
        Lookup::Done(Err(kept)) => assert_eq!(kept.details(), &[7u8; 8][..]),
        _ => panic!("the second answer is kept"),
    }
}

/// Client `instance` says it is done with its call 1: a first watermark (a client's first
/// only sets where it starts), then one past it.
fn done_with_call_1(cache: &ReplyCache, src: IpAddr, instance: u64) {
    cache.ack(src, instance, 1);
    cache.ack(src, instance, 2);
}

#[test]
fn a_source_past_its_share_is_refused_others_run_and_its_room_comes_back() {
    let config = ReplyCacheConfig {
        max_entries_per_source: 3,
        max_bytes_per_source: 1_000,
        ttl: Duration::from_secs(30),
        ..ReplyCacheConfig::default()
    };
    let cache = ReplyCache::new(config);
    let flood = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
    // Fresh client instances, never a watermark: each answer stays.
    for instance in 1..=3u64 {
        assert!(matches!(
            cache.begin(flood, instance, 1, &path(), None),
            Begin::New
        ));
        cache.complete(instance, 1, ok(10));
    }
    assert!(matches!(
        cache.begin(flood, 4, 1, &path(), None),
        Begin::OverShare
    ));
    // Its answers are still there for its retransmissions.
    assert!(matches!(
        cache.begin(flood, 1, 1, &path(), None),
        Begin::Done(Ok(_))
    ));
    // Another host is untouched.
    assert!(matches!(cache.begin(HOST, 9, 1, &path(), None), Begin::New));
    // A running call counts; abandoned, it gives its room back.
    done_with_call_1(&cache, flood, 1);
    assert!(matches!(
        cache.begin(flood, 5, 1, &path(), None),
        Begin::New
    ));
    assert!(matches!(
        cache.begin(flood, 6, 1, &path(), None),
        Begin::OverShare
    ));
    cache.abandon(5, 1);
    assert!(matches!(
        cache.begin(flood, 6, 1, &path(), None),
        Begin::New
    ));
    // Bytes: an answer past the source's share is kept whole (a truncated call's client
    // fetches it over TCP); the source's next calls are refused until it lets go of it.
    done_with_call_1(&cache, flood, 2);
    assert!(matches!(
        cache.begin(flood, 7, 1, &path(), None),
        Begin::New
    ));
    cache.complete(7, 1, ok(2_000));
    assert!(matches!(
        cache.lookup(Some(flood), 7, 1, PATH),
        Lookup::Done(Ok(r)) if r.get_ref().len() == 2_000
    ));
    cache.complete(6, 1, ok(10));
    done_with_call_1(&cache, flood, 3);
    done_with_call_1(&cache, flood, 6);
    assert!(matches!(
        cache.begin(flood, 8, 1, &path(), None),
        Begin::OverShare
    ));
    done_with_call_1(&cache, flood, 7);
    assert!(matches!(
        cache.begin(flood, 8, 1, &path(), None),
        Begin::New
    ));
}

/// A held call that notes, as it is dropped, whether the cache's lock was free.
struct Probe {
    cache: Arc<ReplyCache>,
    unlocked: Arc<AtomicBool>,
}

impl Drop for Probe {
    fn drop(&mut self) {
        let free = self.cache.state.try_lock().is_ok();
        self.unlocked.store(free, Ordering::SeqCst);
    }
}

fn held(cache: &Arc<ReplyCache>) -> (HeldCall, Arc<AtomicBool>) {
    let unlocked = Arc::new(AtomicBool::new(false));
    let probe = Probe {
        cache: Arc::clone(cache),
        unlocked: Arc::clone(&unlocked),
    };
    (HeldCall::new(probe), unlocked)
}

/// The call held with a TRUNCATED answer goes to the first re-issue that takes it (a lookup
/// does not), once; one never taken goes with its entry, after the cache's lock is released
/// (its drop runs the layers' code).
#[tokio::test]
async fn a_held_call_goes_to_one_re_issue_or_with_its_entry_out_of_the_lock() {
    let cache = Arc::new(ReplyCache::default());
    assert!(matches!(cache.begin(HOST, 9, 1, &path(), None), Begin::New));
    let (call, _) = held(&cache);
    cache.complete_holding(9, 1, ok(3), Some(call));
    assert!(matches!(
        cache.lookup(Some(HOST), 9, 1, PATH),
        Lookup::Done(Ok(_))
    ));
    let (found, taken) = cache.wait_taking(Some(HOST), 9, 1, PATH, None).await;
    assert!(matches!(found, Lookup::Done(Ok(_))));
    assert!(taken.is_some(), "the first re-issue takes the call");
    let (found, again) = cache.wait_taking(Some(HOST), 9, 1, PATH, None).await;
    assert!(matches!(found, Lookup::Done(Ok(_))) && again.is_none());
    drop(taken);

    assert!(matches!(cache.begin(HOST, 9, 2, &path(), None), Begin::New));
    let (call, unlocked) = held(&cache);
    cache.complete_holding(9, 2, ok(3), Some(call));
    // The client's first mark, then one past call 2: its answer goes.
    cache.ack(HOST, 9, 1);
    cache.ack(HOST, 9, 3);
    assert!(matches!(
        cache.lookup(Some(HOST), 9, 2, PATH),
        Lookup::Missing
    ));
    assert!(unlocked.load(Ordering::SeqCst), "dropped out of the lock");
}

/// A held call is let go when its hold ends ([`HOLD`]), not kept until its entry's `ttl` (nor
/// until the cache is next used after it): its layers may keep a permit. The answer stays for
/// a re-issue; the call goes as answered. An answer too large to keep holds no call at all.
#[tokio::test(start_paused = true)]
async fn a_held_call_goes_when_its_hold_ends_and_an_aborted_answer_holds_none() {
    let cache = Arc::new(ReplyCache::default());
    assert!(matches!(cache.begin(HOST, 9, 1, &path(), None), Begin::New));
    let (call, dropped) = held(&cache);
    cache.complete_holding(9, 1, ok(3), Some(call));
    tokio::time::sleep(HOLD - Duration::from_millis(1)).await;
    assert!(!dropped.load(Ordering::SeqCst), "held through its hold");
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert!(dropped.load(Ordering::SeqCst), "let go, out of the lock");
    let (found, taken) = cache.wait_taking(Some(HOST), 9, 1, PATH, None).await;
    assert!(matches!(found, Lookup::Done(Ok(_))) && taken.is_none());

    let small = ReplyCacheConfig {
        max_bytes: 16,
        ..ReplyCacheConfig::default()
    };
    let cache = Arc::new(ReplyCache::new(small));
    assert!(matches!(cache.begin(HOST, 9, 1, &path(), None), Begin::New));
    let (call, dropped) = held(&cache);
    cache.complete_holding(9, 1, ok(3000), Some(call));
    assert!(
        dropped.load(Ordering::SeqCst),
        "ended at once, out of the lock"
    );
    let (found, taken) = cache.wait_taking(Some(HOST), 9, 1, PATH, None).await;
    assert!(matches!(found, Lookup::Done(Err(_))) && taken.is_none());
}
