//! A streamed body's messages as span events, and the span kept open to the stream's end.

use super::record_status;
use crate::watch::{dropped_code, Watch};
use crate::Side;
use sockrpc_protocol::{Code, Status};
use tracing::Span;

/// Which way messages go, from this side's point of view.
#[derive(Debug, Clone, Copy)]
pub(super) enum Direction {
    /// This side writes them.
    Sent,
    /// This side reads them.
    Received,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Sent => "SENT",
            Direction::Received => "RECEIVED",
        }
    }
}

/// Emits an `rpc.message` event per message; for an answer's stream, also ends the call on
/// the span when the stream ends (and, holding the span, keeps it open until then).
pub(super) struct Events {
    span: Span,
    direction: Direction,
    /// Counts from 1 per direction, as the conventions ask. Integers are `i64` on spans:
    /// OpenTelemetry has no unsigned ones, and the bridge turns a `u64` into text.
    next_id: i64,
    /// `Some` for the answer's stream, whose end is the call's end.
    ends_call: Option<Side>,
}

impl Events {
    /// For a request stream: events only; the call ends with its answer.
    pub(super) fn requests(span: Span, direction: Direction) -> Events {
        Events {
            span,
            direction,
            next_id: 1,
            ends_call: None,
        }
    }

    /// For an answer's stream on `side`: events, and the call's status at the end.
    pub(super) fn answers(span: Span, side: Side) -> Events {
        let direction = match side {
            Side::Client => Direction::Received,
            Side::Server => Direction::Sent,
        };
        Events {
            span,
            direction,
            next_id: 1,
            ends_call: Some(side),
        }
    }
}

impl Watch for Events {
    fn on_message(&mut self, len: usize, compressed: bool) {
        // Entered, not only named as the parent: OpenTelemetry's bridge ends a span at its last
        // exit, so a span never entered while its stream flows would end at the answer's head.
        let _entered = self.span.enter();
        let id = self.next_id;
        self.next_id += 1;
        let size = i64::try_from(len).unwrap_or(i64::MAX);
        // A message that arrived compressed is seen before the body decodes it.
        let (uncompressed, compressed) = if compressed {
            (None, Some(size))
        } else {
            (Some(size), None)
        };
        tracing::debug!(
            parent: &self.span,
            rpc.message.type = self.direction.as_str(),
            rpc.message.id = id,
            rpc.message.uncompressed_size = uncompressed,
            rpc.message.compressed_size = compressed,
            "rpc.message"
        );
    }

    fn on_drop(&mut self) {
        let code = self.ends_call.map_or(Code::Cancelled, dropped_code);
        self.on_end(code);
    }

    fn on_end(&mut self, code: Code) {
        self.end_call(code, "");
    }

    fn on_error(&mut self, status: &Status) {
        self.end_call(status.code(), status.message());
    }
}

impl Events {
    /// Ends the call on the span, for an answer's stream.
    fn end_call(&mut self, code: Code, message: &str) {
        if let Some(side) = self.ends_call {
            // Let go of the span as the call ends: held until the body is dropped, it stayed
            // open (and unexported) for as long as the caller kept its finished stream.
            let span = std::mem::replace(&mut self.span, Span::none());
            let _entered = span.enter();
            record_status(&span, side, code, message);
        }
    }
}
