//! Tests of `room.rs`: parked handlers get turns a few at a time, first parked first, and a
//! turn is never lost, whether its handler answers, waits again, or is dropped before or after
//! it was woken.

use super::*;
use crate::outbox::Outbox;
use sockrpc_protocol::Limits;
use std::sync::atomic::AtomicUsize;
use std::task::Wake;

/// A parked handler's waker: counts its wakes.
#[derive(Default)]
struct Wakes(AtomicUsize);

impl Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

struct Handler {
    turn: Turn,
    wakes: Arc<Wakes>,
    waker: Waker,
}

impl Handler {
    fn new(shared: &Arc<Shared>) -> Handler {
        let mut turn = Turn::default();
        turn.pace(Arc::clone(shared));
        let wakes = Arc::new(Wakes::default());
        let waker = Waker::from(Arc::clone(&wakes));
        Handler { turn, wakes, waker }
    }

    fn has_room(&mut self) -> bool {
        let cx = Context::from_waker(&self.waker);
        self.turn.has_room(&cx)
    }

    fn woken(&self) -> usize {
        self.wakes.0.load(Ordering::SeqCst)
    }
}

/// A connection whose write buffer is past the mark, with `count` handlers parked.
fn parked(count: usize) -> (Arc<Shared>, Vec<Handler>) {
    let outbox = Outbox::new(Box::pin(tokio::io::sink()));
    let shared = Arc::new(Shared::new(outbox, Limits::default()));
    fill(&shared, HIGH_WATER + 1);
    let mut handlers: Vec<Handler> = (0..count).map(|_| Handler::new(&shared)).collect();
    for handler in &mut handlers {
        assert!(
            !handler.has_room(),
            "parked while the buffer is past the mark"
        );
    }
    (shared, handlers)
}

/// Sets the buffer to `len` bytes (an answer appended, or the client's reads).
fn fill(shared: &Shared, len: usize) {
    let mut state = shared.lock();
    let buf = state.outbox.buf_mut();
    buf.clear();
    buf.resize(len, 0);
    note_appended(shared, &state);
}

/// The connection's pass after a flush.
fn connection_pass(shared: &Shared) {
    let mut state = shared.lock();
    if state.outbox.buffered() <= HIGH_WATER {
        resume(shared, &mut state);
    }
}

/// Handlers woken so far and not yet let through, by index.
fn woken(handlers: &[Handler], done: &[bool]) -> Vec<usize> {
    (0..handlers.len())
        .filter(|&i| !done[i] && handlers[i].woken() > 0)
        .collect()
}

#[test]
fn turns_go_first_parked_first_a_few_at_a_time_until_all_have_answered() {
    let (shared, mut handlers) = parked(100);
    // Under the mark but above where it resumes: nobody is woken yet.
    fill(&shared, RESUME_AT + 1);
    connection_pass(&shared);
    assert!(handlers.iter().all(|h| h.woken() == 0));
    fill(&shared, 0);
    connection_pass(&shared);
    let mut done = vec![false; handlers.len()];
    let mut wakes = 0;
    for step in 0..handlers.len() {
        let now = woken(&handlers, &done);
        assert!(
            !now.is_empty() && now.len() <= WOKEN_AT_ONCE,
            "step {step}: {now:?} woken"
        );
        assert_eq!(now[0], step, "first parked first");
        let handler = &mut handlers[step];
        assert!(handler.has_room(), "a woken handler is let through");
        // It answers: its turn ends under the lock that appends the answer.
        let turn = std::mem::take(&mut handler.turn);
        let mut state = shared.lock();
        turn.end(&shared, &mut state);
        drop(state);
        done[step] = true;
        wakes += handlers[step].woken();
    }
    assert_eq!(wakes, handlers.len(), "one wake a handler");
    assert!(
        !shared.answers_paused.load(Ordering::SeqCst),
        "all answered, the buffer drained: no longer paused"
    );
}

#[test]
fn turns_stop_at_the_mark_and_resume_once_it_drained() {
    let (shared, mut handlers) = parked(10);
    fill(&shared, 0);
    connection_pass(&shared);
    assert!(handlers[0].has_room());
    // Its answer takes the buffer past the mark: no turn goes on.
    fill(&shared, HIGH_WATER + 1);
    std::mem::take(&mut handlers[0].turn).end(&shared, &mut shared.lock());
    let woken_now = handlers.iter().filter(|h| h.woken() > 0).count();
    assert!(
        woken_now <= WOKEN_AT_ONCE,
        "{woken_now} woken past the mark"
    );
    let before: usize = handlers.iter().map(Handler::woken).sum();
    for handler in &mut handlers[1..WOKEN_AT_ONCE] {
        // The others woken with it answer past the mark too; nobody new is woken.
        if handler.has_room() {
            std::mem::take(&mut handler.turn).end(&shared, &mut shared.lock());
        }
    }
    let after: usize = handlers.iter().map(Handler::woken).sum();
    assert_eq!(before, after, "no turn past the mark");
    fill(&shared, 0);
    connection_pass(&shared);
    assert!(
        handlers[WOKEN_AT_ONCE].woken() > 0,
        "drained: the next parked is woken"
    );
}

#[test]
fn a_turn_is_passed_on_by_a_handler_that_waits_again_or_is_dropped() {
    let (shared, mut handlers) = parked(3 * WOKEN_AT_ONCE);
    // Dropped while parked, before any turn: it takes its ticket with it.
    drop(handlers.remove(0));
    fill(&shared, 0);
    connection_pass(&shared);
    assert_eq!(
        woken(&handlers, &vec![false; handlers.len()]),
        (0..WOKEN_AT_ONCE).collect::<Vec<_>>(),
        "the dropped handler's ticket took no turn"
    );
    // Woken, then dropped before it was polled (cancelled, its task aborted).
    drop(handlers.remove(0));
    assert!(handlers[WOKEN_AT_ONCE - 1].woken() > 0, "its turn went on");
    // Woken, polled, and waiting again (a second timer): its turn goes on.
    assert!(handlers[0].has_room());
    handlers[0].turn.waiting_again();
    assert!(handlers[WOKEN_AT_ONCE].woken() > 0, "its turn went on");
    // The one that waits again comes back later, still paused: it parks at the end.
    let wakes = handlers[0].woken();
    assert!(!handlers[0].has_room());
    // The rest answer one by one; every handler is woken in the end.
    for _ in 0..4 * handlers.len() {
        for handler in &mut handlers {
            if handler.woken() > 0 && handler.has_room() {
                std::mem::take(&mut handler.turn).end(&shared, &mut shared.lock());
            }
        }
    }
    assert!(handlers[0].woken() > wakes, "parked again, woken again");
    assert!(handlers.iter().all(|h| h.woken() > 0));
    let state = shared.lock();
    assert!(state.parked.waiting.is_empty() && state.parked.turns == 0);
}
