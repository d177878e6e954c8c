//! `Status`: the one error type at the RPC boundary.

use crate::{Code, EncodingFields, MetadataMap};
use bytes::Bytes;
use std::{error::Error, fmt, io, sync::Arc};

/// The outcome of a call that did not succeed: a [`Code`] a program can act on, a message for
/// people, opaque `details` for programs (e.g. an encoded `google.rpc.Status`), and trailing
/// metadata.
///
/// The fields live behind one box so that `Result<T, Status>` stays as small as a pointer on the
/// success path, which every call takes.
#[derive(Clone, PartialEq, Eq)]
pub struct Status(Box<Inner>);

#[derive(Clone)]
struct Inner {
    code: Code,
    message: String,
    details: Bytes,
    metadata: MetadataMap,
    /// The call never started. Carried by the protocol (END's `NOT_PROCESSED` flag), never in
    /// metadata a handler could forge.
    not_processed: bool,
    /// The server's encoding fields (its accept set) that came with this error: carried by the
    /// protocol (END's `FLAG_ENCODING`), never in metadata a handler could write.
    encoding: Option<EncodingFields>,
    /// This side refused what the call was about to send (a message or metadata over its
    /// limit): another attempt would be refused the same way. Local, never sent.
    refused_before_sending: bool,
    /// The call failed before it was written to any connection: there was none to be had.
    /// Local, never sent.
    never_sent: bool,
    /// On a client: the retry throttle (by its id) a retry or hedging layer counted this
    /// failure on. Local, never sent.
    failure_counter: Option<std::num::NonZeroU32>,
    /// The local error this status stands for (a connect failure's `io::Error`), for
    /// [`Error::source`]; never sent.
    source: Option<Arc<dyn Error + Send + Sync>>,
}

impl PartialEq for Inner {
    fn eq(&self, other: &Inner) -> bool {
        // The source and the refusal mark are local, not part of what the status says, nor
        // what the server that sent it reads (`encoding`).
        self.code == other.code
            && self.message == other.message
            && self.details == other.details
            && self.metadata == other.metadata
            && self.not_processed == other.not_processed
    }
}

impl Eq for Inner {}

macro_rules! constructors {
    ($($name:ident => $code:ident),* $(,)?) => {
        $(
            #[doc = concat!("A status with code [`Code::", stringify!($code), "`] and `message`.")]
            pub fn $name(message: impl Into<String>) -> Status {
                Status::new(Code::$code, message)
            }
        )*
    };
}

