//! JSON ⇄ protobuf for one message type, through prost-reflect's implementation of protobuf's
//! JSON mapping: field names in lowerCamelCase or as in the `.proto`, 64-bit integers as
//! strings, bytes as base64, enums by name. Unknown fields are an error, not silently dropped;
//! an extension (`"[pkg.name]"`) the descriptors lack is named as one, with where to find it.

use bytes::Bytes;
use prost::Message;
use prost_reflect::{
    DynamicMessage, Kind, MessageDescriptor, ReflectMessage, SerializeOptions, Value,
};

/// How deep [`unknown_extension`] looks into nested messages (serde_json refuses JSON nested
/// deeper than 128 already; this bounds the walk on its own).
const MAX_DEPTH: usize = 128;

/// The first key naming an extension (`[pkg.name]`) that `desc`, or a message `json` holds
/// in one of its fields, does not know, with that message's name; fields it cannot read are
/// left to the decoder's own error.
fn unknown_extension(
    desc: &MessageDescriptor,
    json: &serde_json::Value,
    depth: usize,
) -> Option<(String, String)> {
    let object = json.as_object()?;
    let depth = depth.checked_sub(1)?;
    for (key, value) in object {
        if key.starts_with('[') && key.ends_with(']') {
            match desc.get_extension_by_json_name(key) {
                Some(extension) => {
                    if let Kind::Message(inner) = extension.kind() {
                        if let Some(found) = unknown_extension(&inner, value, depth) {
                            return Some(found);
                        }
                    }
                }
                None => return Some((desc.full_name().to_owned(), key.clone())),
            }
            continue;
        }
        let field = desc
            .get_field_by_json_name(key)
            .or_else(|| desc.get_field_by_name(key));
        let Some(field) = field else { continue };
        let Kind::Message(inner) = field.kind() else {
            continue;
        };
        let inner = if field.is_map() {
            match inner.map_entry_value_field().kind() {
                Kind::Message(value) => value,
                _ => continue,
            }
        } else {
            inner
        };
        let values: Vec<&serde_json::Value> = match value {
            serde_json::Value::Array(items) => items.iter().collect(),
            serde_json::Value::Object(map) if field.is_map() => map.values().collect(),
            other => vec![other],
        };
        for value in values {
            if let Some(found) = unknown_extension(&inner, value, depth) {
                return Some(found);
            }
        }
    }
    None
}

/// The encoding of one JSON value as a `desc` message.
pub(crate) fn encode(desc: &MessageDescriptor, json: &serde_json::Value) -> Result<Bytes, String> {
    // `{}` is an empty `Any` to protojson (and `call`'s request when `-d` is left out), where
    // prost-reflect wants an `"@type"`: a method taking an `Any` could not be called without
    // one. (Inside a request, an `Any` still needs its `"@type"`.)
    if desc.full_name() == "google.protobuf.Any" && json.as_object().is_some_and(|o| o.is_empty()) {
        return Ok(Bytes::new());
    }
    let message = DynamicMessage::deserialize(desc.clone(), json).map_err(|err| {
        match unknown_extension(desc, json, MAX_DEPTH) {
            Some((message, key)) => format!(
                "not a valid {}: {key} is not a known extension of {message}: give the .proto \
                 file that declares it with --proto (or, through reflection, the server does \
                 not list it)",
                desc.full_name()
            ),
            None => format!("not a valid {}: {err}", desc.full_name()),
        }
    })?;
    Ok(Bytes::from(message.encode_to_vec()))
}

/// Where a JSON value's text starts in the text it was read from: the line (from 1) and the
/// bytes before it on that line, as serde_json counts a syntax error's column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Start {
    /// The line, from 1.
    pub(crate) line: usize,
    /// Bytes before the value on its line.
    pub(crate) column: usize,
}

impl Start {
    /// The start of a text.
    pub(crate) const TOP: Start = Start { line: 1, column: 0 };

    /// Where the text after `text`, read from here, starts.
    pub(crate) fn after(self, text: &str) -> Start {
        match text.rfind('\n') {
            Some(last) => Start {
                line: self.line + text.matches('\n').count(),
                column: text.len() - last - 1,
            },
            None => Start {
                line: self.line,
                column: self.column + text.len(),
            },
        }
    }
}

