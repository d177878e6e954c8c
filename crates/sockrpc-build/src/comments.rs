//! Turns .proto comments into rustdoc that builds cleanly.
//!
//! Proto comments are written for humans reading the .proto, not for
//! rustdoc: indented snippets would become Rust doctests, `[x]` would become
//! broken intra-doc links and `<T>` would be read as HTML. Every line is
//! therefore normalised so the generated code passes `cargo doc`,
//! `cargo test --doc` and clippy's doc lints in the user's crate.

use crate::fences::{closes_fence, fence_marker};
use prost_build::Comments;

/// Renders the leading and trailing comments of an item as `#[doc]`
/// attributes, one per line, each followed by a newline.
pub(crate) fn doc_attrs(comments: &Comments) -> String {
    let mut out = String::new();
    for line in doc_lines(comments) {
        // Debug formatting yields a valid Rust string literal for any input,
        // so stray quotes, backslashes or control characters can't break
        // the generated file.
        out.push_str(&format!("#[doc = {line:?}]\n"));
    }
    out
}

/// The rustdoc lines for `comments`, each prefixed with a space so
/// prettyplease prints them as `/// text`.
pub(crate) fn doc_lines(comments: &Comments) -> Vec<String> {
    let mut raw: Vec<String> = comments.leading.clone();
    if !raw.is_empty() && !comments.trailing.is_empty() {
        raw.push(String::new());
    }
    raw.extend(comments.trailing.iter().cloned());

    let cleaned: Vec<String> = raw.iter().map(|l| clean(l)).collect();
    let lines = dedent(&cleaned);
    let mut rendered = render_markdown(&lines);
    if !only_text_code_blocks(&rendered) {
        // Markdown `render_markdown` misreads (it knows CommonMark's common cases, not all of
        // it): the comment as written, in one text block, rather than a doctest that fails.
        rendered = verbatim(&lines);
    }

    while rendered.first().is_some_and(|l| l.trim().is_empty()) {
        rendered.remove(0);
    }
    while rendered.last().is_some_and(|l| l.trim().is_empty()) {
        rendered.pop();
    }
    rendered
        .into_iter()
        .map(|l| if l.is_empty() { l } else { format!(" {l}") })
        .collect()
}

/// Whether every code block rustdoc finds in `lines` (rendered docs, one space stripped as
/// rustdoc strips it) is tagged `text`, so none runs as a doctest. The parser is CommonMark's,
/// as rustdoc's is, with the extensions rustdoc turns on.
pub(crate) fn only_text_code_blocks(lines: &[String]) -> bool {
    use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag};
    let text = lines.join("\n");
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS;
    Parser::new_ext(&text, options).all(|event| match event {
        Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => &*info == "text",
        Event::Start(Tag::CodeBlock(CodeBlockKind::Indented)) => false,
        _ => true,
    })
}

/// `lines` unchanged inside one ```` ```text ```` block whose fence is longer than any run
/// of backticks in them, so nothing in them can close it.
fn verbatim(lines: &[String]) -> Vec<String> {
    let longest = lines
        .iter()
        .flat_map(|l| l.split(|c| c != '`'))
        .map(str::len)
        .max()
        .unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    let mut out = Vec::with_capacity(lines.len() + 2);
    out.push(format!("{fence}text"));
    out.extend(lines.iter().cloned());
    out.push(fence);
    out
}

/// Expands tabs (clippy's `tabs_in_doc_comments`) and drops control
/// characters, which have no business in documentation.
fn clean(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        match c {
            '\t' => out.push_str("    "),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.trim_end().to_owned()
}

pub(crate) fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// Removes the indentation every non-blank line shares (protoc keeps the
/// space after `//`), so indentation that remains is meaningful.
fn dedent(lines: &[String]) -> Vec<String> {
    let common = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| indent_of(l))
        .min()
        .unwrap_or(0);
    lines
        .iter()
        .map(|l| l.get(common..).unwrap_or("").to_owned())
        .collect()
}

