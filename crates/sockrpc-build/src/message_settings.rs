//! The message settings every generated client and server takes (compression each way, the
//! size below which nothing is compressed, the largest message each way), as builder methods
//! that forward to the same-named setter of the runtime value holding them: the client's
//! `::sockrpc::codegen::Client`, the server's `::sockrpc::codegen::MessageSettings`.
//!
//! One renderer for both sides, so the two keep the same five methods, each `#[must_use]`; only
//! the docs differ, as what a client sends is what a server receives.

use std::fmt::Write as _;

/// Which generated type the setters are for: it decides what their docs call sent and received.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Side {
    /// `<Service>Client`: sends requests, receives answers.
    Client,
    /// `<Service>Server`: receives requests, sends answers.
    Server,
}

/// Each setter: its name, its parameter and the parameter's type, and its doc on a client and
/// on a server. The client's order is pinned by `tests/identifiers.rs`.
const SETTERS: [(&str, &str, &str, &str, &str); 5] = [
    (
        "send_compressed",
        "encoding",
        "::sockrpc::codegen::CompressionEncoding",
        "Compresses requests with `encoding` once the server has said it accepts it.",
        "Compresses answers with `encoding` for clients that accept it.",
    ),
    (
        "accept_compressed",
        "encoding",
        "::sockrpc::codegen::CompressionEncoding",
        "Accepts answers compressed with `encoding` (tells the server so).",
        "Accepts requests compressed with `encoding` (tells clients so in its HEADERS).",
    ),
    (
        "compression_min_size",
        "bytes",
        "usize",
        "Requests shorter than `bytes` go uncompressed.",
        "Answers shorter than `bytes` go uncompressed.",
    ),
    (
        "max_decoding_message_size",
        "bytes",
        "usize",
        "The largest answer message accepted, counted after decompression.",
        "The largest request message accepted, counted after decompression.",
    ),
    (
        "max_encoding_message_size",
        "bytes",
        "usize",
        "The largest request message sent, counted before compression.",
        "The largest answer message sent, counted before compression.",
    ),
];

/// The five setters of `side`'s generated type, each `self.{field} = self.{field}.setter(..)`.
pub(crate) fn setters(side: Side, field: &str) -> String {
    let mut out = String::new();
    for (name, param, ty, client_doc, server_doc) in SETTERS {
        let doc = match side {
            Side::Client => client_doc,
            Side::Server => server_doc,
        };
        // `write!` into a String cannot fail.
        let _ = write!(
            out,
            r#"
        /// {doc}
        #[must_use]
        pub fn {name}(mut self, {param}: {ty}) -> Self {{
            self.{field} = self.{field}.{name}({param});
            self
        }}"#
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_side_forwards_to_its_field_with_its_docs() {
        let client = setters(Side::Client, "inner");
        assert!(client.contains(
            "pub fn compression_min_size(mut self, bytes: usize) -> Self {\n            \
             self.inner = self.inner.compression_min_size(bytes);"
        ));
        assert!(client.contains("/// Requests shorter than `bytes` go uncompressed."));
        assert_eq!(client.matches("#[must_use]").count(), 5);
        let server = setters(Side::Server, "settings");
        assert!(server.contains("self.settings = self.settings.send_compressed(encoding);"));
        assert!(server.contains("/// Answers shorter than `bytes` go uncompressed."));
        assert!(!server.contains("inner"));
    }
}
