//! `OpenCalls`: what a settle, a piece and an expiry visit (`visits`), and when waiting calls
//! end, on tokio's paused clock.

use super::*;

const FRAME_TIMEOUT: Duration = Duration::from_secs(30);

fn opened(timeout: Option<Duration>) -> Opened {
    let path = MethodPath::try_from_bytes(bytes::Bytes::from_static(b"/svc.S/M")).expect("path");
    Opened::new(path, MetadataMap::new(), timeout, None)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test(start_paused = true)]
async fn a_settle_visits_only_the_calls_that_arrived_since_the_last() {
    let mut calls = OpenCalls::default();
    for id in 0..1_000 {
        calls.insert(id, opened(None));
    }
    let first = Instant::now();
    assert_eq!(
        calls.settle(first, FRAME_TIMEOUT),
        Some(first + FRAME_TIMEOUT)
    );
    assert_eq!(calls.visits, 1_000);

    // One more call, a second later, with a deadline sooner than the others' wait: one visit.
    tokio::time::advance(secs(1)).await;
    let later = Instant::now();
    calls.insert(1_000, opened(Some(secs(5))));
    let soonest = calls.settle(later, FRAME_TIMEOUT);
    assert_eq!(soonest, Some(later + secs(5)));
    assert_eq!(calls.visits, 1_001, "only the new call was settled");
    // Nothing new: nothing visited.
    assert_eq!(calls.settle(later, FRAME_TIMEOUT), soonest);
    assert_eq!(calls.visits, 1_001);
}

/// A hostile client opens thousands of unary calls with no message, then sends a large message
/// in tiny pieces, one per read: each piece used to make the next settle walk every waiting
/// call again (4,096 visits for a few bytes).
#[tokio::test(start_paused = true)]
async fn a_piece_does_not_visit_the_waiting_calls() {
    let mut calls = OpenCalls::default();
    for id in 0..4_096 {
        calls.insert(id, opened(Some(secs(3_600))));
    }
    let start = Instant::now();
    assert_eq!(
        calls.settle(start, FRAME_TIMEOUT),
        Some(start + FRAME_TIMEOUT)
    );
    let settled = calls.visits;
    for _ in 0..1_000 {
        tokio::time::advance(Duration::from_millis(1)).await;
        calls.pieces_arrived();
        assert_eq!(
            calls.settle(Instant::now(), FRAME_TIMEOUT),
            Some(Instant::now() + FRAME_TIMEOUT),
            "the pieces push the frame timeout on"
        );
    }
    assert_eq!(calls.visits, settled, "no waiting call visited for a piece");
    assert_eq!(calls.len(), 4_096);
}

/// Drives `calls` as the connection does: the timer fires at the soonest expiry settle gave,
/// pieces come every 10 s until `pieces_until`. Returns each call that ended, with when.
async fn run(
    calls: &mut OpenCalls,
    start: Instant,
    pieces_until: Instant,
) -> Vec<(u32, Instant, bool)> {
    let mut ended = Vec::new();
    let mut due = calls.settle(start, FRAME_TIMEOUT);
    let mut next_piece = start + secs(10);
    for _ in 0..100 {
        let Some(at) = due else {
            break;
        };
        if next_piece <= pieces_until && next_piece < at {
            tokio::time::advance(next_piece - Instant::now()).await;
            calls.pieces_arrived();
            due = calls.settle(Instant::now(), FRAME_TIMEOUT);
            next_piece += secs(10);
            continue;
        }
        tokio::time::advance(at - Instant::now()).await;
        let now = Instant::now();
        let expired = calls.expire(now, FRAME_TIMEOUT);
        assert!(
            !expired.is_empty(),
            "the timer fires when a call's wait ends"
        );
        ended.extend(
            expired
                .into_iter()
                .map(|(id, o)| (id, now, o.deadline.is_some_and(|d| d <= now))),
        );
        due = calls.settle(now, FRAME_TIMEOUT);
    }
    ended
}

