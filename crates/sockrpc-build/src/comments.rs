//! Turns .proto comments into rustdoc that builds cleanly.
//!
//! Proto comments are written for humans reading the .proto, not for
//! rustdoc: indented snippets would become Rust doctests, `[x]` would become
//! broken intra-doc links and `<T>` would be read as HTML. Every line is
//! therefore normalised so the generated code passes `cargo doc`,
//! `cargo test --doc` and clippy's doc lints in the user's crate.

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

fn indent_of(line: &str) -> usize {
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

/// Fence markers open and close code blocks; `None` if `line` isn't one.
fn fence_marker(line: &str) -> Option<&'static str> {
    let t = line.trim_start();
    if t.starts_with("```") {
        Some("```")
    } else if t.starts_with("~~~") {
        Some("~~~")
    } else {
        None
    }
}

/// Rewrites code blocks as ```` ```text ```` (so rustdoc never compiles
/// them) and escapes everything outside code blocks.
fn render_markdown(lines: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(lines.len());
    let mut fence: Option<&'static str> = None;
    let mut indented_code = false;
    let mut pending_blank = 0usize;
    let mut prev_blank = true;

    for line in lines {
        if let Some(marker) = fence {
            if fence_marker(line) == Some(marker) {
                out.push(marker.to_owned());
                fence = None;
            } else {
                out.push(line.clone());
            }
            continue;
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
            prev_blank = false;
        }
        if let Some(marker) = fence_marker(line) {
            // Whatever language was declared, rustdoc must not run it.
            out.push(format!("{marker}text"));
            fence = Some(marker);
        } else if !blank && prev_blank && indent_of(line) >= 4 {
            out.push("```text".to_owned());
            out.push(line[4..].to_owned());
            indented_code = true;
        } else {
            out.push(escape_inline(line));
        }
        prev_blank = blank;
    }
    if indented_code {
        out.push("```".to_owned());
    }
    if let Some(marker) = fence {
        out.push(marker.to_owned());
    }
    out
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
                // Sentence punctuation after a URL isn't part of it.
                while end > 0 && ".,;:!?".contains(&rest[end - 1..end]) {
                    end -= 1;
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
