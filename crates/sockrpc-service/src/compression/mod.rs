//! Per-message compression and message-size limits, negotiated per call, as a generated client
//! or server applies them.
//!
//! Why here, in the service layer: the transport only carries the flag (`FLAG_COMPRESSED` on
//! MESSAGE) and the encoding fields (OPEN, HEADERS) as they are; compressing, refusing and
//! bounding happen where messages are encoded and decoded, and the work runs on the task that
//! produces or consumes the message, not on the connection's reader.
//!
//! ```text
//!  client                                              server
//!  OPEN [accept: zstd, send: gzip]  ──────────────────▶  learns what the client reads
//!  MESSAGE (plain, or COMPRESSED gzip ─ only once the      decompresses gzip if it accepts it,
//!           client has seen the server accept gzip)        else UNIMPLEMENTED
//!  ◀────────────────── HEADERS [accept: gzip, send: zstd]  (only to a client that sent fields)
//!  ◀────────────────── MESSAGE (COMPRESSED zstd: the client accepts zstd)
//! ```
//!
//! - A side compresses only toward a peer that listed the encoding in its accept set: a server
//!   learns the client's from its OPEN; a [`Client`](crate::Client) learns the server's from the
//!   HEADERS of an earlier answer (so its first call goes plain), an error answer's too (a
//!   refusal of its encoding among them: it then stops using one the server does not read),
//!   never from metadata a handler could write. A peer that sent no encoding fields (an older
//!   one) is never sent any.
//! - Limits apply to the decoded size, checked while decompressing ([`decompress`]).
//! - Messages shorter than [`MessageSettings::compression_min_size`] go plain, and a
//!   [`CompressionSwitch`] turns compression off for the messages of a stream that follow.
//! - UDP datagram calls carry no encoding fields: they always go uncompressed.

mod algorithm;

pub use algorithm::{compiled_encodings, compress, decompress};
pub use sockrpc_protocol::{CompressionDisabled, CompressionEncoding, EncodingFields, EncodingSet};

use crate::{Call, CallFuture};
use bytes::Bytes;
use sockrpc_protocol::Status;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The decoded-size limit when none is configured: gRPC's 4 MiB.
pub const DEFAULT_MAX_DECODING_MESSAGE_SIZE: usize = 4 * 1024 * 1024;

/// The default [`MessageSettings::compression_min_size`]: smaller messages rarely shrink.
pub const DEFAULT_COMPRESSION_MIN_SIZE: usize = 32;

/// Compression and size limits of one generated client or server (tonic's
/// `send_compressed` / `accept_compressed` / `max_decoding_message_size` /
/// `max_encoding_message_size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageSettings {
    accept: EncodingSet,
    send: Option<CompressionEncoding>,
    min_size: usize,
    max_decoding: Option<usize>,
    max_encoding: Option<usize>,
}

impl Default for MessageSettings {
    fn default() -> MessageSettings {
        MessageSettings {
            accept: EncodingSet::EMPTY,
            send: None,
            min_size: DEFAULT_COMPRESSION_MIN_SIZE,
            max_decoding: None,
            max_encoding: None,
        }
    }
}

impl MessageSettings {
    /// Nothing compressed or accepted; the transport's limits only.
    pub fn new() -> MessageSettings {
        MessageSettings::default()
    }

    /// Accepts messages compressed with `encoding` (and says so to the peer). An encoding
    /// not compiled into this build ([`compiled_encodings`]) is ignored, with a warning.
    #[must_use]
    pub fn accept_compressed(mut self, encoding: CompressionEncoding) -> MessageSettings {
        if compiled_encodings().contains(encoding) {
            self.accept = self.accept.with(encoding);
        } else {
            tracing::warn!(%encoding, "accept_compressed: not compiled in (cargo feature)");
        }
        self
    }

    /// Compresses messages with `encoding` toward a peer that accepts it (others get them
    /// plain). An encoding not compiled into this build is ignored, with a warning.
    #[must_use]
    pub fn send_compressed(mut self, encoding: CompressionEncoding) -> MessageSettings {
        if compiled_encodings().contains(encoding) {
            self.send = Some(encoding);
        } else {
            tracing::warn!(%encoding, "send_compressed: not compiled in (cargo feature)");
        }
        self
    }