/// The length of a list item's marker and the spaces after it (`"- "`, `"12. "`), when `line`
/// opens a list item; its content starts right after.
fn list_marker_len(line: &str) -> Option<usize> {
    let indent = indent_of(line);
    if indent >= 4 {
        return None;
    }
    let rest = &line[indent..];
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let marker = match (digits, rest.as_bytes().get(digits)) {
        (0, Some(b'-' | b'*' | b'+')) => 1,
        (1..=9, Some(b'.' | b')')) => digits + 1,
        _ => return None,
    };
    let after = &rest[marker..];
    let spaces = after.len() - after.trim_start_matches(' ').len();
    (spaces >= 1 || after.is_empty()).then_some(indent + marker + spaces)
}

/// Whether `line` is a block quote line (`> ...`, at most 3 spaces in).
fn is_quote(line: &str) -> bool {
    indent_of(line) < 4 && line.trim_start().starts_with('>')
}

/// Whether `line` closes any paragraph before it, so that an indented line right after it
/// starts a code block: an ATX heading, a thematic break or setext underline, a table row.
fn ends_paragraph(line: &str) -> bool {
    if indent_of(line) >= 4 {
        return false;
    }
    let t = line.trim();
    let hashes = t.len() - t.trim_start_matches('#').len();
    if (1..=6).contains(&hashes) && (t.len() == hashes || t[hashes..].starts_with(' ')) {
        return true;
    }
    if t.starts_with('|') {
        return true;
    }
    let Some(first) = t.chars().next() else {
        return false;
    };
    let count = t.chars().filter(|&c| c == first).count();
    "-*_=".contains(first)
        && t.chars().all(|c| c == first || c == ' ')
        && (count >= 3 || first == '=')
}

