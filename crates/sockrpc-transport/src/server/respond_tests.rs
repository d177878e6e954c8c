//! Tests of `respond.rs`: pacing of response streams and the inbound budget.

use super::*;
use crate::server::pump::{pump, MESSAGES_PER_POLL};
use bytes::Bytes;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Wake, Waker};

/// What these calls' OPENs allowed: nothing beside their plain answers.
const ALLOWED: crate::server::open::Allowed = crate::server::open::Allowed {
    fold_end: false,
    encoding: false,
};

/// An always-ready stream of empty messages (they take no credit), counting its polls. Past
/// 10,000 it panics, which ends the call: a pump that never yields fails rather than hangs.
struct Flood(Arc<AtomicUsize>);

impl OutboundBody for Flood {
    fn into_once(self) -> Result<Bytes, Self> {
        Err(self)
    }

    fn poll_message(&mut self, _: &mut Context<'_>) -> Poll<Option<Result<Bytes, Status>>> {
        let polls = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        assert!(polls < 10_000, "the pump never yielded");
        Poll::Ready(Some(Ok(Bytes::new())))
    }
}

struct CountWakes(AtomicUsize);

impl Wake for CountWakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn an_always_ready_stream_yields_after_a_burst() {
    let outbox = Outbox::new(Box::pin(tokio::io::sink()));
    let shared = Arc::new(Shared::new(outbox, Limits::default()));
    shared.lock().running.insert(1, None);
    let polls = Arc::new(AtomicUsize::new(0));
    let response = Response::new(Flood(Arc::clone(&polls)));
    let mut pumping = Box::pin(pump(Arc::clone(&shared), 1, response, ALLOWED));
    let woken = Arc::new(CountWakes(AtomicUsize::new(0)));
    let waker = Waker::from(Arc::clone(&woken));
    let mut cx = Context::from_waker(&waker);
    for round in 1..=3 {
        assert!(
            pumping.as_mut().poll(&mut cx).is_pending(),
            "round {round}: still streaming"
        );
        assert_eq!(
            polls.load(Ordering::SeqCst),
            round * MESSAGES_PER_POLL,
            "round {round}: one burst per poll"
        );
        assert_eq!(
            woken.0.load(Ordering::SeqCst),
            round,
            "round {round}: it woke itself to be polled again"
        );
    }
}

#[test]
fn empty_messages_fill_the_inbound_budget() {
    let outbox = Outbox::new(Box::pin(tokio::io::sink()));
    let shared = Shared::new(outbox, Limits::default());
    let mut state = shared.lock();
    state.streams.insert(7, ServerStream::default());
    // Empty messages take no credit: only their count can stop a client that sends them to
    // a handler that does not read.
    let most = state.pause_at / QUEUED_MESSAGE_COST + 1;
    let mut queued = 0;
    while !state.over_budget() {
        assert!(
            queued < most,
            "{queued} empty messages and still under budget"
        );
        let pushed = state.queue_message(7, Bytes::new(), false, false, 1 << 20);
        assert_eq!(pushed, Ok(true));
        queued += 1;
    }
    assert_eq!(state.streams[&7].inbound.queued(), (queued, 0));
    // Late messages for a call that ended are dropped, and count nothing.
    assert_eq!(
        state.queue_message(9, Bytes::new(), false, false, 1 << 20),
        Ok(false)
    );
    assert!(state.remove_stream(7).is_some());
    assert_eq!(
        state.inbound_bytes, 0,
        "forgetting the stream releases all it held"
    );
}

/// Frames the outbox holds, decoded.
fn frames_written(state: &mut ConnState) -> Vec<sockrpc_protocol::frame::Frame> {
    use tokio_util::codec::Decoder;
    let mut decoder = crate::codec::FrameDecoder::after_preface(Limits::default());
    let mut buf = state.outbox.buf_mut().split();
    let mut frames = Vec::new();
    while let Ok(Some(frame)) = decoder.decode(&mut buf) {
        frames.push(frame);
    }
    assert!(buf.is_empty(), "whole frames only");
    frames
}

