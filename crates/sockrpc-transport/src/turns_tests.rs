use super::{TurnQueue, WOKEN_AT_ONCE};
use crate::wake_count::{counting_waker, WakeCount};
use std::sync::Arc;
use std::task::Waker;

/// `n` calls (ids 1..=n) parked in order behind a full buffer, with their wake counts.
fn parked(queue: &mut TurnQueue, n: u32) -> Vec<(Arc<WakeCount>, Waker)> {
    (1..=n)
        .map(|id| {
            let (count, waker) = counting_waker();
            assert!(!queue.poll_turn(id, false, &waker), "no room: {id} parks");
            (count, waker)
        })
        .collect()
}

fn woken(calls: &[(Arc<WakeCount>, Waker)]) -> Vec<usize> {
    calls.iter().map(|(count, _)| count.count()).collect()
}

#[test]
fn no_one_waits_while_there_is_room_and_no_line() {
    let mut queue = TurnQueue::default();
    let (count, waker) = counting_waker();
    assert!(queue.poll_turn(1, true, &waker));
    assert!(queue.is_empty());
    assert_eq!(count.count(), 0);
}

#[test]
fn a_few_are_woken_first_parked_first_and_each_passes_its_turn_on() {
    let mut queue = TurnQueue::default();
    let calls = parked(&mut queue, 10);
    queue.resume();
    assert_eq!(woken(&calls), [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]);
    // The first goes (room): the fifth is woken.
    assert!(queue.poll_turn(1, true, &calls[0].1));
    assert_eq!(woken(&calls)[4], 1);
    // The second finds the buffer full again: back of the line, nobody woken.
    assert!(!queue.poll_turn(2, false, &calls[1].1));
    assert_eq!(woken(&calls)[5], 0);
    // Resume again: turns up to WOKEN_AT_ONCE, the oldest parked first (6, not 2).
    queue.resume();
    assert_eq!(woken(&calls), [1, 1, 1, 1, 1, 1, 0, 0, 0, 0]);
    assert_eq!(queue.len(), 9);
    assert!(queue.turns <= WOKEN_AT_ONCE);
}

#[test]
fn a_call_woken_by_something_else_stays_in_line() {
    let mut queue = TurnQueue::default();
    let calls = parked(&mut queue, 2);
    // Call 2 polled with room but no turn: call 1 is ahead of it.
    assert!(!queue.poll_turn(2, true, &calls[1].1));
    // A newcomer waits behind the line too.
    let (_, waker) = counting_waker();
    assert!(!queue.poll_turn(3, true, &waker));
    queue.resume();
    assert_eq!(woken(&calls), [1, 1]);
    assert!(queue.poll_turn(1, true, &calls[0].1));
}

#[test]
fn a_call_that_ends_leaves_the_line_and_passes_a_turn_it_held() {
    let mut queue = TurnQueue::default();
    let calls = parked(&mut queue, 6);
    // Call 6 ends parked: it is not woken later in anyone's place.
    queue.forget(6, true);
    queue.resume();
    assert_eq!(woken(&calls), [1, 1, 1, 1, 0, 0]);
    // Call 1 ends woken, before it was polled: its turn goes to 5.
    queue.forget(1, true);
    assert_eq!(woken(&calls), [1, 1, 1, 1, 1, 0]);
    for id in 2..=5 {
        assert!(queue.poll_turn(id, true, &calls[id as usize - 1].1));
    }
    assert!(queue.is_empty(), "nobody left behind");
    assert_eq!(woken(&calls)[5], 0, "the ended call was never woken");
}

#[test]
fn the_end_wakes_everyone() {
    let mut queue = TurnQueue::default();
    let calls = parked(&mut queue, 9);
    queue.wake_all();
    assert_eq!(woken(&calls), [1; 9]);
    assert!(queue.is_empty());
}
