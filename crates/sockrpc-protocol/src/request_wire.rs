//! `Wire`: the small per-call fields kept beside a request's or response's message, in 4 bytes.
//!
//! Why 4 and not the 8 that `Option<EncodingFields>`, a `bool` and an `Option<bool>` take side
//! by side: a request's 4-byte timing word shares its 8 bytes with them (see
//! `request_timing.rs`), which keeps `Request<Bytes>` at 112 bytes, and every move of a request
//! through the client's layers copies that much (docs/PERFORMANCE.md).

use crate::{EncodingFields, EncodingSet};

const HAS_ENCODING: u8 = 1;
const COMPRESSED: u8 = 1 << 1;
const WAIT_CHOSEN: u8 = 1 << 2;
const WAIT: u8 = 1 << 3;

/// What the wire said about compression (see `Request::encoding`), and the client's
/// wait-for-ready choice (never sent). The encoding fields are kept unwrapped (default when
/// there are none), with whether there are any among the flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Wire {
    accept: EncodingSet,
    send: u8,
    flags: u8,
}

impl Wire {
    /// The encoding fields, if any.
    pub(crate) fn encoding(&self) -> Option<EncodingFields> {
        (self.flags & HAS_ENCODING != 0).then_some(EncodingFields {
            accept: self.accept,
            send: self.send,
        })
    }

    /// Sets or clears the encoding fields.
    pub(crate) fn set_encoding(&mut self, encoding: Option<EncodingFields>) {
        let fields = encoding.unwrap_or_default();
        self.accept = fields.accept;
        self.send = fields.send;
        self.set_flag(HAS_ENCODING, encoding.is_some());
    }

    /// Whether the one message is compressed.
    pub(crate) fn compressed(&self) -> bool {
        self.flags & COMPRESSED != 0
    }

    /// Marks the one message as compressed (or not).
    pub(crate) fn set_compressed(&mut self, compressed: bool) {
        self.set_flag(COMPRESSED, compressed);
    }

    /// The wait-for-ready choice, if made.
    pub(crate) fn wait_for_ready(&self) -> Option<bool> {
        (self.flags & WAIT_CHOSEN != 0).then_some(self.flags & WAIT != 0)
    }

    /// Makes the wait-for-ready choice.
    pub(crate) fn set_wait_for_ready(&mut self, wait: bool) {
        self.set_flag(WAIT_CHOSEN, true);
        self.set_flag(WAIT, wait);
    }

    fn set_flag(&mut self, flag: u8, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_each_field_apart_in_four_bytes() {
        assert_eq!(std::mem::size_of::<Wire>(), 4);
        let mut wire = Wire::default();
        assert_eq!(
            (wire.encoding(), wire.compressed(), wire.wait_for_ready()),
            (None, false, None)
        );
        let fields = EncodingFields {
            accept: EncodingSet::default(),
            send: 7,
        };
        wire.set_encoding(Some(fields));
        wire.set_compressed(true);
        wire.set_wait_for_ready(false);
        assert_eq!(
            (wire.encoding(), wire.compressed(), wire.wait_for_ready()),
            (Some(fields), true, Some(false))
        );
        wire.set_wait_for_ready(true);
        wire.set_encoding(None);
        assert_eq!(
            (wire.encoding(), wire.compressed(), wire.wait_for_ready()),
            (None, true, Some(true))
        );
        wire.set_compressed(false);
        assert_eq!(wire, Wire::default().with_wait(true));
    }

    impl Wire {
        fn with_wait(mut self, wait: bool) -> Wire {
            self.set_wait_for_ready(wait);
            self
        }
    }
}
