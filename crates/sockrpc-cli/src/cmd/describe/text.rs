//! The `.proto` text being written, and the comments it carries: a descriptor's source info keys
//! each comment by the element's path, and writing the comment where a parser attaches it back
//! (leading, trailing, detached) keeps what the author wrote to explain the schema.

use prost_reflect::prost_types::source_code_info::Location;
use prost_reflect::FileDescriptor;
use std::collections::HashMap;
use std::fmt::Write as _;

/// The comments of one element, as `SourceCodeInfo.Location` holds them.
#[derive(Debug, Default, Clone)]
struct Comments {
    detached: Vec<String>,
    leading: Option<String>,
    trailing: Option<String>,
}

impl Comments {
    fn of(location: &Location) -> Comments {
        Comments {
            detached: location.leading_detached_comments.clone(),
            leading: location.leading_comments.clone(),
            trailing: location.trailing_comments.clone(),
        }
    }
}

/// `.proto` text under construction, with the comments of the file it comes from.
#[derive(Debug, Default)]
pub(super) struct Text {
    /// The text so far.
    pub(super) out: String,
    comments: HashMap<Vec<i32>, Vec<Comments>>,
    /// Every location of the source info, in order (the spans of statements and their items).
    pub(super) locations: Vec<Location>,
}

impl Text {
    /// Empty text that writes `file`'s comments (none when it has no source info).
    pub(super) fn for_file(file: &FileDescriptor) -> Text {
        let mut comments: HashMap<Vec<i32>, Vec<Comments>> = HashMap::new();
        let info = file.file_descriptor_proto().source_code_info.as_ref();
        for location in info.into_iter().flat_map(|info| &info.location) {
            if location.leading_comments.is_none()
                && location.trailing_comments.is_none()
                && location.leading_detached_comments.is_empty()
            {
                continue;
            }
            // An element has its own path; `extend` blocks share theirs (the list they add
            // to), one location each in the order they were declared.
            comments
                .entry(location.path.clone())
                .or_default()
                .push(Comments::of(location));
        }
        Text {
            out: String::new(),
            comments,
            locations: info.map(|info| info.location.clone()).unwrap_or_default(),
        }
    }

    /// Writes the detached and leading comments of the element at `path`, after a blank line
    /// (so that a parser does not take them for the previous element's trailing comment).
    pub(super) fn leading(&mut self, path: &[i32], indent: &str) {
        let Some(comments) = self.comments.get(path).and_then(|c| c.first()).cloned() else {
            return;
        };
        self.write_leading(&comments, indent);
    }

    /// Writes the comments of the next `extend` block of the scope whose blocks are at `path`.
    pub(super) fn extend_block(&mut self, path: &[i32], indent: &str) {
        let Some(comments) = self.comments.get_mut(path).filter(|c| !c.is_empty()) else {
            return;
        };
        let comments = comments.remove(0);
        self.write_leading(&comments, indent);
    }

    /// Writes the detached and leading comments of `location`, as [`leading`](Self::leading).
    pub(super) fn leading_of(&mut self, location: &Location, indent: &str) {
        self.write_leading(&Comments::of(location), indent);
    }

    /// Writes the trailing comment of `location`, as [`trailing`](Self::trailing).
    pub(super) fn trailing_of(&mut self, location: &Location, indent: &str) {
        if let Some(trailing) = location.trailing_comments.clone() {
            self.write_trailing(trailing, indent);
        }
    }

    fn write_leading(&mut self, comments: &Comments, indent: &str) {
        if comments.detached.is_empty() && comments.leading.is_none() {
            return;
        }
        if !self.out.is_empty() && !self.out.ends_with("\n\n") {
            self.out.push('\n');
        }
        for detached in &comments.detached {
            write_comment(&mut self.out, detached, indent);
            self.out.push('\n');
        }
        if let Some(leading) = &comments.leading {
            write_comment(&mut self.out, leading, indent);
        }
    }