/// [`encode`], and when `json` is not a valid `desc` message, the error said at the line and
/// column of `text` (`json`'s text, starting at `start` in what it was read from) where it
/// went wrong: a value of the wrong type (`"invalid digit found in string"`) named neither the
/// field nor where it stood.
/// A field given twice (by one name or by its two), or a 64-bit integer past its range, is
/// refused too ([`super::strict`]).
pub(crate) fn encode_at(
    desc: &MessageDescriptor,
    json: &serde_json::Value,
    text: &str,
    start: Start,
) -> Result<Bytes, String> {
    let encoded = encode(desc, json).map_err(|message| match position(desc, text, start) {
        Some((line, column)) => format!("{message} at line {line} column {column}"),
        None => message,
    })?;
    super::strict::check(desc, text).map_err(|err| {
        let message = format!("not a valid {}: {err}", desc.full_name());
        // serde_json's own position, counted from the text's start, is said from `start`.
        let own = format!(" at line {} column {}", err.line(), err.column());
        match (message.strip_suffix(&own), located(&err, start)) {
            (Some(message), Some((line, column))) => {
                format!("{message} at line {line} column {column}")
            }
            _ => message,
        }
    })?;
    Ok(encoded)
}

/// Where reading `text` as a `desc` message fails, as a line and column counted from `start`.
fn position(desc: &MessageDescriptor, text: &str, start: Start) -> Option<(usize, usize)> {
    let mut reader = serde_json::Deserializer::from_str(text);
    let err = DynamicMessage::deserialize(desc.clone(), &mut reader).err()?;
    located(&err, start)
}

/// Where `err`, found in a text starting at `start`, stands.
fn located(err: &serde_json::Error, start: Start) -> Option<(usize, usize)> {
    match err.line() {
        0 => None,
        1 => Some((start.line, start.column + err.column())),
        line => Some((start.line + line - 1, err.column())),
    }
}

/// Every JSON value in `text` (one, or several separated by whitespace or newlines), each
/// encoded as a `desc` message.
pub(crate) fn encode_all(desc: &MessageDescriptor, text: &str) -> Result<Vec<Bytes>, String> {
    let mut out = Vec::new();
    let mut values = serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>();
    let mut from = 0;
    while let Some(value) = values.next() {
        let number = out.len() + 1;
        let value = value.map_err(|err| format!("request {number}: bad JSON: {err}"))?;
        let to = values.byte_offset();
        let (before, this) = (&text[..from], &text[from..to]);
        let encoded = encode_at(desc, &value, this, Start::TOP.after(before))
            .map_err(|err| format!("request {number}: {err}"))?;
        out.push(encoded);
        from = to;
    }
    Ok(out)
}

/// One encoded `desc` message as one line of JSON (default values left out), written as
/// protojson writes it ([`super::canonical`]), with DEL, the C1 controls and the bidirectional
/// controls escaped too ([`escape_c1`]).
pub(crate) fn decode(desc: &MessageDescriptor, bytes: Bytes) -> Result<String, String> {
    let message = DynamicMessage::decode(desc.clone(), bytes)
        .map_err(|err| format!("the answer is not a valid {}: {err}", desc.full_name()))?;
    // An empty `Any` (no type, no value) is `{}` to protojson; prost-reflect wants a type.
    if desc.full_name() == "google.protobuf.Any" && message.encoded_len() == 0 {
        return Ok("{}".to_owned());
    }
    // Writing recurses once a level, and an `Any`'s value is decoded afresh as it is written:
    // the depth prost's decoding bounds is counted again here, through the `Any`s.
    if nested_past(&message, MAX_NESTING) {
        return Err(format!(
            "the answer is not a {} this client writes: messages nested deeper than \
             {MAX_NESTING} (counting those packed in Anys)",
            desc.full_name()
        ));
    }
    // As protojson writes it: maps in key order, NaN in a wrapper as "NaN", `1` not `1.0`.
    super::canonical::to_string(&Canonical(&message))
        .map(escape_c1)
        .map_err(|err| format!("cannot write {} as JSON: {err}", desc.full_name()))
}

/// The most levels of messages an answer written as JSON may hold below itself, counting those
/// packed in `Any`s. prost refuses a message nested deeper than 100 as it decodes, but an
/// `Any`'s value is only bytes to it, decoded afresh as it is written, and writing recurses
/// once a level: a hostile server's `Any`s packed 100,000 deep overflowed the stack, and the
/// process aborted.
const MAX_NESTING: usize = 100;

