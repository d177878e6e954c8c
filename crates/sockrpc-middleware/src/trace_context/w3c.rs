//! `traceparent` and `tracestate` read by the W3C Trace Context rules, before any propagator
//! sees them.
//!
//! Why here and not in the propagator: OpenTelemetry's `TraceContextPropagator` parses ids
//! with `from_str_radix`, so it takes a trace id of 31 digits, a leading `+`, an upper-case
//! version or a version `00` header with a dash after its flags; it reads only the first of
//! several `tracestate` entries, keeps the first 32 members of a longer list and
//! duplicated keys, and takes control characters in values and keys that start with a digit.
//! The W3C rules refuse all of these. So the propagator is shown a view of the
//! metadata ([`W3cView`]) in which each field is either valid or absent:
//!
//! ```text
//!  traceparent  version "-" trace-id "-" parent-id "-" flags   (lower-case hex: 2, 32, 16, 2)
//!               version ff, an all-zero id, or a second traceparent entry: absent
//!               version 00: exactly those 55 characters; a later version: more may follow
//!               after a "-", and only the first four fields are read
//!  tracestate   every entry joined with ",", empty members dropped, spaces and tabs around
//!               members trimmed; more than 32 members, a key twice, or a member that is not
//!               key=value by the grammar: absent (the trace still continues)
//! ```
//!
//! A `tracestate` is only shown with a valid `traceparent`, as the specification asks.

use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TraceState;
use sockrpc_protocol::MetadataMap;

/// The `traceparent` key.
const TRACEPARENT: &str = "traceparent";

/// The `tracestate` key.
const TRACESTATE: &str = "tracestate";

/// The longest value a `tracestate` list member may have.
const MAX_VALUE_LEN: usize = 256;
/// The most list members a `tracestate` may have.
const MAX_MEMBERS: usize = 32;

/// Length of a version `00` `traceparent`: `2 + 1 + 32 + 1 + 16 + 1 + 2`.
const TRACEPARENT_LEN: usize = 55;

/// A call's metadata as a propagator should read it: `traceparent` and `tracestate` only when
/// valid (and normalized), every other key as it is.
#[derive(Debug)]
pub(crate) struct W3cView<'a> {
    metadata: &'a MetadataMap,
    traceparent: Option<String>,
    tracestate: Option<String>,
}

impl<'a> W3cView<'a> {
    /// Reads `metadata`'s trace context fields by the W3C rules.
    pub(crate) fn new(metadata: &'a MetadataMap) -> W3cView<'a> {
        let mut values = metadata.get_all(TRACEPARENT);
        let traceparent = match (values.next(), values.next()) {
            (Some(only), None) => std::str::from_utf8(only).ok().and_then(traceparent),
            // None, or several: a caller's trace cannot be told apart from another's.
            _ => None,
        };
        let tracestate = traceparent
            .as_ref()
            .and_then(|_| tracestate(metadata.get_all(TRACESTATE)));
        W3cView {
            metadata,
            traceparent,
            tracestate,
        }
    }
}

impl Extractor for W3cView<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        if key.eq_ignore_ascii_case(TRACEPARENT) {
            self.traceparent.as_deref()
        } else if key.eq_ignore_ascii_case(TRACESTATE) {
            self.tracestate.as_deref()
        } else {
            self.metadata.get_str(key)
        }
    }

    fn keys(&self) -> Vec<&str> {
        self.metadata
            .iter()
            .map(|(key, _)| key)
            .filter(|key| self.get(key).is_some())
            .collect()
    }
}

/// A `traceparent` value's first four fields, when the value is valid.
pub(crate) fn traceparent(value: &str) -> Option<String> {
    let value = value.trim_matches([' ', '\t']);
    let bytes = value.as_bytes();
    let head = bytes.get(..TRACEPARENT_LEN)?;
    let version = &head[..2];
    if !lower_hex(version) || version == b"ff" {
        return None;
    }
    // Version 00 is exactly 55 characters; a later version may carry more after a dash.
    let rest = &bytes[TRACEPARENT_LEN..];
    if (version == b"00" && !rest.is_empty()) || rest.first().is_some_and(|b| *b != b'-') {
        return None;
    }
    let field = |start: usize, len: usize| {
        let field = &head[start..start + len];
        (head[start - 1] == b'-' && lower_hex(field)).then_some(field)
    };
    let trace_id = field(3, 32)?;
    let parent_id = field(36, 16)?;
    field(53, 2)?;
    if all_zero(trace_id) || all_zero(parent_id) {
        return None;
    }
    // ASCII throughout, so the cut falls on a character boundary.
    value.get(..TRACEPARENT_LEN).map(str::to_owned)
}

