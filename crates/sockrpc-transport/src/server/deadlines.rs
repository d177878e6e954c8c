//! What a server connection is owed, and by when: the deadlines its one timer waits on
//! (`timers.rs`), set after each read batch and acted on when the timer fires.
//!
//! Why apart from `conn.rs`: the connection's read-and-write loop is one concern, the clock
//! kept on the peer (slowloris, keepalive, idleness, age) another.

use super::conn::Connection;
use super::timers::Assembly;
use crate::dispatch::Dispatch;
use crate::log_limit::{warn_limited, Kind};
use crate::timer::deadline_after;
use sockrpc_protocol::frame;
use sockrpc_protocol::Code;
use std::task::{Context, Poll};
use tokio::time::Instant;

impl<D: Dispatch> Connection<D> {
    /// After a read batch: what the peer now owes, and by when. Reads the clock only when
    /// something is owed: a connection whose reads end on frame boundaries and whose calls are
    /// answered within the batch (the common case) pays nothing here.
    pub(super) fn update_deadlines(&mut self) {
        let mut clock = None;
        let mut now = || *clock.get_or_insert_with(Instant::now);
        let frame_timeout = self.config.frame_timeout;
        let due = &mut self.timers.due;
        if due.handshake.is_some() && self.reader.past_preface() {
            due.handshake = None;
            // Established: the accept loop may no longer evict it, and the floor comes down
            // (`handshakes.rs`). Evicted just before: the ticket stays, and the next pass (its
            // eviction woke the task) closes the connection with its GOAWAY.
            if self
                .awaiting
                .as_ref()
                .is_none_or(|ticket| ticket.establish())
            {
                self.awaiting = None;
            }
        }
        // Each frame gets frame_timeout from its first byte: the clock restarts whenever a
        // frame completed since the last look (what is buffered now is a newer frame). While
        // a split message stays in assembly only its own pieces' bytes restart it: other
        // calls' frames (or empty pieces) between them would otherwise hold it open for ever.
        let pieces = self.reader.piece_bytes();
        let pieces_moved = pieces != self.pieces_at_last_check;
        let assembling = self.reader.assembling();
        let progressed = pieces_moved
            || (!(assembling && self.assembling_at_last_check)
                && self.reader.frames() != self.frames_at_last_check);
        self.assembling_at_last_check = assembling;
        self.frames_at_last_check = self.reader.frames();
        // The frame clock alone: `due.frame` may hold the floor folded in (below).
        let frame_clock = self.timers.assembly.map_or(due.frame, |noted| noted.frame);
        due.frame = match (self.reader.mid_frame(), frame_clock) {
            (false, _) => None,
            (true, Some(started)) if !progressed => Some(started),
            (true, _) => Some(deadline_after(now(), frame_timeout)),
        };
        // A split message in assembly must also be whole within a frame timeout plus its
        // length at the server's floor (`timers.rs` `Assembly`): each piece restarts the frame
        // clock, so 16 KiB pieces, one per frame timeout, held an assembly for hours.
        if assembling {
            let seen = self.reader.assembly();
            let rate = self.config.min_message_rate;
            let assembly = &mut self.timers.assembly;
            let frame = due.frame;
            if let Some(at) = Assembly::note(assembly, seen, &mut now, rate, frame_timeout) {
                due.frame = Some(frame.map_or(at, |frame| frame.min(at)));
            }
            if let Some(noted) = assembly {
                noted.frame = frame;
            }
        } else {
            self.timers.assembly = None;
        }
        // Pieces of split messages arriving: the requests waiting behind them are not late
        // (noted for the connection, not per call: `open.rs`).
        if pieces_moved {
            self.pieces_at_last_check = pieces;
            self.opened.pieces_arrived();
        }
        due.open = if self.opened.is_empty() {
            None
        } else {
            self.opened.settle(now(), frame_timeout)
        };
        if due.keepalive.is_none() {
            if let Some(keepalive) = self.config.keepalive {
                due.keepalive = Some(deadline_after(now(), keepalive.interval));
                self.frames_at_keepalive = self.reader.frames();
            }
        }
        // The idle deadline is armed once and checked when it fires (calls opened since then
        // push it back), so a busy connection never moves its timer per call.
        if due.idle.is_none() {
            if let Some(limit) = self.config.idle_timeout {
                due.idle = Some(deadline_after(now(), limit));
                self.calls_at_idle_check = self.activity();
            }
        }
    }

