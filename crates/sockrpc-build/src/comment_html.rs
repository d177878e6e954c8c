//! HTML in the comments prost-build renders (messages, fields, oneofs, enums and their values)
//! becomes text, as `comments.rs` makes it in service and rpc comments.
//!
//! A `.proto` comment is not written for rustdoc: `Vec<u8>`, `<package>.<service>` or
//! `rejected_<signal>` (all in real protos: gRPC's reflection, OpenTelemetry's collectors) read
//! to Markdown as inline HTML, and rustdoc then reports unclosed tags (`invalid_html_tags`), so
//! a crate that documents its generated code with `-D warnings` fails to build its docs. Before
//! prost-build sees a comment (`text_code_blocks.rs` calls [`escape_html`] on each), every `<`
//! that opens HTML (inline or a block) is escaped (`\<`),
//! which prost-build's Markdown cleanup keeps as it is; the docs then show the text as written.
//! Autolinks (`<https://…>`), code spans and code blocks are left alone.

use std::ops::Range;

use pulldown_cmark::{Event, Options, Parser};

/// `comment` with every `<` inside HTML escaped; `None` when it holds no HTML.
pub(crate) fn escape_html(comment: &str) -> Option<String> {
    // HTML as prost-build's `cleanup-markdown` parses the comment (what it keeps as HTML), and
    // as rustdoc parses it (what it reports: HTML inside math or a wikilink, which prost-build
    // writes back as text, is HTML to rustdoc).
    let prost = Options::all() - Options::ENABLE_SMART_PUNCTUATION;
    let rustdoc = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS;
    let mut html: Vec<Range<usize>> = [prost, rustdoc]
        .into_iter()
        .flat_map(|options| {
            Parser::new_ext(comment, options)
                .into_offset_iter()
                .filter(|(event, _)| matches!(event, Event::Html(_) | Event::InlineHtml(_)))
                .map(|(_, range)| range)
                .collect::<Vec<_>>()
        })
        .collect();
    if html.is_empty() {
        return None;
    }
    html.sort_by_key(|range| (range.start, std::cmp::Reverse(range.end)));
    let mut out = String::with_capacity(comment.len() + 8 * html.len());
    let mut copied = 0;
    for range in html {
        // In order; the part of a range already copied (the two parses overlap) is skipped.
        let start = range.start.max(copied);
        if start >= range.end {
            continue;
        }
        out.push_str(&comment[copied..start]);
        for ch in comment[start..range.end].chars() {
            if ch == '<' {
                out.push('\\');
            }
            out.push(ch);
        }
        copied = range.end;
    }
    out.push_str(&comment[copied..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(comment: &str) -> String {
        escape_html(comment).unwrap_or_else(|| comment.to_owned())
    }

    #[test]
    fn tags_in_text_are_escaped() {
        assert_eq!(
            escaped(" a Vec<u8> of <package>.<service> for rejected_<signal>\n"),
            " a Vec\\<u8> of \\<package>.\\<service> for rejected_\\<signal>\n"
        );
        assert_eq!(escaped(" <b>bold</b>\n"), " \\<b>bold\\</b>\n");
    }

    #[test]
    fn html_blocks_are_escaped_line_by_line() {
        assert_eq!(
            escaped(" Before.\n\n <div>\n inside\n </div>\n"),
            " Before.\n\n \\<div>\n inside\n \\</div>\n"
        );
    }

    #[test]
    fn code_autolinks_and_plain_text_are_left_alone() {
        for comment in [
            " code `Vec<u8>` and <https://example.com/a> and a < b > c\n",
            " ```\n Vec<u8>\n ```\n",
            "     indented <code>\n",
            " plain words only\n",
        ] {
            assert_eq!(escape_html(comment), None, "{comment:?}");
        }
    }

    #[test]
    fn html_that_only_rustdoc_reads_is_escaped() {
        assert_eq!(escaped(" $x <b> y$\n"), " $x \\<b> y$\n");
        assert_eq!(escaped(" [[Vec<u8>]]\n"), " [[Vec\\<u8>]]\n");
    }

    #[test]
    fn what_is_escaped_parses_as_text() {
        let comment = escaped(" a <x> b\n\n <div>\n c\n </div>\n Vec<Vec<u8>>\n");
        let parser = Parser::new_ext(&comment, Options::all());
        assert!(
            parser
                .into_iter()
                .all(|event| !matches!(event, Event::Html(_) | Event::InlineHtml(_))),
            "{comment:?}"
        );
    }
}