impl Status {
    /// A status with `code` and `message`, no details, no metadata.
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status(Box::new(Inner {
            code,
            message: message.into(),
            details: Bytes::new(),
            metadata: MetadataMap::new(),
            not_processed: false,
            encoding: None,
            refused_before_sending: false,
            never_sent: false,
            failure_counter: None,
            source: None,
        }))
    }

    /// A status with `code`, `message` and trailing `metadata`.
    pub fn with_metadata(code: Code, message: impl Into<String>, metadata: MetadataMap) -> Status {
        let mut status = Status::new(code, message);
        status.0.metadata = metadata;
        status
    }

    /// The same status, keeping `source` as its underlying cause ([`Error::source`]). The
    /// source stays on this side: it is not sent to the peer.
    pub fn with_source(mut self, source: impl Into<Box<dyn Error + Send + Sync>>) -> Status {
        self.0.source = Some(Arc::from(source.into()));
        self
    }

    /// A status with `code`, `message` and `details`.
    pub fn with_details(
        code: Code,
        message: impl Into<String>,
        details: impl Into<Bytes>,
    ) -> Status {
        let mut status = Status::new(code, message);
        status.0.details = details.into();
        status
    }

    /// A status with `code`, `message`, `details` and trailing `metadata` (tonic's
    /// `with_details_and_metadata`).
    pub fn with_details_and_metadata(
        code: Code,
        message: impl Into<String>,
        details: impl Into<Bytes>,
        metadata: MetadataMap,
    ) -> Status {
        let mut status = Status::with_details(code, message, details);
        status.0.metadata = metadata;
        status
    }

    /// The status an error stands for, as tonic's `Status::from_error`: a boxed `Status` is
    /// itself, an `io::Error` is [`from_io_error`](Status::from_io_error)'s; otherwise the
    /// nearest `Status` in the error's [`source`](Error::source) chain stands for it (an
    /// application error that wraps a downstream call's status keeps its code, message,
    /// details and metadata, none of the local marks a transport put on it; an `io::Error`
    /// deeper down is the application's, not a transport's, and is not looked for); anything
    /// else is `UNKNOWN` with the error's text. The error is kept as the source.
    pub fn from_error(err: Box<dyn Error + Send + Sync + 'static>) -> Status {
        Status::try_from_error(err)
            .unwrap_or_else(|err| Status::unknown(err.to_string()).with_source(err))
    }

    /// [`from_error`](Status::from_error) without its fallback, as tonic's `try_from_error`:
    /// the status an error stands for if it is one, an `io::Error`, or has a `Status` in its
    /// source chain; otherwise the error itself, handed back for the caller to map.
    ///
    /// # Errors
    ///
    /// `err`, when nothing in it is a status.
    pub fn try_from_error(
        err: Box<dyn Error + Send + Sync + 'static>,
    ) -> Result<Status, Box<dyn Error + Send + Sync + 'static>> {
        let err = match err.downcast::<Status>() {
            Ok(status) => return Ok(*status),
            Err(err) => err,
        };
        let err = match err.downcast::<io::Error>() {
            Ok(io) => return Ok(Status::from_io_error(&io).with_source(*io)),
            Err(err) => err,
        };
        match Status::in_source_chain(err.as_ref()) {
            Some(found) => Ok(found.with_source(err)),
            None => Err(err),
        }
    }

    /// Keeps `source` as this status's underlying cause, tonic's `set_source` (see
    /// [`with_source`](Status::with_source)); never sent.
    pub fn set_source(&mut self, source: Arc<dyn Error + Send + Sync + 'static>) -> &mut Status {
        self.0.source = Some(source);
        self
    }

    /// The nearest `Status` below `err` (among its sources, not `err` itself).
    fn in_source_chain(err: &(dyn Error + 'static)) -> Option<Status> {
        // Bounded: a source chain that loops would otherwise never end.
        let mut cause = err.source();
        for _ in 0..64 {
            let current = cause?;
            if let Some(status) = current.downcast_ref::<Status>() {
                return Some(Status::with_details_and_metadata(
                    status.code(),
                    status.message(),
                    status.details_bytes().clone(),
                    status.metadata().clone(),
                ));
            }
            cause = current.source();
        }
        None
    }

    constructors! {
        ok => Ok,
        cancelled => Cancelled,
        unknown => Unknown,
        invalid_argument => InvalidArgument,
        deadline_exceeded => DeadlineExceeded,
        not_found => NotFound,
        already_exists => AlreadyExists,
        permission_denied => PermissionDenied,
        resource_exhausted => ResourceExhausted,
        failed_precondition => FailedPrecondition,
        aborted => Aborted,
        out_of_range => OutOfRange,
        unimplemented => Unimplemented,
        internal => Internal,
        unavailable => Unavailable,
        data_loss => DataLoss,
        unauthenticated => Unauthenticated,
    }

    /// The code.
    pub fn code(&self) -> Code {
        self.0.code
    }

    /// The message for people.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The details for programs, as tonic's `details()` hands them out.
    pub fn details(&self) -> &[u8] {
        &self.0.details
    }

    /// The details for programs as the shared [`Bytes`] they are kept in: cloning them
    /// shares the buffer instead of copying it.
    pub fn details_bytes(&self) -> &Bytes {
        &self.0.details
    }

    /// Trailing metadata sent with the status.
    pub fn metadata(&self) -> &MetadataMap {
        &self.0.metadata
    }

    /// Trailing metadata sent with the status, to change.
    pub fn metadata_mut(&mut self) -> &mut MetadataMap {
        &mut self.0.metadata
    }

    /// Replaces the details.
    pub fn set_details(&mut self, details: impl Into<Bytes>) {
        self.0.details = details.into();
    }

    /// An `Unavailable` status for a call the server never started (refused while draining, or
    /// above a GOAWAY's last call id): retrying it cannot run it twice, so clients do so
    /// transparently. The mark travels as a protocol flag (END's `NOT_PROCESSED`), set only by
    /// a connection that refused the call itself: a handler returning this status sends a plain
    /// `Unavailable`, so it can never make a client re-send a call that ran.
    pub fn not_processed(message: impl Into<String>) -> Status {
        let mut status = Status::unavailable(message);
        status.0.not_processed = true;
        status
    }

    /// Whether this status says the call was never started (see [`Status::not_processed`]).
    pub fn is_not_processed(&self) -> bool {
        self.0.code == Code::Unavailable && self.0.not_processed
    }

    /// The encoding fields the server's END carried with this error answer: what it reads
    /// ([`EncodingFields::accept`]), as its HEADERS tell it with a successful answer. A client
    /// learns from them whether to go on compressing; they travel in the protocol's END, not
    /// in the status's metadata (whose `grpc-accept-encoding` entry a handler could write).
    pub fn encoding(&self) -> Option<EncodingFields> {
        self.0.encoding
    }

    /// Sets the encoding fields sent with this error answer ([`Status::encoding`]). On a server
    /// a generated service sets them on its error answers to a client whose OPEN carried its
    /// own (replacing what its handler set), and the transport sends them in the END
    /// (`FLAG_ENCODING`); on a client the transport sets what came, and a generated client
    /// takes them off once learned.
    pub fn set_encoding(&mut self, encoding: Option<EncodingFields>) {
        self.0.encoding = encoding;
    }

    /// Marks this status as this side's refusal of what a call was about to send (its
    /// metadata or a message over a limit: a unary call's before anything went out, a
    /// stream's perhaps after earlier messages): the same call would be refused again, so
    /// retry and hedging layers give up at once, as grpc-go checks a message's size before
    /// its retries, and the refusal says nothing of the server's health. Local: the mark is
    /// never sent.
    pub fn refused_before_sending(mut self) -> Status {
        self.0.refused_before_sending = true;
        self
    }

    /// Whether this side refused the call before sending it (see
    /// [`Status::refused_before_sending`]).
    pub fn is_refused_before_sending(&self) -> bool {
        self.0.refused_before_sending
    }

    /// Marks this status as the failure of a call that was never written to a connection:
    /// its endpoint had none to give (refused, or none came up in time), or the connection it
    /// was given closed before any byte of it was written (it waited for room there, or sat
    /// unwritten in the write buffer). No server can have seen the call, so a balancer tries
    /// it again, without counting an attempt, as grpc-go picks again when a picked connection
    /// is no longer ready. Alone, unlike [`Status::not_processed`], it does not make the same
    /// channel try again at once: its endpoint would fail it the same way. Local: the mark is
    /// never sent.
    pub fn never_sent(mut self) -> Status {
        self.0.never_sent = true;
        self
    }

    /// Whether the call failed before it was written to any connection (see
    /// [`Status::never_sent`]).
    pub fn is_never_sent(&self) -> bool {
        self.0.never_sent
    }

    /// On a client: the retry throttle (by its id) that a retry or hedging layer counted this
    /// failed attempt on (gRFC A6 counts each failed attempt once). A layer above with the
    /// same throttle, which sees the failure again as its own attempt's, leaves it. Local: the
    /// mark is never sent.
    pub fn failure_counter(&self) -> Option<std::num::NonZeroU32> {
        self.0.failure_counter
    }

    /// Notes that this failure was counted on the retry throttle `id`
    /// ([`failure_counter`](Status::failure_counter)).
    pub fn set_failure_counter(&mut self, id: std::num::NonZeroU32) {
        self.0.failure_counter = Some(id);
    }

    /// Maps a transport error: a refused, reset or closed connection, or any other I/O failure on
    /// the socket, is `Unavailable` — the call may be retried — except data the peer sent that
    /// could not be understood, which is `Internal`.
    pub fn from_io_error(err: &io::Error) -> Status {
        let code = match err.kind() {
            io::ErrorKind::InvalidData => Code::Internal,
            io::ErrorKind::TimedOut => Code::Unavailable,
            _ => Code::Unavailable,
        };
        Status::new(code, format!("transport error: {err}"))
    }
}