    /// The timer fired: act on whichever deadline passed. `Some` closes the connection.
    pub(super) fn on_timer(&mut self, cx: &mut Context<'_>) -> Option<Poll<()>> {
        let now = Instant::now();
        let due = self.timers.due;
        if due.handshake.is_some_and(|at| at <= now) {
            warn_limited!(self.config.log_limit, Kind::NoPreface, { peer = ?self.conn_info.peer, },
                "closing connection: no preface in time");
            return Some(self.close(cx, None));
        }
        if due.frame.is_some_and(|at| at <= now) {
            if self.not_reading() {
                // We stopped reading, not the peer: its frame is not late, nor its message (its
                // floor counts afresh from now). Cancelled handlers not yet gone pause reading
                // too (`aborted.rs`), for as long as one takes to return. A pause that ended
                // before a pass took the frames it left (`backlog`: on a loaded machine the
                // pass after it can come late, and checks its timers first) counts the same.
                self.timers.due.frame = Some(deadline_after(now, self.config.frame_timeout));
                if let Some(assembly) = &mut self.timers.assembly {
                    assembly.since = now;
                    assembly.frame = self.timers.due.frame;
                }
                self.timers.pause_from(now);
            } else if let Some(reason) = self.message_late(now) {
                warn_limited!(self.config.log_limit, Kind::FrameTimeout, { peer = ?self.conn_info.peer, },
                    "closing connection: a split message did not complete in time");
                return Some(self.close(cx, Some((Code::DeadlineExceeded, reason))));
            } else if let Some(later) = self.frame_not_due(now) {
                // What fired was the floor for a shorter message: a piece begun since moved it
                // on, and the frame clock has not run out.
                self.timers.due.frame = Some(later);
            } else {
                warn_limited!(self.config.log_limit, Kind::FrameTimeout, { peer = ?self.conn_info.peer, },
                    "closing connection: a frame did not complete in time");
                let reason = (
                    Code::DeadlineExceeded,
                    "frame not completed in time".to_owned(),
                );
                return Some(self.close(cx, Some(reason)));
            }
        }
        if due.open.is_some_and(|at| at <= now) {
            if self.not_reading() {
                // We stopped reading, not the peer: a request message may be waiting unread (or
                // unsent behind what we did not read). Its frame timeout counts afresh from now,
                // and from when reading resumes; deadlines still end calls (`open.rs`).
                self.opened.excuse(now);
                self.timers.pause();
            }
            self.expire_opened(now);
            self.timers.due.open = if self.opened.is_empty() {
                None
            } else {
                self.opened.settle(now, self.config.frame_timeout)
            };
        }
        if let (Some(at), Some(keepalive)) = (due.keepalive, self.config.keepalive) {
            if at <= now {
                if self.awaiting_pong.is_some() {
                    // Frames a pause left unread excuse the peer only once nothing holds reading
                    // back: a write buffer past the high-water mark (a client not reading its
                    // answers) does not, or such a client would never be closed
                    // (`tests/hostile/unread_keepalive.rs`).
                    let left_unread = self.backlog && !self.paused();
                    if !self.aborted_in_the_way() && !left_unread {
                        tracing::debug!(peer = ?self.conn_info.peer, "closing connection: keepalive PING unanswered");
                        let reason = (Code::Unavailable, "keepalive timeout".to_owned());
                        return Some(self.close(cx, Some(reason)));
                    }
                    // Reading stopped for cancelled handlers not yet gone (`aborted.rs`), or no
                    // pass has taken the frames such a pause left (`backlog`): the PONG may be
                    // waiting unread. It has the timeout again from now.
                    self.timers.due.keepalive = Some(deadline_after(now, keepalive.timeout));
                } else if self.reader.frames() == self.frames_at_keepalive {
                    // Nothing heard for a whole interval: is the client still there?
                    let payload =
                        u64::from(self.last_call_id) << 32 | self.reader.frames() & 0xffff_ffff;
                    frame::encode_ping(self.shared.lock().outbox.buf_mut(), payload);
                    self.awaiting_pong = Some(payload);
                    self.timers.due.keepalive = Some(deadline_after(now, keepalive.timeout));
                } else {
                    self.timers.due.keepalive = Some(deadline_after(now, keepalive.interval));
                }
                self.frames_at_keepalive = self.reader.frames();
            }
        }
        if due.age.is_some_and(|at| at <= now) {
            if let Some(done) = self.on_age(cx, now) {
                return Some(done);
            }
        }
        if let (Some(at), Some(limit)) = (due.idle, self.config.idle_timeout) {
            if at <= now {
                let activity = self.activity();
                let quiet = activity == self.calls_at_idle_check;
                if quiet && self.in_flight() == 0 {
                    tracing::debug!(peer = ?self.conn_info.peer, "closing idle connection");
                    self.send_away("idle connection closed", true);
                    return Some(self.linger(cx));
                }
                // Busy since the timer was armed: idle, if at all, only from now on.
                self.calls_at_idle_check = activity;
                self.timers.due.idle = Some(deadline_after(now, limit));
            }
        }
        None
    }