#[tokio::test(start_paused = true)]
async fn a_call_waiting_behind_pieces_waits_until_they_stop_or_its_deadline() {
    let mut calls = OpenCalls::default();
    let start = Instant::now();
    calls.insert(1, opened(None));
    calls.insert(2, opened(Some(secs(45))));
    // Pieces every 10 s for 100 s: call 1 is not late while they come, and waits a frame
    // timeout after the last; call 2's deadline ends it in the middle of them.
    let ended = run(&mut calls, start, start + secs(100)).await;
    assert_eq!(
        ended,
        [(2, start + secs(45), true), (1, start + secs(130), false)]
    );
    assert!(calls.is_empty());
    assert!(calls.arrivals.is_empty() && calls.deadlines.is_empty());
}

#[tokio::test(start_paused = true)]
async fn with_no_pieces_a_call_waits_a_frame_timeout_from_its_own_arrival() {
    let mut calls = OpenCalls::default();
    let start = Instant::now();
    calls.insert(1, opened(None));
    assert_eq!(
        calls.settle(start, FRAME_TIMEOUT),
        Some(start + FRAME_TIMEOUT)
    );
    // A piece, then a second call after it: each waits from the later of its arrival and the
    // piece.
    tokio::time::advance(secs(10)).await;
    calls.pieces_arrived();
    assert_eq!(
        calls.settle(Instant::now(), FRAME_TIMEOUT),
        Some(start + secs(40))
    );
    tokio::time::advance(secs(5)).await;
    calls.insert(2, opened(None));
    let ended = run(&mut calls, start + secs(15), start).await;
    assert_eq!(
        ended,
        [(1, start + secs(40), false), (2, start + secs(45), false)]
    );
}

/// The server stopped reading (its write buffer full, say): at each look meanwhile, and when
/// it reads again, the waiting calls are excused, so the frame timeout counts from the last
/// of them; a deadline still ends its call during the pause. O(1): no call visited.
#[tokio::test(start_paused = true)]
async fn a_pause_of_the_server_is_not_counted_against_waiting_calls() {
    let mut calls = OpenCalls::default();
    let start = Instant::now();
    calls.insert(1, opened(None));
    calls.insert(2, opened(Some(secs(45))));
    assert_eq!(
        calls.settle(start, FRAME_TIMEOUT),
        Some(start + FRAME_TIMEOUT)
    );
    let settled = calls.visits;
    // Paused from the start: the timer fires every frame timeout, each time excused.
    let mut now = start + FRAME_TIMEOUT;
    calls.excuse(now);
    assert!(calls.expire(now, FRAME_TIMEOUT).is_empty());
    assert_eq!(calls.settle(now, FRAME_TIMEOUT), Some(start + secs(45)));
    now = start + secs(45);
    calls.excuse(now);
    let expired = calls.expire(now, FRAME_TIMEOUT);
    assert_eq!(expired.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [2]);
    assert_eq!(calls.settle(now, FRAME_TIMEOUT), Some(now + FRAME_TIMEOUT));
    // Reading resumes at 50 s: call 1 waits a frame timeout from then, not from the last look.
    let resumed = start + secs(50);
    calls.excuse(resumed);
    assert_eq!(
        calls.settle(resumed, FRAME_TIMEOUT),
        Some(resumed + FRAME_TIMEOUT)
    );
    // An excuse earlier than one already made moves nothing back.
    calls.excuse(start + secs(46));
    assert_eq!(
        calls.settle(resumed, FRAME_TIMEOUT),
        Some(resumed + FRAME_TIMEOUT)
    );
    assert!(calls
        .expire(resumed + FRAME_TIMEOUT - secs(1), FRAME_TIMEOUT)
        .is_empty());
    let expired = calls.expire(resumed + FRAME_TIMEOUT, FRAME_TIMEOUT);
    assert_eq!(expired.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [1]);
    // The queues' three entries (two arrivals, a deadline), each visited once.
    assert_eq!(calls.visits, settled + 3);
    // Nothing waits: nothing kept, and an excuse then keeps nothing either.
    calls.excuse(resumed + FRAME_TIMEOUT);
    assert_eq!(calls.waits_from, None);
    assert_eq!(calls.settle(resumed + FRAME_TIMEOUT, FRAME_TIMEOUT), None);
}