    /// Messages shorter than `bytes` go uncompressed (default
    /// [`DEFAULT_COMPRESSION_MIN_SIZE`]).
    #[must_use]
    pub fn compression_min_size(mut self, bytes: usize) -> MessageSettings {
        self.min_size = bytes;
        self
    }

    /// The largest message accepted, counted after decompression: a larger one fails its call
    /// `RESOURCE_EXHAUSTED`. Unset, compressed messages are bounded by
    /// [`DEFAULT_MAX_DECODING_MESSAGE_SIZE`] and plain ones by the transport's message limit
    /// alone (which also bounds every message's wire size: raise both for larger messages).
    #[must_use]
    pub fn max_decoding_message_size(mut self, bytes: usize) -> MessageSettings {
        self.max_decoding = Some(bytes);
        self
    }

    /// The largest message sent, counted before compression: a larger one fails its call
    /// `RESOURCE_EXHAUSTED` without being sent. Unset: no limit beyond the transport's.
    #[must_use]
    pub fn max_encoding_message_size(mut self, bytes: usize) -> MessageSettings {
        self.max_encoding = Some(bytes);
        self
    }

    /// The encodings accepted.
    pub fn accepted(&self) -> EncodingSet {
        self.accept
    }

    /// The encoding sent with, if any.
    pub fn sends(&self) -> Option<CompressionEncoding> {
        self.send
    }

    /// Whether these are the defaults (then a call costs nothing extra).
    pub fn is_default(&self) -> bool {
        *self == MessageSettings::default()
    }

    /// The encoding fields this side sends, when it has anything to say.
    pub(crate) fn fields(&self) -> Option<EncodingFields> {
        (!self.accept.is_empty() || self.send.is_some())
            .then(|| EncodingFields::new(self.accept, self.send))
    }

    pub(crate) fn decoding(&self, peer: Option<EncodingFields>, side: Side) -> Decoding {
        Decoding {
            accept: self.accept,
            named: peer.map_or(0, |p| p.send),
            max: self.max_decoding,
            side,
        }
    }

    pub(crate) fn encoding(
        &self,
        send: Option<CompressionEncoding>,
        switch: Option<CompressionSwitch>,
    ) -> Encoding {
        Encoding {
            send,
            min_size: self.min_size,
            max: self.max_encoding,
            switch,
        }
    }

    /// Runs a generated server's dispatch with these settings: the request body decodes (and
    /// refuses what is not accepted), the answer compresses toward a client that accepts the
    /// encoding, and the HEADERS tell a client that sent encoding fields what this server
    /// accepts. When the answer will be compressed, the request's extensions hold the
    /// [`CompressionSwitch`] of its messages.
    pub fn serve(&self, mut call: Call, run: impl FnOnce(Call) -> CallFuture) -> CallFuture {
        if self.is_default() {
            // A compressed message still meets the body's refusal: `UNIMPLEMENTED`, or
            // `INTERNAL` when the OPEN named no encoding (`Call::from_incoming`).
            if call.request().encoding().is_none() {
                return run(call);
            }
            // A client that speaks encoding fields: an error answer (that refusal among them)
            // tells it this server reads none, so that it stops compressing toward it.
            let fields = Some(EncodingFields::new(EncodingSet::EMPTY, None));
            let answer = run(call);
            return Box::pin(async move {
                answer.await.map_err(|mut status| {
                    status.set_encoding(fields);
                    status
                })
            });
        }
        let peer = call.request().encoding();
        let decoding = self.decoding(peer, Side::Server);
        call.request_mut().get_mut().set_decoding(decoding);
        let send = self
            .send
            .filter(|e| peer.is_some_and(|p| p.accept.contains(*e)));
        let switch = send.map(|_| {
            let switch = CompressionSwitch::new();
            call.request_mut().extensions_mut().insert(switch.clone());
            switch
        });
        let encoding = self.encoding(send, switch);
        let fields = peer.map(|_| EncodingFields::new(self.accept, send));
        let answer = run(call);
        Box::pin(async move {
            let mut response = match answer.await {
                Ok(response) => response,
                Err(mut status) => {
                    // An error answer tells what this server reads too (in its END's encoding
                    // fields): a refusal of the client's encoding, or any other, is learned
                    // from that, never from the status's metadata.
                    status.set_encoding(fields);
                    return Err(status);
                }
            };
            response.set_encoding(fields);
            let encoding = if response.extensions().get::<CompressionDisabled>().is_some()
                && response.get_ref().is_once()
            {
                // tonic's `disable_compression`: this one message goes plain.
                Encoding {
                    send: None,
                    ..encoding
                }
            } else {
                encoding
            };
            response.get_mut().set_encoding(encoding);
            Ok(response)
        })
    }
}