/// Whether `message` holds messages more than `depth` levels below it, an `Any`'s packed
/// message (of a type its pool knows) counted as one level below the `Any`, as it is written.
fn nested_past(message: &DynamicMessage, depth: usize) -> bool {
    if message.descriptor().full_name() == "google.protobuf.Any" {
        let url = message.get_field_by_name("type_url");
        let url = url.as_deref().and_then(Value::as_str).unwrap_or_default();
        let name = url.rsplit('/').next().unwrap_or(url);
        let Some(inner) = message.descriptor().parent_pool().get_message_by_name(name) else {
            // Writing it fails on its own, before going deeper.
            return false;
        };
        let Some(depth) = depth.checked_sub(1) else {
            return true;
        };
        let value = message.get_field_by_name("value");
        let bytes = value.as_deref().and_then(Value::as_bytes).cloned();
        return DynamicMessage::decode(inner, bytes.unwrap_or_default())
            .is_ok_and(|inner| nested_past(&inner, depth));
    }
    message
        .fields()
        .any(|(_, value)| value_nested_past(value, depth))
}

/// [`nested_past`] for a field's value: a message, or a list or map of them.
fn value_nested_past(value: &Value, depth: usize) -> bool {
    match value {
        Value::Message(message) => match depth.checked_sub(1) {
            Some(depth) => nested_past(message, depth),
            None => true,
        },
        Value::List(items) => items.iter().any(|item| value_nested_past(item, depth)),
        Value::Map(map) => map.values().any(|item| value_nested_past(item, depth)),
        _ => false,
    }
}

/// A message, serialized through prost-reflect's JSON mapping with its default options.
struct Canonical<'a>(&'a DynamicMessage);

impl serde::Serialize for Canonical<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0
            .serialize_with_options(serializer, &SerializeOptions::new())
    }
}