    /// Whether the connection is not reading its socket by its own doing: its write buffer past
    /// the high-water mark or its streams over budget (`Connection::paused`), cancelled
    /// handlers in the way (`aborted.rs`), or frames such a pause left not taken yet
    /// (`backlog`); or a pause that has ended but not been read past (`Timers::paused`: a
    /// handler consumed its stream on a task of its own just before this pass, whose timers
    /// come before its read). What the peer owes meanwhile is not late.
    fn not_reading(&mut self) -> bool {
        self.timers.paused() || self.paused() || self.aborted_in_the_way() || self.backlog
    }

    /// What the idle timer compares between two looks: the last call opened, the handlers
    /// run to their end, and the calls that stopped waiting for their request message (it
    /// came, or they were cancelled or expired). A call waiting at one look and gone by the
    /// next, however it went, was activity: the connection is idle only from then.
    fn activity(&self) -> (u32, u64, u64) {
        (
            self.last_call_id,
            self.shared.lock().went_idle,
            self.opened.departed(),
        )
    }

    /// When the deadline that fired at `now` was the floor of a split message that has since
    /// announced more (and is not late by that), and its frame clock runs on: the sooner of the
    /// two, to wait for instead.
    fn frame_not_due(&self, now: Instant) -> Option<Instant> {
        let (_, length) = self.reader.assembly()?;
        let assembly = self.timers.assembly?;
        let frame = assembly.frame.filter(|&at| at > now)?;
        let (rate, grace) = (self.config.min_message_rate, self.config.frame_timeout);
        Some(
            assembly
                .due(length, rate, grace)
                .map_or(frame, |due| due.min(frame)),
        )
    }

    /// When the split message in assembly passed its floor by `now` (`Assembly`): the GOAWAY
    /// reason that says so.
    fn message_late(&self, now: Instant) -> Option<String> {
        let (_, length) = self.reader.assembly()?;
        let assembly = self.timers.assembly?;
        let (rate, grace) = (self.config.min_message_rate, self.config.frame_timeout);
        let due = assembly.due(length, rate, grace)?;
        (due <= now).then(|| {
            format!(
                "message not completed in time: a split message of {length} bytes so far, \
                 begun {:?} ago, is due within the frame timeout ({grace:?}) plus its length \
                 at {rate} bytes/s (min_message_rate)",
                now.saturating_duration_since(assembly.since)
            )
        })
    }
}