/// Which side decodes, for messages that say who refused what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Server,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }
}

/// How a body decodes the messages it receives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decoding {
    accept: EncodingSet,
    /// The peer's `send` id (0: it named none).
    named: u8,
    max: Option<usize>,
    side: Side,
}

impl Decoding {
    /// A decoding that accepts no compression and refuses plain messages over `max`.
    pub(crate) fn bounded(max: usize, side: Side) -> Decoding {
        Decoding {
            accept: EncodingSet::default(),
            named: 0,
            max: Some(max),
            side,
        }
    }

    /// Lowers the receiving limit to `max` when that is smaller.
    pub(crate) fn tighten(&mut self, max: Option<usize>) {
        self.max = smaller(self.max, max);
    }

    /// The receiving limit.
    pub(crate) fn max(&self) -> Option<usize> {
        self.max
    }

    /// The message as the application reads it.
    pub(crate) fn decode(&self, message: Bytes, compressed: bool) -> Result<Bytes, Status> {
        if !compressed {
            if let Some(max) = self.max.filter(|max| message.len() > *max) {
                return Err(Status::resource_exhausted(format!(
                    "message of {} bytes exceeds the limit of {max}",
                    message.len()
                )));
            }
            return Ok(message);
        }
        let side = self.side.name();
        let fields = EncodingFields {
            accept: self.accept,
            send: self.named,
        };
        let encoding = match fields.send_encoding() {
            Ok(Some(encoding)) => encoding,
            Ok(None) => return Err(unnamed_encoding()),
            Err(id) => {
                return Err(encoding_refused(
                    format!(
                        "Content is compressed with encoding id {id}, unknown to this {side}, \
                         which isn't supported (it accepts {})",
                        self.accept
                    ),
                    self.accept,
                ))
            }
        };
        if !self.accept.contains(encoding) {
            // tonic's words exactly (its tests compare them whole); what this side reads
            // travels in the refusal's `grpc-accept-encoding` entry.
            return Err(encoding_refused(
                format!("Content is compressed with `{encoding}` which isn't supported"),
                self.accept,
            ));
        }
        decompress(
            encoding,
            &message,
            self.max.unwrap_or(DEFAULT_MAX_DECODING_MESSAGE_SIZE),
        )
    }
}

/// The metadata key under which a refusal of a message's encoding names the encodings this
/// side reads, as gRPC's compression spec has a server answer and tonic's client and server do.
pub(crate) const ACCEPT_ENCODING_KEY: &str = "grpc-accept-encoding";

/// The refusal of a message compressed in an encoding this side does not read: `UNIMPLEMENTED`
/// with `message`, and `grpc-accept-encoding` metadata naming what it reads, in tonic's form
/// (`"gzip,zstd,identity"`; `"identity"` when it reads no compression), so that a program can
/// tell what to send instead.
pub(crate) fn encoding_refused(message: String, accept: EncodingSet) -> Status {
    let mut status = Status::unimplemented(message);
    let mut accepted = String::new();
    for encoding in accept.iter() {
        accepted.push_str(encoding.as_str());
        accepted.push(',');
    }
    accepted.push_str("identity");
    // A valid key and an ASCII value: this cannot fail, and the status stands if it did.
    let _ = status
        .metadata_mut()
        .insert_str(ACCEPT_ENCODING_KEY, accepted.as_str());
    status
}