#[tokio::test(start_paused = true)]
async fn the_soonest_expiry_survives_removals_and_expiries() {
    let mut calls = OpenCalls::default();
    let start = Instant::now();
    calls.insert(1, opened(Some(secs(1))));
    calls.insert(2, opened(Some(secs(2))));
    calls.insert(3, opened(Some(secs(3))));
    assert_eq!(calls.settle(start, FRAME_TIMEOUT), Some(start + secs(1)));
    // The soonest call's MESSAGE came: the next settle gives the next one, exactly.
    assert!(calls.remove(&1).is_some());
    assert_eq!(calls.settle(start, FRAME_TIMEOUT), Some(start + secs(2)));
    // A timer that fires early expires nothing.
    assert!(calls.expire(start + secs(1), FRAME_TIMEOUT).is_empty());
    let expired = calls.expire(start + secs(2), FRAME_TIMEOUT);
    assert_eq!(expired.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [2]);
    assert_eq!(
        calls.settle(start + secs(2), FRAME_TIMEOUT),
        Some(start + secs(3))
    );
    // The last one goes: nothing waits, nothing is kept.
    assert!(calls.remove(&3).is_some());
    assert!(calls.fresh.is_empty());
    assert!(calls.arrivals.is_empty() && calls.deadlines.is_empty());
    assert_eq!(calls.settle(start, FRAME_TIMEOUT), None);
}

#[tokio::test(start_paused = true)]
async fn an_id_used_again_is_a_new_call() {
    let mut calls = OpenCalls::default();
    let start = Instant::now();
    calls.insert(7, opened(None));
    calls.insert(8, opened(None));
    calls.settle(start, FRAME_TIMEOUT);
    assert!(calls.remove(&7).is_some());
    tokio::time::advance(secs(10)).await;
    // Used again in one batch: settled once.
    calls.insert(7, opened(None));
    assert!(calls.remove(&7).is_some());
    calls.insert(7, opened(None));
    let again = Instant::now();
    assert_eq!(
        calls.settle(again, FRAME_TIMEOUT),
        Some(start + FRAME_TIMEOUT)
    );
    assert_eq!(
        calls.arrivals.len(),
        2,
        "call 8's entry and the new call 7's"
    );
    // Its first wait's entry does not end the second.
    let ended = calls.expire(start + FRAME_TIMEOUT, FRAME_TIMEOUT);
    assert_eq!(ended.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [8]);
    assert_eq!(
        calls.settle(start + FRAME_TIMEOUT, FRAME_TIMEOUT),
        Some(again + FRAME_TIMEOUT)
    );
    let ended = calls.expire(again + FRAME_TIMEOUT, FRAME_TIMEOUT);
    assert_eq!(ended.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [7]);
}

#[tokio::test(start_paused = true)]
async fn calls_gone_leave_queues_no_longer_than_twice_the_calls_waiting() {
    let mut calls = OpenCalls::default();
    // One call waits (its deadline far off) while thousands wait a batch each and go.
    calls.insert(0, opened(Some(secs(3_600))));
    calls.settle(Instant::now(), FRAME_TIMEOUT);
    let rounds = 10_000;
    for id in 1..=rounds {
        calls.insert(id, opened(Some(secs(3_600))));
        calls.pieces_arrived();
        assert!(calls.settle(Instant::now(), FRAME_TIMEOUT).is_some());
        assert!(calls.remove(&id).is_some());
        // As compacted by the settle, with one more call waiting then.
        let most = 2 * (calls.len() + 1) + FRESH_KEPT;
        assert!(calls.arrivals.len() <= most && calls.deadlines.len() <= most);
    }
    // Each call settled once, each entry dropped once (and looked at once more, compacted).
    assert!(
        calls.visits <= 4 * rounds as usize,
        "{} visits",
        calls.visits
    );
    assert!(calls.arrivals.capacity() <= 4 * FRESH_KEPT);
}

#[tokio::test(start_paused = true)]
async fn calls_answered_in_their_read_leave_nothing_to_settle() {
    let mut calls = OpenCalls::default();
    for id in 0..10_000 {
        calls.insert(id, opened(None));
        assert!(calls.remove(&id).is_some());
    }
    assert!(calls.fresh.is_empty(), "no id kept for calls gone");
    assert_eq!(calls.held(), 0);

    // One call waits while thousands come and go in one batch: their ids are kept for
    // that batch only.
    calls.insert(0, opened(None));
    for id in 1..10_000 {
        calls.insert(id, opened(None));
        assert!(calls.remove(&id).is_some());
    }
    assert!(calls.settle(Instant::now(), FRAME_TIMEOUT).is_some());
    assert!(
        calls.fresh.capacity() <= FRESH_KEPT,
        "the batch's room is given back"
    );
}