impl From<io::Error> for Status {
    fn from(err: io::Error) -> Status {
        Status::from_io_error(&err).with_source(err)
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Status");
        s.field("code", &self.0.code)
            .field("message", &self.0.message);
        if !self.0.details.is_empty() {
            s.field("details", &self.0.details);
        }
        if !self.0.metadata.is_empty() {
            s.field("metadata", &self.0.metadata);
        }
        s.finish()
    }
}

/// tonic's form, field for field: the code by its Rust name (`Internal`), then the message,
/// the details' bytes and the metadata, whether empty or not.
impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "status: {:?}, message: {:?}, details: {:?}, metadata: {:?}",
            self.code(),
            self.message(),
            self.details(),
            self.metadata(),
        )
    }
}

impl Error for Status {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0
            .source
            .as_deref()
            .map(|source| source as &(dyn Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_unavailable() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(Status::from(refused).code(), Code::Unavailable);
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(Status::from(reset).code(), Code::Unavailable);
        assert_eq!(std::mem::size_of::<Status>(), std::mem::size_of::<usize>());
    }
}

#[cfg(test)]
mod source_tests {
    use super::*;

    #[test]
    fn a_status_keeps_its_source_locally_and_compares_without_it() {
        let io = io::Error::new(io::ErrorKind::ConnectionRefused, "refused");
        let status = Status::from(io);
        assert_eq!(status.code(), Code::Unavailable);
        let source = status.source().expect("the io::Error is kept");
        let io = source.downcast_ref::<io::Error>().expect("an io::Error");
        assert_eq!(io.kind(), io::ErrorKind::ConnectionRefused);
        let plain = Status::new(status.code(), status.message());
        assert_eq!(status, plain, "the source is not part of the status");
        assert!(plain.source().is_none());
    }

