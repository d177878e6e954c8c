//! The line for connection credit as a client's feed sends (`feed.rs`, sockrpc-service):
//! `poll_ready`, then, once its body has the next message, `poll_send_flagged`, which looks
//! again under the lock that charges and may keep the message waiting there for credit.
//! Random schedules, as in `credit_tests.rs`, with messages that wait inside
//! `poll_send_flagged`: none is charged while it waits, none goes on a spent window, the line's
//! invariant holds after every move, and once credit comes no message is left waiting (one
//! whose wake-up was lost would be: its task is never run again).

use super::credit_tests::{charge, check, connected, credit, Dice, Sender, MESSAGE};
use super::ClientConnection;
use bytes::{Bytes, BytesMut};
use sockrpc_protocol::frame::CONNECTION_WINDOW;
use sockrpc_protocol::Status;
use std::task::{Context, Poll};

/// Sends `sender`'s next message as the feed does; `holding` says whether it waits in it now.
/// A call found ended is cancelled and its sender dropped, as the feed does.
fn send_flagged(conn: &ClientConnection, sender: &mut Sender, holding: &mut bool, what: &str) {
    *holding = false;
    let Some(inner) = sender.sender.as_mut() else {
        return;
    };
    let (window, before) = {
        let state = conn.shared().lock();
        (state.connection_window, state.connection_outstanding)
    };
    sender.seen = sender.count.count();
    sender.again = false;
    sender.ready = false;
    let message = Bytes::from_static(MESSAGE);
    let mut cx = Context::from_waker(&sender.waker);
    let polled = inner.poll_send_flagged(&mut cx, &message, false);
    let after = conn.shared().lock().connection_outstanding;
    match polled {
        Poll::Ready(Ok(())) => {
            assert!(
                !window || before < CONNECTION_WINDOW,
                "{what}: sent on a spent window ({before} outstanding)"
            );
            // Its task goes on to the next message without a wake.
            sender.again = true;
        }
        Poll::Pending => {
            assert_eq!(after, before, "{what}: charged while it waits");
            *holding = true;
        }
        Poll::Ready(Err(status)) => {
            inner.cancel_with(status);
            sender.sender = None;
        }
    }
}

/// Every message waiting in a live call's feed will be woken: it was, or it has a place in
/// a line (for credit or for room), or it waits for its own window.
fn check_held(conn: &ClientConnection, senders: &[Sender], holding: &[bool], what: &str) {
    let mut state = conn.shared().lock();
    for (sender, _) in senders.iter().zip(holding).filter(|(_, held)| **held) {
        let own = state
            .stream_mut(sender.id)
            .is_some_and(|stream| !stream.outbound.has_credit());
        let placed =
            state.credit_waiters.has_place(sender.id) || state.drain_waiters.has_place(sender.id);
        assert!(
            !sender.live() || sender.woken() || placed || own,
            "{what}: sender {}'s message waits, and nothing will wake it",
            sender.id
        );
    }
}

