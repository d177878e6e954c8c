//! Size limits, checked before anything is allocated.

/// Every size a peer can announce is checked against one of these before a byte of it is
/// buffered. Both client and server hold their own; neither trusts the other's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest message (MESSAGE frame body) accepted or sent. Default 4 MiB.
    pub max_message_size: usize,
    /// Largest metadata block (all keys and values of one OPEN, HEADERS or END frame), each
    /// entry counted with 32 bytes more than its key and value, as HTTP/2 counts a header list
    /// ([`METADATA_ENTRY_OVERHEAD`](crate::frame::METADATA_ENTRY_OVERHEAD)). Default 16 KiB.
    pub max_metadata_size: usize,
    /// Largest message sent; `None`: the same as `max_message_size`, so that by default a
    /// side never sends what it would itself refuse (a peer closes the connection on a
    /// MESSAGE past 16 × its limit). See [`send_limit`](Limits::send_limit).
    pub max_send_message_size: Option<usize>,
    /// Longest status message sent in an END frame; a longer one is cut at a character
    /// boundary and marked `… [truncated N bytes]`. Default 16 KiB
    /// ([`MAX_STATUS_MESSAGE`](crate::frame::MAX_STATUS_MESSAGE)), at most
    /// [`STATUS_MESSAGE_CEILING`].
    pub max_status_message_size: usize,
    /// What the requests of one connection's unary calls whose handlers wait may hold
    /// together (messages, metadata as counted against its limit, method paths; a message
    /// still a slice of the connection's read buffer counts that buffer, once for all the
    /// requests sliced from it), on a server: past it, a new unary call fails
    /// `RESOURCE_EXHAUSTED` at once. Default 256 MiB,
    /// 64 requests of the largest default message; it bounds what one connection holds,
    /// which the limit of calls in flight alone (4,096 of up to 4 MiB) does not usefully.
    pub max_running_requests_size: usize,
}

/// The most a status message may be set to carry: an END frame (message, up to 32 KiB of
/// details, trailers) must fit every peer's control-frame limit, 65 KiB beyond its metadata.
pub const STATUS_MESSAGE_CEILING: usize = 30 * 1024;

/// How much larger than the message limit an oversized MESSAGE frame may be and still be skipped
/// (failing only its call); beyond this (and beyond [`SKIP_FLOOR`]) the peer is treated as
/// hostile and the connection closes. Skipped bytes are read and dropped, never buffered.
pub const SKIP_FACTOR: usize = 16;

/// Oversized messages up to this size are always skipped, however small the message limit:
/// a peer with a larger limit is a misconfiguration, not an attack, and should fail one call.
pub const SKIP_FLOOR: usize = 64 * 1024 * 1024;

/// Room in a control frame beyond its metadata: method path, status message and details. The
/// largest OPEN has a 65,535-byte path (its length is a `u16`) and 26 bytes of fixed fields
/// (re-issue identity, timeout, path length, encoding fields), so 64 KiB alone was 25 bytes
/// short of it; 1 KiB more leaves room to spare.
pub const CONTROL_OVERHEAD: usize = 65 * 1024;

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_message_size: 4 * 1024 * 1024,
            max_metadata_size: 16 * 1024,
            max_send_message_size: None,
            max_status_message_size: crate::frame::MAX_STATUS_MESSAGE,
            max_running_requests_size: 256 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// Limits with the given message size and the default metadata size.
    pub fn with_max_message_size(mut self, size: usize) -> Limits {
        self.max_message_size = size;
        self
    }

    /// Limits with the given metadata size.
    pub fn with_max_metadata_size(mut self, size: usize) -> Limits {
        self.max_metadata_size = size;
        self
    }

    /// Limits with the given largest message sent (independent of the largest received).
    pub fn with_max_send_message_size(mut self, size: usize) -> Limits {
        self.max_send_message_size = Some(size);
        self
    }

    /// Limits with the given status message cap, at most [`STATUS_MESSAGE_CEILING`] (a larger
    /// one is lowered to it).
    pub fn with_max_status_message_size(mut self, size: usize) -> Limits {
        self.max_status_message_size = size.min(STATUS_MESSAGE_CEILING);
        self
    }

    /// Limits with the given bound on what running unary calls' requests hold on one
    /// connection (see [`max_running_requests_size`](Limits::max_running_requests_size)).
    pub fn with_max_running_requests_size(mut self, size: usize) -> Limits {
        self.max_running_requests_size = size;
        self
    }

    /// The largest message this side sends: `max_send_message_size`, else `max_message_size`.
    pub fn send_limit(&self) -> usize {
        self.max_send_message_size.unwrap_or(self.max_message_size)
    }

    /// The status message cap in force (never above [`STATUS_MESSAGE_CEILING`]).
    pub fn status_message_cap(&self) -> usize {
        self.max_status_message_size.min(STATUS_MESSAGE_CEILING)
    }

    /// Largest body of any frame other than MESSAGE and OPEN (OPEN may also carry a folded
    /// request: [`max_open_frame`](Limits::max_open_frame)).
    pub fn max_control_frame(&self) -> usize {
        self.max_metadata_size.saturating_add(CONTROL_OVERHEAD)
    }

    /// Largest OPEN body: a control frame's room plus a folded request message
    /// ([`MAX_FOLDED_MESSAGE`](crate::frame::MAX_FOLDED_MESSAGE)).
    pub fn max_open_frame(&self) -> usize {
        self.max_control_frame()
            .saturating_add(crate::frame::MAX_FOLDED_MESSAGE)
    }

    /// Largest MESSAGE body that is skipped rather than treated as an attack.
    pub fn max_skippable_message(&self) -> usize {
        self.max_message_size
            .saturating_mul(SKIP_FACTOR)
            .max(SKIP_FLOOR)
    }

    /// Both `self` and `other` at once: each limit the smaller of the two. A server's UDP
    /// socket takes its own limits within the server's, so that a cap set on the server (its
    /// status message, its metadata) holds for answers over UDP too.
    pub fn within(&self, other: &Limits) -> Limits {
        Limits {
            max_message_size: self.max_message_size.min(other.max_message_size),
            max_metadata_size: self.max_metadata_size.min(other.max_metadata_size),
            // Unset on both, it follows the smaller message limit; set on either, it is the
            // smaller of the two sides' send limits (an unset one being its message limit).
            max_send_message_size: match (self.max_send_message_size, other.max_send_message_size) {
                (None, None) => None,
                _ => Some(self.send_limit().min(other.send_limit())),
            },
            max_status_message_size: self
                .max_status_message_size
                .min(other.max_status_message_size),
            max_running_requests_size: self
                .max_running_requests_size
                .min(other.max_running_requests_size),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_takes_the_smaller_of_each_limit() {
        let a = Limits::default()
            .with_max_status_message_size(64)
            .with_max_send_message_size(1000);
        let b = Limits::default()
            .with_max_metadata_size(512)
            .with_max_message_size(100);
        let both = a.within(&b);
        assert_eq!(both, b.within(&a));
        assert_eq!(both.max_status_message_size, 64);
        assert_eq!(both.max_metadata_size, 512);
        assert_eq!(both.max_message_size, 100);
        assert_eq!(
            both.max_send_message_size,
            Some(100),
            "b sends at most its message limit"
        );
        let c = Limits::default().with_max_send_message_size(1000);
        assert_eq!(c.within(&Limits::default()).send_limit(), 1000);
        assert_eq!(
            Limits::default().within(&Limits::default()),
            Limits::default()
        );
        assert_eq!(both.max_running_requests_size, 256 * 1024 * 1024);
    }
}