    #[test]
    fn try_from_error_hands_back_an_error_with_no_status_in_it() {
        let plain: Box<dyn Error + Send + Sync> = "not a status".into();
        let back = Status::try_from_error(plain).expect_err("nothing to map");
        assert_eq!(back.to_string(), "not a status");
        let status = Status::not_found("gone");
        let found = Status::try_from_error(Box::new(status.clone())).expect("a status");
        assert_eq!(found, status);
        let io = io::Error::new(io::ErrorKind::ConnectionReset, "reset");
        let found = Status::try_from_error(Box::new(io)).expect("an io::Error");
        assert_eq!(found.code(), Code::Unavailable);
    }

    #[test]
    fn set_source_keeps_the_cause_in_place() {
        let mut status = Status::internal("failed");
        let cause: Arc<dyn Error + Send + Sync> = Arc::new(io::Error::other("disk"));
        assert!(status.set_source(cause).source().is_some());
        let kept = status.source().expect("kept");
        assert_eq!(kept.to_string(), "disk");
    }

    #[test]
    fn with_metadata_sets_the_trailers() {
        let mut metadata = MetadataMap::new();
        metadata.insert_str("retry-hint", "later").expect("valid");
        let status = Status::with_metadata(Code::Aborted, "busy", metadata);
        assert_eq!(status.metadata().get_str("retry-hint"), Some("later"));
    }
}