/// The refusal of a message flagged compressed whose sender named no encoding: a protocol
/// error, `INTERNAL` on either side, as gRPC's compression spec says of a message with its
/// Compressed-Flag set and no `grpc-encoding` (and tonic and grpc-go answer). An encoding named
/// but not accepted is another matter: `UNIMPLEMENTED`, naming what is accepted.
pub(crate) fn unnamed_encoding() -> Status {
    Status::internal(
        "protocol error: a message flagged compressed, but its sender named no encoding",
    )
}

/// Whether `fields` (a peer's, as its OPEN or HEADERS carried them) name no encoding its
/// compressed messages use.
pub(crate) fn names_no_encoding(fields: Option<EncodingFields>) -> bool {
    fields.is_none_or(|fields| fields.send == 0)
}

/// How a body encodes the messages it sends.
#[derive(Debug, Clone)]
pub(crate) struct Encoding {
    send: Option<CompressionEncoding>,
    min_size: usize,
    max: Option<usize>,
    switch: Option<CompressionSwitch>,
}

impl Encoding {
    /// An encoding that compresses nothing and refuses messages over `max`.
    pub(crate) fn bounded(max: usize) -> Encoding {
        Encoding {
            send: None,
            min_size: DEFAULT_COMPRESSION_MIN_SIZE,
            max: Some(max),
            switch: None,
        }
    }

    /// Lowers the sending limit to `max` when that is smaller.
    pub(crate) fn tighten(&mut self, max: Option<usize>) {
        self.max = smaller(self.max, max);
    }

    /// The sending limit.
    pub(crate) fn max(&self) -> Option<usize> {
        self.max
    }

    /// Whether a message of `len` bytes may be sent: `RESOURCE_EXHAUSTED` over the limit.
    pub(crate) fn check_size(&self, len: usize) -> Result<(), Status> {
        match self.max.filter(|max| len > *max) {
            Some(max) => Err(Status::resource_exhausted(format!(
                "message of {len} bytes exceeds the sending limit of {max}"
            ))
            .refused_before_sending()),
            None => Ok(()),
        }
    }

    /// The message as it goes on the wire, and whether it is compressed.
    pub(crate) fn encode(&self, message: Bytes) -> Result<(Bytes, bool), Status> {
        self.check_size(message.len())?;
        match self.send {
            Some(encoding)
                if message.len() >= self.min_size
                    && self.switch.as_ref().is_none_or(CompressionSwitch::is_on) =>
            {
                Ok((compress(encoding, &message)?, true))
            }
            _ => Ok((message, false)),
        }
    }
}

/// The smaller of two limits, either of which may be unset.
fn smaller(a: Option<usize>, b: Option<usize>) -> Option<usize> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Turns compression on or off for the messages of a call that follow (gRPC's per-message
/// opt-out, as grpc-java's `setMessageCompression`): shared, cheap to clone.
///
/// On a server, a call whose answer will be compressed finds one in its request's extensions
/// (`request.extensions().get::<CompressionSwitch>()`); on a client, put one in the request's
/// extensions before the call to steer its request stream. A message is compressed or not as
/// the switch stands when the transport takes it from the stream.
#[derive(Debug, Clone)]
pub struct CompressionSwitch(Arc<AtomicBool>);

impl CompressionSwitch {
    /// A switch, on.
    pub fn new() -> CompressionSwitch {
        CompressionSwitch(Arc::new(AtomicBool::new(true)))
    }

    /// Compress the messages that follow (`true`) or send them plain (`false`).
    pub fn set(&self, on: bool) {
        self.0.store(on, Ordering::Relaxed);
    }

    /// Whether messages are compressed.
    pub fn is_on(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl Default for CompressionSwitch {
    fn default() -> CompressionSwitch {
        CompressionSwitch::new()
    }
}
