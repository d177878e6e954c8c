//! The client's metadata limit, as its SETTINGS announced it (`CAP_METADATA_LIMIT`), and this
//! server's own, announced back.
//!
//! As HTTP/2's `SETTINGS_MAX_HEADER_LIST_SIZE`: a server that knows the client would refuse
//! its response headers or trailers does not send them. grpc-go's server resets such a stream
//! with `INTERNAL` ("trying to send header list size larger than the limit set by peer"); this
//! one sends a short END `INTERNAL` that names the sizes instead, so the client's call ends with
//! a reason and the connection goes on. An error status whose trailers are over the limit loses
//! its trailers, as one over the server's own limit does (`respond.rs`, `encode_end_with`), and
//! its message says so.
//!
//! ```text
//!  server                                   client
//!    PREFACE, SETTINGS(caps | CAP_METADATA_LIMIT) ─▶ ◀─ PREFACE, SETTINGS(caps | CAP_METADATA_LIMIT), OPEN…
//!    SETTINGS(…, max metadata) ─────────────────▶   ◀─ SETTINGS(…, max metadata)
//! ```
//!
//! Each side sends its limit once, in answer to the peer's first SETTINGS with the bit: an
//! older peer refuses a SETTINGS longer than 4 bytes, so it is never sent one.

use super::respond::ConnState;
use sockrpc_protocol::frame::{self, metadata_charge};
use sockrpc_protocol::{Limits, MetadataMap, Status};

/// The client's metadata limit in `ConnState::client_metadata`: 0 until its SETTINGS showed
/// `CAP_METADATA_LIMIT` (then this server's limit has been sent), `usize::MAX` while it
/// announced none.
pub(super) const NOT_TOLD: usize = 0;

/// A SETTINGS from the client: keeps the limit it announced, and answers its first SETTINGS
/// with the bit with this server's own limits.
pub(super) fn on_settings(
    state: &mut ConnState,
    capabilities: u32,
    max_metadata: Option<u32>,
    (max_calls, own_limit): (usize, usize),
) {
    if state.client_metadata == NOT_TOLD && capabilities & frame::CAP_METADATA_LIMIT != 0 {
        frame::encode_settings_with_limit(
            state.outbox.buf_mut(),
            frame::SERVER_CAPABILITIES,
            max_calls,
            own_limit,
        );
        state.client_metadata = usize::MAX;
    }
    if let Some(limit) = max_metadata {
        state.client_metadata = usize::try_from(limit).unwrap_or(usize::MAX);
    }
}

/// The client's announced limit, or `None` when it announced none.
fn client_limit(state: &ConnState) -> Option<usize> {
    Some(state.client_metadata).filter(|limit| *limit != NOT_TOLD && *limit != usize::MAX)
}

/// Checks a response's headers and trailers against this server's own limits, then the
/// client's announced one: past either, the status to end the call with instead (`INTERNAL`,
/// as grpc-go).
pub(super) fn check_response(
    state: &ConnState,
    headers: &MetadataMap,
    trailers: &MetadataMap,
    limits: &Limits,
) -> Result<(), Status> {
    if headers.is_empty() && trailers.is_empty() {
        // Nearly every answer: an empty block is under any limit, ours or the client's.
        return Ok(());
    }
    frame::check_metadata(headers, limits)
        .and_then(|()| frame::check_metadata(trailers, limits))
        .map_err(|reason| Status::internal(format!("response metadata: {reason}")))?;
    let Some(limit) = client_limit(state) else {
        return Ok(());
    };
    for (what, metadata) in [("headers", headers), ("trailers", trailers)] {
        let size = metadata_charge(metadata);
        if size > limit {
            return Err(Status::internal(format!(
                "response {what} of {size} bytes exceed the limit of {limit} the client announced"
            )));
        }
    }
    Ok(())
}

/// An error status to send: its trailers dropped when they are over the client's limit, and
/// its message saying so (the code, the handler's words and the details go as they are).
pub(super) fn fit_status(state: &ConnState, status: Status, limits: &Limits) -> Status {
    let Some(limit) = client_limit(state) else {
        return status;
    };
    let size = metadata_charge(status.metadata());
    if size <= limit {
        return status;
    }
    let note = format!(
        "[trailing metadata dropped: {size} bytes exceed the limit of {limit} the client \
         announced]"
    );
    let message = frame::noted_status(status.message(), &note, limits.status_message_cap());
    Status::with_details(status.code(), message, status.details_bytes().clone())
}