#[test]
fn connection_credit_goes_back_for_messages_consumed_dropped_or_forgotten() {
    use sockrpc_protocol::frame::{message_charge, Frame, CONNECTION_WINDOW};
    let outbox = Outbox::new(Box::pin(tokio::io::sink()));
    let shared = Shared::new(outbox, Limits::default());
    let mut state = shared.lock();
    let body = Bytes::from(vec![1u8; 1000]);
    let charge = message_charge(body.len());
    // Messages for a call that ended are dropped, and granted back at once.
    let late = CONNECTION_WINDOW / 2 / charge;
    for _ in 0..late {
        assert_eq!(
            state.queue_message(9, body.clone(), false, false, 1 << 20),
            Ok(false)
        );
    }
    assert!(
        frames_written(&mut state).is_empty(),
        "under half a window: nothing yet"
    );
    assert_eq!(state.unreported, late * charge);
    // Queued messages are granted when their stream is forgotten (or as they are consumed);
    // each stream holds what its own window lets it.
    let streams: Vec<u32> = (100..).take(late.div_ceil(32)).collect();
    for (i, id) in streams.iter().cycle().take(late).enumerate() {
        state.streams.entry(*id).or_default();
        let queued = state.queue_message(*id, body.clone(), false, false, 1 << 20);
        assert_eq!(queued, Ok(true), "message {i}");
    }
    assert_eq!(state.unreported, late * charge, "queued: not granted yet");
    for id in &streams {
        assert!(state.remove_stream(*id).is_some());
    }
    let credit: usize = frames_written(&mut state)
        .into_iter()
        .map(|frame| match frame {
            Frame::Window { call_id: 0, credit } => credit as usize,
            other => panic!("only connection credit expected, got {other:?}"),
        })
        .sum();
    assert!(
        credit >= CONNECTION_WINDOW / 2,
        "half a window granted: {credit}"
    );
    assert_eq!(credit + state.unreported, 2 * late * charge, "nothing lost");
    assert!(!state.over_budget());
}

/// One empty message, then the end.
struct OneThenEnd(bool);

impl OutboundBody for OneThenEnd {
    fn into_once(self) -> Result<Bytes, Self> {
        Err(self)
    }

    fn poll_message(&mut self, _: &mut Context<'_>) -> Poll<Option<Result<Bytes, Status>>> {
        if std::mem::replace(&mut self.0, true) {
            return Poll::Ready(None);
        }
        Poll::Ready(Some(Ok(Bytes::new())))
    }
}

#[test]
fn a_streamed_answer_leaves_the_calls_in_flight_with_its_end() {
    let outbox = Outbox::new(Box::pin(tokio::io::sink()));
    let shared = Arc::new(Shared::new(outbox, Limits::default()));
    shared.lock().running.insert(1, None);
    let mut pumping = Box::pin(pump(
        Arc::clone(&shared),
        1,
        Response::new(OneThenEnd(false)),
        ALLOWED,
    ));
    let waker = Waker::from(Arc::new(CountWakes(AtomicUsize::new(0))));
    let mut cx = Context::from_waker(&waker);
    assert!(
        pumping.as_mut().poll(&mut cx).is_ready(),
        "the stream ended"
    );
    let state = shared.lock();
    assert!(!state.streams.contains_key(&1), "the END was written");
    // A client frees the call's place as the END arrives and may open the next call at once:
    // the server must not count it by then, whenever the task gets back to the lock.
    assert!(
        !state.running.contains_key(&1),
        "the call still counts in flight after its END was written"
    );
}