/// One schedule of `steps` random moves, the invariant checked after each; then all the credit
/// in the world, and no message is left waiting, nor any sender in line.
async fn flagged_schedule(seed: u64, steps: usize) {
    let (conn, _go) = connected(BytesMut::new(), CONNECTION_WINDOW - 3 * charge()).await;
    let mut dice = Dice(seed);
    let mut senders: Vec<Sender> = (0..24).map(|_| Sender::open(&conn)).collect();
    let mut holding = vec![false; senders.len()];
    let mut goaway = false;
    for step in 0..steps {
        let what = format!("seed {seed}, step {step}");
        let live: Vec<usize> = (0..senders.len()).filter(|&i| senders[i].live()).collect();
        let pick =
            |dice: &mut Dice, from: &[usize]| from.get(dice.below(from.len().max(1))).copied();
        match dice.below(100) {
            0..=11 => credit(&conn, 1 + dice.below(charge())),
            12..=15 => credit(&conn, 1 + dice.below(8 * charge())),
            // The executor runs a feed: a waiting message tries again; otherwise it looks, and
            // most that may go have their next message at once.
            16..=67 => {
                let runnable: Vec<usize> = live
                    .iter()
                    .copied()
                    .filter(|&i| senders[i].runnable())
                    .collect();
                if let Some(i) = pick(&mut dice, &runnable) {
                    if holding[i]
                        || (matches!(senders[i].look(), Poll::Ready(Ok(()))) && dice.below(2) > 0)
                    {
                        send_flagged(&conn, &mut senders[i], &mut holding[i], &what);
                    }
                }
            }
            // A ready feed's body yields its message later: the window may be spent by now.
            68..=75 => {
                let ready: Vec<usize> = live
                    .iter()
                    .copied()
                    .filter(|&i| senders[i].ready && !holding[i])
                    .collect();
                if let Some(i) = pick(&mut dice, &ready) {
                    send_flagged(&conn, &mut senders[i], &mut holding[i], &what);
                }
            }
            // A feed whose body has no message yet polled unwoken (its task woken for something
            // else). A message waiting is not: only its wake-up runs it, so one lost shows.
            76..=79 => {
                let idle: Vec<usize> = live.iter().copied().filter(|&i| !holding[i]).collect();
                if let Some(i) = pick(&mut dice, &idle) {
                    let _ = senders[i].look();
                }
            }
            // A feed is dropped (its runtime went), a turn holder more often than not.
            80..=82 => {
                let state = conn.shared().lock();
                let holders: Vec<usize> = live
                    .iter()
                    .copied()
                    .filter(|&i| state.credit_waiters.holds_turn(senders[i].id))
                    .collect();
                drop(state);
                let from = if dice.below(3) > 0 && !holders.is_empty() {
                    &holders
                } else {
                    &live
                };
                if let Some(i) = pick(&mut dice, from) {
                    senders[i].sender = None;
                    holding[i] = false;
                }
            }
            // A call ends under its feed (the receiver dropped: cancelled).
            83..=84 => {
                if let Some(i) = pick(&mut dice, &live) {
                    senders[i].receiver = None;
                }
            }
            // A body ends: its feed half-closes (never with a message in hand).
            85..=86 => {
                let idle: Vec<usize> = live.iter().copied().filter(|&i| !holding[i]).collect();
                if let Some(i) = pick(&mut dice, &idle) {
                    if let Some(sender) = senders[i].sender.as_mut() {
                        sender.close();
                    }
                    senders[i].closed = true;
                }
            }
            // A new stream, which looks at once.
            87..=93 => {
                if !goaway && live.len() < 40 {
                    let mut sender = Sender::open(&conn);
                    let _ = sender.look();
                    senders.push(sender);
                    holding.push(false);
                }
            }
            // A SETTINGS that drops the window, or announces it again.
            94..=96 => {
                let mut state = conn.shared().lock();
                state.connection_window = !state.connection_window;
                state.resume_credit_waiters();
            }
            // The server's GOAWAY: the calls on the connection go on.
            97 if step > steps * 3 / 4 => {
                let shared = conn.shared();
                shared.close_to_new_calls(&mut shared.lock(), Status::unavailable("goaway"));
                goaway = true;
            }
            // Spend the window by a message of a sender outside the schedule.
            _ => conn.shared().lock().connection_outstanding += charge(),
        }
        check(&conn, &senders, &what);
        check_held(&conn, &senders, &holding, &what);
        if step % 64 == 63 {
            // Let the connection's driver flush what was sent.
            tokio::task::yield_now().await;
        }
    }
    {
        let mut state = conn.shared().lock();
        state.connection_window = true;
        state.connection_outstanding = 0;
        state.resume_credit_waiters();
    }
    let what = format!("seed {seed}, at the end");
    for _ in 0..10_000 {
        let Some(i) = senders.iter().position(Sender::runnable) else {
            break;
        };
        if holding[i] {
            send_flagged(&conn, &mut senders[i], &mut holding[i], &what);
        } else {
            let _ = senders[i].look();
        }
    }
    let waiting = (0..senders.len())
        .filter(|&i| senders[i].live() && senders[i].receiver.is_some())
        .filter(|&i| holding[i] || !senders[i].ready)
        .count();
    assert!(waiting == 0, "{what}: {waiting} feeds never went on");
    check(&conn, &senders, &what);
    let state = conn.shared().lock();
    assert!(
        state.credit_waiters.is_empty(),
        "{what}: {} senders left in line with the window open",
        state.credit_waiters.len()
    );
}

#[tokio::test]
async fn no_schedule_of_feeds_loses_a_waiting_message_or_sends_it_on_a_spent_window() {
    for seed in [
        0x9e37_79b9_7f4a_7c15,
        0x2545_f491_4f6c_dd1d,
        0x1234_5678_9abc_def1,
        0x0bad_cafe_f00d_d00d,
    ] {
        flagged_schedule(seed, 4_000).await;
    }
}