/// `line` (JSON) with DEL and the C1 controls (U+0080 to U+009F) in its strings written as
/// `\u00XX`, as serde_json writes the C0 ones: the same JSON to a parser, but a server's string
/// holding an 8-bit CSI (U+009B) can no longer drive a terminal that reads C1 controls in
/// UTF-8 (xterm does). So are the bidirectional controls (`\u202e`), which would show what
/// follows them reversed ([`crate::out::bidi_control`]). Outside strings JSON is ASCII, so
/// only strings can hold them.
fn escape_c1(line: String) -> String {
    let c1 = |c: char| ('\u{7f}'..='\u{9f}').contains(&c) || crate::out::bidi_control(c);
    if !line.contains(c1) {
        return line;
    }
    let mut out = String::with_capacity(line.len() + 8);
    for c in line.chars() {
        if c1(c) {
            let _ = std::fmt::Write::write_fmt(&mut out, format_args!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bidi_controls_in_strings_are_written_as_escapes() {
        // A server's string with a right-to-left override would show what follows it reversed
        // on the user's terminal (`out::bidi_control`); escaped, it is the same JSON.
        let line =
            serde_json::to_string(&json!({"name": "done\u{202e}exe.txt\u{2066}"})).expect("JSON");
        let escaped = escape_c1(line);
        assert_eq!(escaped, r#"{"name":"done\u202eexe.txt\u2066"}"#);
        let back: serde_json::Value = serde_json::from_str(&escaped).expect("still JSON");
        assert_eq!(back["name"], "done\u{202e}exe.txt\u{2066}");
    }

    /// A and B in package `x`: A has an extension range and one extension, B holds As in a
    /// repeated field and a map.
    fn pool() -> prost_reflect::DescriptorPool {
        let dir = std::env::temp_dir().join(format!("sockrpc-json-ext-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("x.proto");
        std::fs::write(
            &file,
            "syntax = \"proto2\";\npackage x;\nmessage A { extensions 10 to 20; }\n\
             extend A { optional int32 known = 10; }\n\
             message B { repeated A list = 1; map<string, A> by_name = 2; optional A one = 3; }\n",
        )
        .expect("x.proto");
        let pool = super::super::source::compile(&[file], &[]).map_err(|f| f.to_string());
        let _ = std::fs::remove_dir_all(&dir);
        pool.expect("compiles")
    }

    #[test]
    fn a_start_follows_the_text_read_before_it() {
        let start = Start::TOP.after("{\"a\": 1}\n  {");
        assert_eq!(start, Start { line: 2, column: 3 });
        assert_eq!(start.after("x"), Start { line: 2, column: 4 });
        assert_eq!(start.after("\n\n"), Start { line: 4, column: 0 });
    }

    #[test]
    fn an_unknown_extension_is_found_where_it_stands_and_named() {
        let pool = pool();
        let b = pool.get_message_by_name("x.B").expect("x.B");
        let a = pool.get_message_by_name("x.A").expect("x.A");
        let unknown = |desc: &MessageDescriptor, value: serde_json::Value| {
            unknown_extension(desc, &value, MAX_DEPTH).map(|(m, k)| format!("{m} {k}"))
        };
        assert_eq!(unknown(&a, json!({"[x.known]": 1})), None);
        assert_eq!(
            unknown(&a, json!({"[x.other]": 1})).as_deref(),
            Some("x.A [x.other]")
        );
        for value in [
            json!({"list": [{"[x.known]": 1}, {"[y.z]": 2}]}),
            json!({"byName": {"k": {"[y.z]": 2}}}),
            json!({"one": {"[y.z]": 2}}),
        ] {
            assert_eq!(
                unknown(&b, value.clone()).as_deref(),
                Some("x.A [y.z]"),
                "{value}"
            );
        }
        let message = encode(&b, &json!({"one": {"[y.z]": 2}}))
            .err()
            .unwrap_or_default();
        assert!(
            message.contains("[y.z] is not a known extension of x.A")
                && message.contains("--proto"),
            "{message}"
        );
        // Anything else is the decoder's own error.
        let message = encode(&b, &json!({"nope": 1})).err().unwrap_or_default();
        assert!(message.contains("nope"), "{message}");
    }
    /// An `Any` holding an `Any`, `levels` deep, as bytes: written backwards (each level's
    /// header after what it holds), then turned round, so no level's bytes are copied again.
    fn nested_anys(levels: usize) -> Bytes {
        const URL: &[u8] = b"type.googleapis.com/google.protobuf.Any";
        let varint = |mut v: usize, out: &mut Vec<u8>| {
            let mut bytes = Vec::new();
            while v >= 0x80 {
                bytes.push((v as u8) | 0x80);
                v >>= 7;
            }
            bytes.push(v as u8);
            out.extend(bytes.iter().rev());
        };
        let mut reversed: Vec<u8> = Vec::new();
        for level in 0..levels {
            // value (field 2): what is written so far; type_url (field 1) before it. The
            // innermost holds an empty `w.W`.
            let url: &[u8] = if level == 0 {
                b"type.googleapis.com/w.W"
            } else {
                URL
            };
            let len = reversed.len();
            varint(len, &mut reversed);
            reversed.push(0x12);
            reversed.extend(url.iter().rev());
            varint(url.len(), &mut reversed);
            reversed.push(0x0a);
        }
        reversed.reverse();
        Bytes::from(reversed)
    }

    #[test]
    fn anys_nested_past_the_limit_are_refused_not_a_stack_overflow() {
        // A hostile server's answer of `Any`s packed in `Any`s: each one's value is decoded
        // afresh as it is written, so prost's recursion limit never saw the depth, and writing
        // it recursed once a level until the stack overflowed (the process aborted).
        let dir = std::env::temp_dir().join(format!("sockrpc-json-any-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("w.proto");
        std::fs::write(
            &file,
            "syntax = \"proto3\";\npackage w;\nimport \"google/protobuf/any.proto\";\n\
             message W { google.protobuf.Any a = 1; }\n",
        )
        .expect("w.proto");
        let pool = super::super::source::compile(&[file], &[]).map_err(|f| f.to_string());
        let _ = std::fs::remove_dir_all(&dir);
        let pool = pool.expect("compiles");
        let any = pool
            .get_message_by_name("google.protobuf.Any")
            .expect("Any");
        let deep = decode(&any, nested_anys(100_000)).err().unwrap_or_default();
        assert!(deep.contains("nested deeper than 100"), "{deep}");
        // As deep as prost decodes a message (100 levels below it), it is written.
        let limit = decode(&any, nested_anys(MAX_NESTING)).map(|json| json.len());
        assert!(limit.is_ok(), "{limit:?}");
        let past = decode(&any, nested_anys(MAX_NESTING + 1)).err();
        assert!(past.is_some_and(|m| m.contains("nested deeper than")));
        // Within the limit, it is written as protojson writes it.
        let shallow = decode(&any, nested_anys(3)).expect("three levels");
        let (any, w) = (
            "type.googleapis.com/google.protobuf.Any",
            "type.googleapis.com/w.W",
        );
        assert_eq!(
            shallow,
            format!(r#"{{"@type":"{any}","value":{{"@type":"{any}","value":{{"@type":"{w}"}}}}}}"#)
        );
    }
}