    /// Writes the trailing comment of the element at `path`: one line at the end of the
    /// element's line, more on the lines after it and then a blank line (a comment block
    /// followed by a blank line belongs to the element before it).
    pub(super) fn trailing(&mut self, path: &[i32], indent: &str) {
        let trailing = self.comments.get(path).and_then(|c| c.first());
        let Some(trailing) = trailing.and_then(|c| c.trailing.clone()) else {
            return;
        };
        self.write_trailing(trailing, indent);
    }

    fn write_trailing(&mut self, trailing: String, indent: &str) {
        // One line: at the end of the element's line, where people write it.
        if let Some(line) = trailing.strip_suffix('\n').filter(|l| !l.contains('\n')) {
            if self.out.ends_with('\n') {
                self.out.pop();
                let _ = writeln!(self.out, " //{line}");
                return;
            }
        }
        write_comment(&mut self.out, &trailing, indent);
        self.out.push('\n');
    }

    /// A blank line between top-level statements (none at the start, none doubled).
    pub(super) fn gap(&mut self, indent: &str) {
        if indent.is_empty() && !self.out.is_empty() && !self.out.ends_with("\n\n") {
            self.out.push('\n');
        }
    }

    /// Writes `line` at `indent`, with a newline.
    pub(super) fn line(&mut self, indent: &str, line: &str) {
        let _ = writeln!(self.out, "{indent}{line}");
    }
}

/// One comment as `.proto` text: `//` lines for a line comment (its text ends in a newline),
/// a `/* */` block otherwise.
///
/// A block's lines after the first lose their leading whitespace and then one `*` when read
/// (protoc's rule, and protox's), so a line that starts with either is written after ` *`,
/// which reading takes off again: `/* a\n * b */` is ` a\n b ` and comes back as it was.
fn write_comment(out: &mut String, comment: &str, indent: &str) {
    match comment.strip_suffix('\n') {
        Some(lines) => {
            for line in lines.split('\n') {
                let _ = writeln!(out, "{indent}//{line}");
            }
        }
        None => {
            let comment = comment.replace("*/", "* /");
            let mut lines = comment.split('\n');
            let _ = write!(out, "{indent}/*{}", lines.next().unwrap_or_default());
            for line in lines {
                let star = if line.starts_with(|c: char| c.is_whitespace() || c == '*') {
                    " *"
                } else {
                    ""
                };
                let _ = write!(out, "\n{indent}{star}{line}");
            }
            out.push_str("*/\n");
        }
    }
}

/// `text` as the inside of a `.proto` string literal: quotes, backslashes and control
/// characters (C1 ones included) escaped, the rest (UTF-8 included) as it is.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => push_escaped(&mut out, c),
        }
    }
    out
}

/// `text`, the inside of a literal escaped already (a bytes field's default, which protoc
/// writes C-escaped), with any control character a server left in it escaped too: a raw
/// newline would otherwise fake a line of `describe`'s output.
pub(super) fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    out
}

/// Pushes `c`, escaped when it is a control character.
fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        // C1 controls too (an 8-bit CSI drives some terminals): as their UTF-8 bytes, which a
        // parser reads back into the same character.
        c if c.is_control() => {
            let mut utf8 = [0u8; 4];
            for b in c.encode_utf8(&mut utf8).bytes() {
                let _ = write!(out, "\\{b:03o}");
            }
        }
        c => out.push(c),
    }
}

/// `bytes` as a quoted `.proto` string literal: printable ASCII as it is, every other byte as
/// a three-digit octal escape.
pub(super) fn bytes_literal(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\{b:03o}");
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::write_comment;

    #[test]
    fn block_lines_keep_their_leading_whitespace_and_stars() {
        let mut out = String::new();
        write_comment(&mut out, " a\n b\n** c\nd\n/e\n\n   ", "  ");
        assert_eq!(out, "  /* a\n   * b\n   *** c\n  d\n  /e\n  \n   *   */\n");
    }
}