/// The `tracestate` entries as one valid list, or `None`.
fn tracestate<'a>(entries: impl Iterator<Item = &'a [u8]>) -> Option<String> {
    let mut members: Vec<(&str, &str)> = Vec::new();
    for entry in entries {
        let entry = std::str::from_utf8(entry).ok()?;
        for member in entry.split(',') {
            let member = member.trim_matches([' ', '\t']);
            if member.is_empty() {
                continue;
            }
            let (key, value) = member.split_once('=')?;
            // A key and a value by the W3C's grammar (OpenTelemetry's check below is looser).
            if !state_key(key) || !state_value(value) {
                return None;
            }
            if members.len() == MAX_MEMBERS || members.iter().any(|(k, _)| *k == key) {
                return None;
            }
            members.push((key, value));
        }
    }
    if members.is_empty() {
        return None;
    }
    // The key and value grammar, as OpenTelemetry checks it.
    TraceState::from_key_value(members.iter().copied()).ok()?;
    let list: Vec<String> = members.iter().map(|(k, v)| format!("{k}={v}")).collect();
    Some(list.join(","))
}

/// A list member's key by the W3C grammar: a simple key (a lower-case letter, then up to 255
/// of lower-case letters, digits, `_`, `-`, `*`, `/`), or `tenant@system` (a tenant of 1 to 241
/// such characters starting with a letter or digit, a system of 1 to 14 starting with a
/// letter). OpenTelemetry lets a simple key start with a digit and a system be empty, and
/// refuses a 14-character system.
fn state_key(key: &str) -> bool {
    fn rest(part: &[u8], max: usize) -> bool {
        part.len() <= max
            && part.iter().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'_' | b'-' | b'*' | b'/')
            })
    }
    match key.as_bytes().split(|b| *b == b'@').collect::<Vec<_>>()[..] {
        [[first, simple @ ..]] => first.is_ascii_lowercase() && rest(simple, 255),
        [[first, tenant @ ..], [head, system @ ..]] => {
            (first.is_ascii_lowercase() || first.is_ascii_digit())
                && rest(tenant, 240)
                && head.is_ascii_lowercase()
                && rest(system, 13)
        }
        _ => false,
    }
}

/// A list member's value by the W3C grammar: 1 to 256 printable ASCII characters (spaces
/// allowed) but `,` and `=`, the last not a space. OpenTelemetry lets a tab or any other
/// control character through.
fn state_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    (1..=MAX_VALUE_LEN).contains(&bytes.len())
        && bytes.last() != Some(&b' ')
        && bytes
            .iter()
            .all(|b| (0x20..=0x7e).contains(b) && *b != b',' && *b != b'=')
}

