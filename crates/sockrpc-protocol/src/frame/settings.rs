//! What SETTINGS carries: the capability bits each side announces (what it reads beyond
//! version 1's base, or which window it keeps) and the bounds of the frame itself. Apart from
//! the frame kinds and flags in `mod.rs` because each bit is a contract between versions: a bit
//! once given a meaning keeps it, and a peer ignores the ones it does not know.

/// Capability bit in a server's SETTINGS: it reads a request message folded into its OPEN
/// ([`FLAG_MESSAGE`](super::FLAG_MESSAGE)).
pub const CAP_FOLDED_REQUEST: u32 = 0x1;
/// The largest limit of calls in flight SETTINGS can carry: a server that takes more announces
/// this many, which a client reads as "at least".
pub const MAX_ANNOUNCED_CALLS: u16 = u16::MAX;
/// Capability bit in a server's SETTINGS: it grants connection-level credit. A client that
/// sees it keeps what its streamed request messages charge ([`message_charge`](super::message_charge)) outstanding on
/// the connection under [`CONNECTION_WINDOW`](super::CONNECTION_WINDOW), and the server gives credit back with WINDOW
/// frames on call 0 (without the SETTINGS flag) as its handlers consume. Without it the server
/// would have to stop reading the whole connection to bound what many streams queue, and
/// would then not read the stream credit its own stalled answers wait for: a deadlock.
pub const CAP_CONNECTION_WINDOW: u32 = 0x2;
/// Capability bit in a server's SETTINGS: on a streaming call whose OPEN had [`FLAG_CHARGED`](super::FLAG_CHARGED),
/// it credits each request message its handler consumes as its [`message_charge`](super::message_charge). A client
/// that sees it counts its streamed requests so against [`STREAM_WINDOW`](super::STREAM_WINDOW), so that a stream of
/// empty requests to a handler that does not read stops at its own window (1,024 of them)
/// instead of taking the whole [`CONNECTION_WINDOW`](super::CONNECTION_WINDOW) from the connection's other streams. A
/// client that counted a request by its bytes alone (sent before the SETTINGS arrived) merely
/// gets more credit back than it counted.
pub const CAP_CHARGED: u32 = 0x4;
/// Capability bit in SETTINGS, from either side: the sender reads a message split into
/// pieces ([`FLAG_MORE`](super::FLAG_MORE)). A server announces it in its SETTINGS; a client announces it in a
/// SETTINGS of its own, right after its preface (a server that knows none ignores it).
pub const CAP_PIECES: u32 = 0x8;
/// Capability bit in SETTINGS, from either side: the sender reads a SETTINGS longer than 4
/// bytes (up to [`MAX_SETTINGS_LEN`], in words of 4; words past those it knows ignored), whose
/// second word is its peer's metadata limit. A side sends its own metadata limit in a second
/// SETTINGS once the peer's SETTINGS showed this bit (an older peer refuses a longer WINDOW),
/// and then checks what it sends against the peer's limit: as HTTP/2's
/// `SETTINGS_MAX_HEADER_LIST_SIZE`, metadata the peer would refuse is never sent.
pub const CAP_METADATA_LIMIT: u32 = 0x10;
/// Capability bit in SETTINGS, from either side. From a client: it grants connection credit
/// for the answers it is streamed ([`ANSWER_WINDOW`](super::ANSWER_WINDOW), given back with WINDOW on call 0 as its
/// application consumes or drops them). From a server: it keeps to that window toward a client
/// that grants it, counting each streamed answer's [`message_charge`](super::message_charge) (unary answers are not
/// counted). The mirror of [`CAP_CONNECTION_WINDOW`]: without it a client holds up to a stream
/// window and one message on each of thousands of streams. A client holds a server that did
/// not announce it to the per-stream rules alone.
pub const CAP_ANSWER_WINDOW: u32 = 0x20;
/// The longest SETTINGS body a receiver that announced [`CAP_METADATA_LIMIT`] reads: room for
/// later fields, which a peer of this version skips.
pub const MAX_SETTINGS_LEN: usize = 64;
/// Every capability this crate's server announces.
pub const SERVER_CAPABILITIES: u32 = CAP_FOLDED_REQUEST
    | CAP_CONNECTION_WINDOW
    | CAP_CHARGED
    | CAP_PIECES
    | CAP_METADATA_LIMIT
    | CAP_ANSWER_WINDOW;
/// Every capability this crate's client announces, in the SETTINGS it sends after its preface.
pub const CLIENT_CAPABILITIES: u32 = CAP_PIECES | CAP_METADATA_LIMIT | CAP_ANSWER_WINDOW;