#[test]
fn a_stream_cancelled_before_its_answer_starts_takes_no_turn() {
    let outbox = Outbox::new(Box::pin(tokio::io::sink()));
    let shared = Arc::new(Shared::new(outbox, Limits::default()));
    {
        let mut state = shared.lock();
        // The client's answer window is all outstanding: streams wait for its credit in line.
        state.answer_window = true;
        state.answers_outstanding = frame::ANSWER_WINDOW;
    }
    let woken = Arc::new(CountWakes(AtomicUsize::new(0)));
    let waker = Waker::from(Arc::clone(&woken));
    let mut cx = Context::from_waker(&waker);
    // Calls cancelled between their handler's answer and their stream's start: the CANCEL
    // took them out of the calls in flight and aborted their tasks, which ran on to the first
    // wait and were dropped there (`finish_call` in a task of its own).
    for call_id in [1, 3, 5, 7] {
        let mut pumping = Box::pin(pump(
            Arc::clone(&shared),
            call_id,
            Response::new(OneThenEnd(false)),
            ALLOWED,
        ));
        let _ = pumping.as_mut().poll(&mut cx);
    }
    {
        let state = shared.lock();
        assert!(state.streams.is_empty(), "a cancelled call got a stream");
        assert!(
            state.answer_waiters.is_empty(),
            "a cancelled call waits in line"
        );
        assert_eq!(state.answers_sent, 0, "a cancelled call got an answer");
    }
    // A live stream waits for credit, and credit comes: it must get a turn.
    shared.lock().running.insert(9, None);
    let live = Arc::new(CountWakes(AtomicUsize::new(0)));
    let live_waker = Waker::from(Arc::clone(&live));
    let mut live_cx = Context::from_waker(&live_waker);
    let mut pumping = Box::pin(pump(
        Arc::clone(&shared),
        9,
        Response::new(OneThenEnd(false)),
        ALLOWED,
    ));
    assert!(
        pumping.as_mut().poll(&mut live_cx).is_pending(),
        "the window is closed"
    );
    shared.lock().answer_credit(u32::MAX);
    assert_eq!(
        live.0.load(Ordering::SeqCst),
        1,
        "credit came and the live stream waiting for it got no turn: the dropped ones held them"
    );
    assert!(pumping.as_mut().poll(&mut live_cx).is_ready(), "it went");
}

#[test]
fn a_dropped_receiver_frees_its_queue_and_credits_what_comes_later() {
    use sockrpc_protocol::frame::{message_charge, Frame, STREAM_WINDOW};
    let outbox = Outbox::new(Box::pin(tokio::io::sink()));
    let shared = Arc::new(Shared::new(outbox, Limits::default()));
    let body = Bytes::from(vec![1u8; 1000]);
    let charge = message_charge(body.len());
    let queued = STREAM_WINDOW / body.len();
    {
        let mut state = shared.lock();
        let mut stream = ServerStream::default();
        stream.inbound.credit_charges();
        state.streams.insert(3, stream);
        for _ in 0..queued {
            let pushed = state.queue_message(3, body.clone(), false, false, 1 << 20);
            assert_eq!(pushed, Ok(true));
        }
        assert_eq!(state.inbound_bytes, queued * charge);
    }
    let receiver = CallReceiver {
        shared: Arc::clone(&shared),
        call_id: 3,
        ended: false,
        unnamed: true,
    };
    drop(receiver);
    let mut state = shared.lock();
    assert_eq!(state.inbound_bytes, 0, "the queue is released");
    assert_eq!(state.streams[&3].inbound.queued(), (0, 0), "and freed");
    assert_eq!(
        state.unreported,
        queued * charge,
        "its connection credit noted"
    );
    let stream_credit: usize = frames_written(&mut state)
        .into_iter()
        .map(|frame| match frame {
            Frame::Window { call_id: 3, credit } => credit as usize,
            other => panic!("only stream credit expected, got {other:?}"),
        })
        .sum();
    assert_eq!(
        stream_credit,
        queued * charge,
        "its stream credited as read"
    );
    // Later messages, far past the stream's window, are dropped and credited as they come.
    let later = 10 * STREAM_WINDOW / body.len();
    for i in 0..later {
        let pushed = state.queue_message(3, body.clone(), false, false, 1 << 20);
        assert_eq!(pushed, Ok(true), "message {i}");
        assert_eq!(state.streams[&3].inbound.queued(), (0, 0), "message {i}");
        assert_eq!(state.inbound_bytes, 0, "message {i}");
    }
    let (mut stream_credit, mut connection_credit) = (0, 0);
    for frame in frames_written(&mut state) {
        match frame {
            Frame::Window { call_id: 3, credit } => stream_credit += credit as usize,
            Frame::Window { call_id: 0, credit } => connection_credit += credit as usize,
            other => panic!("only credit expected, got {other:?}"),
        }
    }
    let unreported_stream = later * charge - stream_credit;
    assert!(
        unreported_stream < STREAM_WINDOW / 2,
        "the stream credited all but {unreported_stream}"
    );
    assert_eq!(
        connection_credit + state.unreported,
        (queued + later) * charge,
        "the connection credited every message"
    );
    // The call itself goes on: its answers still go out on this stream.
    assert!(state.streams.contains_key(&3));
}