fn lower_hex(field: &[u8]) -> bool {
    field
        .iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

fn all_zero(field: &[u8]) -> bool {
    field.iter().all(|b| *b == b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
    const PARENT_ID: &str = "b7ad6b7169203331";

    fn parent(version: &str, trace_id: &str, parent_id: &str, flags: &str) -> String {
        format!("{version}-{trace_id}-{parent_id}-{flags}")
    }

    #[test]
    fn traceparent_follows_the_w3c_grammar() {
        let valid = parent("00", TRACE_ID, PARENT_ID, "01");
        assert_eq!(traceparent(&valid), Some(valid.clone()));
        assert_eq!(traceparent(&format!(" \t{valid} ")), Some(valid.clone()));
        // Unknown flags are kept for the propagator to ignore.
        let flags = parent("00", TRACE_ID, PARENT_ID, "09");
        assert_eq!(traceparent(&flags), Some(flags.clone()));
        // A later version: the first four fields, whatever follows a dash.
        let future = parent("cc", TRACE_ID, PARENT_ID, "01");
        assert_eq!(
            traceparent(&format!("{future}-what-the-future-will-be-like")),
            Some(future.clone())
        );
        assert_eq!(traceparent(&future), Some(future.clone()));
        let short_trace = &TRACE_ID[1..];
        let short_parent = &PARENT_ID[1..];
        let plus_trace = format!("+{short_trace}");
        let upper_trace = TRACE_ID.to_uppercase();
        let upper_parent = PARENT_ID.to_uppercase();
        let zeros_trace = "0".repeat(32);
        let zeros_parent = "0".repeat(16);
        for invalid in [
            parent("ff", TRACE_ID, PARENT_ID, "01"),
            parent("0A", TRACE_ID, PARENT_ID, "01"),
            parent("0", TRACE_ID, PARENT_ID, "01"),
            parent("00", &zeros_trace, PARENT_ID, "01"),
            parent("00", TRACE_ID, &zeros_parent, "01"),
            parent("00", &upper_trace, PARENT_ID, "01"),
            parent("00", TRACE_ID, &upper_parent, "01"),
            parent("00", TRACE_ID, PARENT_ID, "0A"),
            parent("00", TRACE_ID, PARENT_ID, "1"),
            parent("00", short_trace, PARENT_ID, "01"),
            parent("00", TRACE_ID, short_parent, "01"),
            parent("00", &plus_trace, PARENT_ID, "01"),
            format!("{valid}-"),
            format!("{valid}-extra"),
            format!("{future}.what-the-future-will-be-like"),
            valid.replacen('-', "_", 1),
            String::new(),
        ] {
            assert_eq!(traceparent(&invalid), None, "{invalid:?}");
        }
    }

    fn state(entries: &[&str]) -> Option<String> {
        tracestate(entries.iter().map(|e| e.as_bytes()))
    }

    #[test]
    fn tracestate_joins_entries_and_refuses_what_the_w3c_refuses() {
        assert_eq!(state(&["foo=1,bar=2"]), Some("foo=1,bar=2".into()));
        assert_eq!(state(&["foo=1 ,\t bar=2,,"]), Some("foo=1,bar=2".into()));
        assert_eq!(state(&["foo=1", "bar=2"]), Some("foo=1,bar=2".into()));
        assert_eq!(
            state(&["tenant@vendor=a b"]),
            Some("tenant@vendor=a b".into())
        );
        let members: Vec<String> = (1..=33).map(|n| format!("bar{n:02}={n:02}")).collect();
        let thirty_two = members[..32].join(",");
        assert_eq!(state(&[&thirty_two]), Some(thirty_two.clone()));
        assert_eq!(
            state(&[&members[..16].join(","), &members[16..32].join(",")]),
            Some(thirty_two)
        );
        assert_eq!(state(&[&members.join(",")]), None, "33 members");
        assert_eq!(
            state(&[&members[..16].join(","), &members[16..].join(",")]),
            None,
            "33 members over two entries"
        );
        assert_eq!(
            state(&["foo=a \t"]),
            Some("foo=a".into()),
            "white space around a member"
        );
        for valid in ["1tenant@vendor=1", "a=1", "t@v=1", "a-b_c*d/e=1"] {
            assert_eq!(state(&[valid]), Some(valid.into()), "{valid:?}");
        }
        let long = "v".repeat(256);
        assert_eq!(
            state(&[&format!("foo={long}")]),
            Some(format!("foo={long}"))
        );
        let too_long = format!("foo={long}v");
        let invalid = [
            "foo=1,foo=2",
            "FOO=1",
            "foo=1,bar",
            "foo",
            "=1",
            "foo=",
            "",
            "foo=a\tb",
            "foo=a\u{7f}",
            "foo=caf\u{e9}",
            "foo=a=b",
            &too_long,
            "1foo=1",
            "foo@=1",
            "@vendor=1",
            "foo@1vendor=1",
            "foo@a@b=1",
            "foo@fifteen_chars_x=1",
            "fo.o=1",
        ];
        for invalid in invalid {
            assert_eq!(state(&[invalid]), None, "{invalid:?}");
        }
        assert_eq!(
            state(&["foo=1", "foo=2"]),
            None,
            "a key twice over two entries"
        );
    }
}