/// Rewrites code blocks as ```` ```text ```` (so rustdoc never compiles
/// them) and escapes everything outside code blocks.
///
/// Code blocks are found where CommonMark finds them: fences (also right after a list
/// item's marker), indented lines after a blank line or after a line that ends a paragraph
/// (heading, rule, fence), and both of these inside block quotes, which are rendered
/// recursively. Where it is unclear whether an indented line is code, it is made a text
/// block: that only changes how it looks, while a missed code block would run as a doctest.
fn render_markdown(lines: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(lines.len());
    // The open fence's marker and the indentation its list item's content has (0 outside
    // lists): a line indented less ends the item, and the fence with it.
    // Also the column it opened at, where it is closed if the comment ends inside it.
    let mut fence: Option<(&'static str, usize, usize)> = None;
    let mut indented_code = false;
    let mut pending_blank = 0usize;
    // Whether an indented line here would start a code block rather than continue a paragraph.
    let mut code_can_start = true;
    let mut i = 0;

    while i < lines.len() {
        let line = &lines[i];
        i += 1;
        if let Some((marker, content, _)) = fence {
            if !line.trim().is_empty() && indent_of(line) < content {
                // The list item ended under the fence (which ends with it): close it where the
                // item's content was, and read the line afresh.
                out.push(format!("{}{marker}", " ".repeat(content)));
                fence = None;
            } else if closes_fence(line, marker, content) {
                out.push(format!("{}{marker}", &line[..indent_of(line)]));
                fence = None;
                code_can_start = true;
                continue;
            } else {
                out.push(line.clone());
                continue;
            }
        }
        let blank = line.trim().is_empty();
        if indented_code {
            if blank {
                pending_blank += 1;
                continue;
            }
            if indent_of(line) >= 4 {
                out.extend(std::iter::repeat_n(String::new(), pending_blank));
                pending_blank = 0;
                out.push(line[4..].to_owned());
                continue;
            }
            out.push("```".to_owned());
            out.extend(std::iter::repeat_n(String::new(), pending_blank));
            pending_blank = 0;
            indented_code = false;
            code_can_start = false;
        }
        if is_quote(line) {
            // The whole quote, markers off, rendered like a comment of its own.
            let mut quoted = vec![strip_quote(line)];
            while let Some(next) = lines.get(i).filter(|l| is_quote(l)) {
                quoted.push(strip_quote(next));
                i += 1;
            }
            out.extend(render_markdown(&quoted).into_iter().map(|l| {
                if l.is_empty() {
                    ">".to_owned()
                } else {
                    format!("> {l}")
                }
            }));
            code_can_start = true;
            continue;
        }
        let list_content = list_marker_len(line).map_or(0, |len| len.min(line.len()));
        if let Some(marker) = fence_marker(&line[list_content..]) {
            // Whatever language was declared, rustdoc must not run it.
            let prefix = &line[..list_content];
            let indent = &line[list_content..][..indent_of(&line[list_content..])];
            out.push(format!("{prefix}{indent}{marker}text"));
            fence = Some((marker, list_content, prefix.len() + indent.len()));
        } else if !blank && code_can_start && indent_of(line) >= 4 {
            out.push("```text".to_owned());
            out.push(line[4..].to_owned());
            indented_code = true;
        } else {
            out.push(escape_inline(line));
        }
        code_can_start = blank || ends_paragraph(line);
    }
    if indented_code {
        out.push("```".to_owned());
    }
    if let Some((marker, _, column)) = fence {
        out.push(format!("{}{marker}", " ".repeat(column)));
    }
    out
}

/// `line` without its block quote marker (and the one space after it).
fn strip_quote(line: &str) -> String {
    let rest = &line.trim_start()[1..];
    rest.strip_prefix(' ').unwrap_or(rest).to_owned()
}

const URL_PREFIXES: [&str; 2] = ["http://", "https://"];

fn starts_with_url(s: &str) -> bool {
    URL_PREFIXES.iter().any(|p| s.starts_with(p))
}

/// Escapes one line of prose: bare URLs become autolinks (rustdoc's
/// `bare_urls`), `[x]` is escaped unless it's a `[text](url)` link (broken
/// intra-doc links), and `<` is escaped unless it opens an autolink
/// (`invalid_html_tags`). Inline code spans are copied untouched.
fn escape_inline(line: &str) -> String {
    let bytes = line.as_bytes();
    let mut out = String::with_capacity(line.len() + 8);
    let mut kept_close: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < line.len() {
        let rest = &line[i..];
        let c = bytes[i];
        match c {
            b'`' => {
                let run = rest.len() - rest.trim_start_matches('`').len();
                let ticks = &rest[..run];
                let after = &rest[run..];
                match after.find(ticks) {
                    Some(end) => {
                        let span = run + end + run;
                        out.push_str(&rest[..span]);
                        i += span;
                    }
                    None => {
                        out.push_str(ticks);
                        i += run;
                    }
                }
            }
            b'\\' => {
                // Already escaped: keep the pair so we don't double-escape.
                let len = rest[1..].chars().next().map_or(0, char::len_utf8);
                out.push_str(&rest[..1 + len]);
                i += 1 + len;
            }
            b'<' => {
                let autolink = starts_with_url(&rest[1..])
                    .then(|| rest.find('>'))
                    .flatten()
                    .filter(|&end| !rest[..end].contains(char::is_whitespace));
                match autolink {
                    Some(end) => {
                        out.push_str(&rest[..=end]);
                        i += end + 1;
                    }
                    None => {
                        out.push_str("\\<");
                        i += 1;
                    }
                }
            }
            b'[' => {
                let link_close = rest
                    .find(']')
                    .filter(|&end| rest[end + 1..].starts_with('('))
                    .filter(|&end| !rest[1..end].contains('['));
                match link_close {
                    Some(end) => {
                        kept_close.push(i + end);
                        out.push('[');
                    }
                    None => out.push_str("\\["),
                }
                i += 1;
            }
            b']' => {
                if kept_close.contains(&i) {
                    out.push(']');
                    // The link target is a URL: copy it verbatim.
                    if let Some(close) = line[i + 1..].find(')') {
                        out.push_str(&line[i + 1..=i + 1 + close]);
                        i += close + 1;
                    }
                } else {
                    out.push_str("\\]");
                }
                i += 1;
            }
            _ if starts_with_url(rest) => {
                let mut end = rest
                    .find(|ch: char| ch.is_whitespace() || "<>\"'`()[]".contains(ch))
                    .unwrap_or(rest.len());
                // Sentence punctuation after a URL isn't part of it (ASCII or CJK; a char at a
                // time, never a byte: the text is UTF-8).
                while let Some(last) = rest[..end].chars().next_back() {
                    if !".,;:!?。、，；：！？".contains(last) {
                        break;
                    }
                    end -= last.len_utf8();
                }
                out.push('<');
                out.push_str(&rest[..end]);
                out.push('>');
                i += end;
            }
            _ => {
                let len = rest.chars().next().map_or(1, char::len_utf8);
                out.push_str(&rest[..len]);
                i += len;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[&str]) -> Vec<String> {
        let comments = Comments {
            leading_detached: Vec::new(),
            leading: text.iter().map(|s| (*s).to_owned()).collect(),
            trailing: Vec::new(),
        };
        doc_lines(&comments)
    }

    #[test]
    fn a_line_opening_with_inline_code_keeps_its_text() {
        let out = lines(&[" ```Greeter``` answers hellos.", " Twice."]);
        assert!(!out.iter().any(|l| l.contains("```text")), "{out:?}");
        assert!(out.iter().any(|l| l.contains("answers hellos.")), "{out:?}");
        assert!(out.iter().any(|l| l.contains("Twice.")), "{out:?}");
    }

    #[test]
    fn punctuation_after_a_url_may_be_any_utf_8() {
        assert_eq!(
            lines(&[" 详见 https://example.com。"]),
            [" 详见 <https://example.com>。"]
        );
        assert_eq!(
            lines(&[" Docs: https://example.com/café, then 🎉"]),
            [" Docs: <https://example.com/café>, then 🎉"]
        );
        assert_eq!(
            lines(&[" See https://example.com/é"]),
            [" See <https://example.com/é>"]
        );
    }

    #[test]
    fn plain_text_gets_one_space() {
        assert_eq!(
            lines(&[" Hello world.", " Second."]),
            [" Hello world.", " Second."]
        );
        assert_eq!(lines(&["NoSpace"]), [" NoSpace"]);
    }

    #[test]
    fn brackets_and_html_are_escaped() {
        assert_eq!(
            lines(&[" see [x] and List<String>"]),
            [" see \\[x\\] and List\\<String>"]
        );
        assert_eq!(
            lines(&[" a [link](http://a.b/c_d) ok"]),
            [" a [link](http://a.b/c_d) ok"]
        );
        assert_eq!(lines(&[" already \\[y\\]"]), [" already \\[y\\]"]);
        assert_eq!(lines(&[" code `a[0] < b` ok"]), [" code `a[0] < b` ok"]);
    }

    #[test]
    fn urls_become_autolinks() {
        assert_eq!(lines(&[" see http://x.io/a."]), [" see <http://x.io/a>."]);
        assert_eq!(lines(&[" see <https://x.io>"]), [" see <https://x.io>"]);
    }

    #[test]
    fn indented_code_becomes_text_block() {
        let got = lines(&[
            " Example:",
            "",
            "     let x = 1;",
            "     foo(x);",
            "",
            " After.",
        ]);
        assert_eq!(
            got,
            [
                " Example:",
                "",
                " ```text",
                " let x = 1;",
                " foo(x);",
                " ```",
                "",
                " After."
            ]
        );
    }

    #[test]
    fn fences_lose_their_language() {
        let got = lines(&[" ```rust", " fn main() {}", " ```"]);
        assert_eq!(got, [" ```text", " fn main() {}", " ```"]);
        let got = lines(&[" ```", " unterminated [x]"]);
        assert_eq!(got, [" ```text", " unterminated [x]", " ```"]);
    }

    #[test]
    fn no_comment_renders_a_code_block_rustdoc_would_run() {
        // Every sequence of up to three of these lines (with the space protoc keeps after
        // `//`), and of four of the first `STRUCTURAL`.
        const FRAGMENTS: &[&str] = &[
            "",
            "text",
            "    code();",
            "```rust",
            "- ```",
            "  ```",
            "> ```",
            "# Heading",
            "- item",
            "        deeper();",
            "```",
            "~~~",
            "````",
            "---",
            "> quoted",
            ">     quoted_code();",
            "1. item",
            "| a | b |",
            "\tcode();",
        ];
        const STRUCTURAL: usize = 9;
        let mut checked = 0;
        for (len, n) in [
            (1, FRAGMENTS.len()),
            (2, FRAGMENTS.len()),
            (3, FRAGMENTS.len()),
        ]
        .into_iter()
        .chain([(4, STRUCTURAL)])
        {
            for mut combo in 0..n.pow(len) {
                let mut comment = Vec::new();
                for _ in 0..len {
                    comment.push(format!(" {}", FRAGMENTS[combo % n]));
                    combo /= n;
                }
                let doc = lines(&comment.iter().map(String::as_str).collect::<Vec<_>>());
                // rustdoc strips the indentation all lines share: here, the one space.
                let doc: Vec<String> = doc
                    .iter()
                    .map(|l| l.strip_prefix(' ').unwrap_or(l).to_owned())
                    .collect();
                assert!(
                    only_text_code_blocks(&doc),
                    "comment {comment:#?} renders as {doc:#?}, which rustdoc would run"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 19 + 19 * 19 + 19 * 19 * 19 + 9 * 9 * 9 * 9);
    }

    #[test]
    fn what_the_renderer_misreads_is_kept_verbatim_in_one_text_block() {
        // A fence inside a list item, on a line of its own: CommonMark ends it with the item.
        // The fence around it is longer than any backtick run inside.
        let got = lines(&[" - item", "   ```", " ```rust", " run();"]);
        assert_eq!(
            got,
            [
                " ````text",
                " - item",
                "   ```",
                " ```rust",
                " run();",
                " ````"
            ]
        );
        let got = lines(&[" - item", "   ````", " ````"]);
        assert_eq!(got.first().map(String::as_str), Some(" `````text"));
        assert_eq!(got.last().map(String::as_str), Some(" `````"));
    }

    #[test]
    fn code_after_headings_in_quotes_and_lists_is_text() {
        assert_eq!(
            lines(&[" # Example", "     run();"]),
            [" # Example", " ```text", " run();", " ```"]
        );
        assert_eq!(
            lines(&[" > ```", " > quoted();", " > ```"]),
            [" > ```text", " > quoted();", " > ```"]
        );
        assert_eq!(
            lines(&[" - ```rust", "   listed();", "   ```"]),
            [" - ```text", "   listed();", "   ```"]
        );
        // A list item that ends under its fence closes the fence.
        assert_eq!(
            lines(&[" - ```", "   a();", " b [c]"]),
            [" - ```text", "   a();", "   ```", " b \\[c\\]"]
        );
    }

    #[test]
    fn odd_characters_are_harmless() {
        let got = lines(&[" tab\there \u{7} \"q\" \\ ` [ ]"]);
        assert_eq!(got, [" tab    here  \"q\" \\ ` \\[ \\]"]);
        let attrs = doc_attrs(&Comments {
            leading_detached: Vec::new(),
            leading: vec![" \"quoted\" \\".to_owned()],
            trailing: vec![" trailing".to_owned()],
        });
        assert_eq!(
            attrs,
            "#[doc = \" \\\"quoted\\\" \\\\\"]\n#[doc = \"\"]\n#[doc = \" trailing\"]\n"
        );
    }
}