/// A model of the waiting calls: each ends at the sooner of its deadline and a frame timeout
/// after the later of its arrival (the settle after its OPEN) and the last piece or pause.
#[derive(Default)]
struct Model {
    /// id → (deadline, arrival once settled).
    calls: std::collections::BTreeMap<u32, (Option<Instant>, Option<Instant>)>,
    waits_from: Option<Instant>,
    pieces: bool,
}

impl Model {
    fn ends(&self, (deadline, arrival): (Option<Instant>, Option<Instant>)) -> Option<Instant> {
        let arrival = arrival?;
        let from = self.waits_from.map_or(arrival, |w| w.max(arrival));
        sooner(deadline, Some(from + FRAME_TIMEOUT))
    }

    fn soonest(&self) -> Option<Instant> {
        self.calls.values().filter_map(|&c| self.ends(c)).min()
    }

    fn excuse(&mut self, now: Instant) {
        if !self.calls.is_empty() {
            self.waits_from = Some(self.waits_from.map_or(now, |w| w.max(now)));
        }
    }
}

/// Random opens, messages, pieces, pauses, settles and expiries against [`Model`]: every
/// settle gives the model's soonest end exactly, every expiry ends exactly the calls whose
/// wait is over, and the queues stay within twice the calls waiting (and some room).
#[test]
fn open_calls_match_a_model_of_their_waits() {
    let base = std::time::Instant::now();
    let base = Instant::from_std(base);
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for round in 0..300 {
        let mut calls = OpenCalls::default();
        let mut model = Model::default();
        let mut now = base;
        let mut id = 0u32;
        for step in 0..400 {
            let what = format!("round {round} step {step}");
            match next(10) {
                0..=2 => {
                    id += 1 + next(3) as u32;
                    let mut call = opened(None);
                    call.deadline = match next(3) {
                        0 => None,
                        _ => Some(now + Duration::from_secs(next(90))),
                    };
                    model.calls.insert(id, (call.deadline, None));
                    calls.insert(id, call);
                }
                3 => {
                    // A MESSAGE (or CANCEL, END) for a call that may have gone already.
                    let target = id.saturating_sub(next(8) as u32);
                    let gone = calls.remove(&target).is_some();
                    assert_eq!(gone, model.calls.remove(&target).is_some(), "{what}");
                }
                4 => {
                    calls.pieces_arrived();
                    model.pieces = true;
                }
                5 => {
                    calls.excuse(now);
                    model.excuse(now);
                }
                6 => now += Duration::from_secs(next(40)),
                _ => {
                    // After a read batch (`update_deadlines`) or when the timer fires at the
                    // soonest end (`on_timer`: expire, then settle).
                    if next(2) == 0 {
                        if let Some(due) = model.soonest() {
                            now = now.max(due);
                        }
                        let mut ended: Vec<u32> = calls
                            .expire(now, FRAME_TIMEOUT)
                            .into_iter()
                            .map(|(id, _)| id)
                            .collect();
                        ended.sort_unstable();
                        let due: Vec<u32> = model
                            .calls
                            .iter()
                            .filter(|(_, &c)| model.ends(c).is_some_and(|at| at <= now))
                            .map(|(&id, _)| id)
                            .collect();
                        assert_eq!(ended, due, "{what}: expired at {:?}", now - base);
                        for id in due {
                            model.calls.remove(&id);
                        }
                    }
                    if calls.is_empty() {
                        assert_eq!(calls.settle(now, FRAME_TIMEOUT), None, "{what}");
                        model.pieces = false;
                        continue;
                    }
                    if std::mem::take(&mut model.pieces) {
                        model.excuse(now);
                    }
                    for call in model.calls.values_mut() {
                        call.1.get_or_insert(now);
                    }
                    let soonest = calls.settle(now, FRAME_TIMEOUT);
                    assert_eq!(soonest, model.soonest(), "{what}: at {:?}", now - base);
                    let most = 2 * calls.len() + FRESH_KEPT;
                    assert!(calls.arrivals.len() <= most, "{what}");
                    assert!(calls.deadlines.len() <= most, "{what}");
                }
            }
            assert_eq!(calls.len(), model.calls.len(), "{what}");
            let held: usize = model.calls.len() * opened(None).cost();
            assert_eq!(calls.held(), held, "{what}");
        }
    }
}
