//! Code blocks in the comments prost-build renders (messages, fields, oneofs, enums and their
//! values) become text, as `comments.rs` makes them in service and rpc comments.
//!
//! prost-build's `cleanup-markdown` tags a fenced block ```` ```js ```` as `text,js` and an
//! indented block as `text`, but a ```` ```rust ```` block as `compile_fail`: a doctest, which
//! fails `cargo test --doc` in the user's crate whenever the snippet compiles (and, when it does
//! not, checks nothing anyone asked for). A `.proto` comment's code was not written against the
//! user's crate, whatever language it names. So before prost-build sees the comments, the info
//! string of every fenced block is replaced by `text`; its cleanup then writes `text,text`,
//! which rustdoc shows as plain text and never runs. A comment whose blocks cannot all be
//! rewritten so is handed on as one fenced text block holding it as written.
//!
//! prost-build writes every block back with a three-backtick fence, whatever fenced it in the
//! comment (an indentation, four backticks, tildes), so a line of the block that is itself a
//! ```` ``` ```` closes it early and what follows runs as a doctest. Every comment is therefore
//! rendered here as prost-build will render it (`prost_render`, its renderer and options) and
//! checked; one that would still hold a doctest is handed on as one text block in which each
//! line that starts with backticks or tildes is prefixed with a zero-width space (U+200B),
//! which keeps it on show but never a fence.

use std::ops::Range;

use prost_types::FileDescriptorSet;
use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag};

/// The info string every fenced block gets.
const TEXT: &str = "text";

/// Rewrites the leading and trailing comments of every item in `fds` so that each fenced code
/// block in them is tagged `text`. Files without source info are left as they are.
pub(crate) fn text_code_blocks(fds: &mut FileDescriptorSet) {
    for comment in crate::source_comments::doc_comments_mut(fds) {
        // HTML becomes text too (`comment_html.rs`); a comment shown whole in one text block
        // is shown as written.
        let written = comment.clone();
        // So do links rustdoc would resolve as Rust paths (`comment_links.rs`).
        if let Some(escaped) = crate::comment_links::escape_path_links(comment) {
            *comment = escaped;
        }
        if let Some(escaped) = crate::comment_html::escape_html(comment) {
            *comment = escaped;
        }
        if let Some(rewritten) = rewrite(comment) {
            *comment = rewritten;
        }
        if !survives_prost(comment) {
            let defused = defused(&written);
            *comment = if survives_prost(&defused) {
                defused
            } else {
                // Never seen: no docs rather than a doctest that fails the user's build.
                String::new()
            };
        }
    }
}

/// The parser as prost-build's `cleanup-markdown` runs it on comments, so that the blocks found
/// here are the blocks it finds.
fn parser(text: &str) -> impl Iterator<Item = (Event<'_>, Range<usize>)> {
    Parser::new_ext(text, Options::all() - Options::ENABLE_SMART_PUNCTUATION).into_offset_iter()
}

/// `comment` with every fenced block's info string replaced by `text`; `None` when there is
/// nothing to change.
fn rewrite(comment: &str) -> Option<String> {
    let mut infos: Vec<Range<usize>> = Vec::new();
    for (event, range) in parser(comment) {
        if let Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) = event {
            if &*info == TEXT {
                continue;
            }
            match info_string(comment, range.start) {
                Some(info) => infos.push(info),
                None => return Some(verbatim(comment)),
            }
        }
    }
    if infos.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(comment.len() + 4 * infos.len());
    let mut copied = 0;
    for info in infos {
        out.push_str(&comment[copied..info.start]);
        out.push_str(TEXT);
        copied = info.end;
    }
    out.push_str(&comment[copied..]);
    if all_text(&out) {
        Some(out)
    } else {
        Some(verbatim(comment))
    }
}

/// Where the info string of the fence opening at `start` lies: the rest of the fence's line
/// after its run of backticks or tildes. `None` if no fence opens there.
fn info_string(text: &str, start: usize) -> Option<Range<usize>> {
    let line = &text[start..];
    let line = &line[..line.find('\n').unwrap_or(line.len())];
    let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
    let rest = &line[indent..];
    let marker = rest.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let run = rest.len() - rest.trim_start_matches(marker).len();
    if run < 3 {
        return None;
    }
    let line_end = start + line.trim_end_matches('\r').len();
    Some(start + indent + run..line_end)
}

/// Whether every fenced block in `text` is tagged `text` (indented blocks prost-build tags so
/// itself).
fn all_text(text: &str) -> bool {
    parser(text).all(|(event, _)| match event {
        Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => &*info == TEXT,
        _ => true,
    })
}

/// `comment` as written, in one fenced text block longer than any run of backticks in it.
pub(crate) fn verbatim(comment: &str) -> String {
    let longest = comment.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!(
        "{fence}{TEXT}\n{}\n{fence}\n",
        comment.trim_end_matches('\n')
    )
}

/// The zero-width space that keeps a line starting with a fence's characters from being one.
const DEFUSE: char = '\u{200B}';

/// `comment` as prost-build's `cleanup-markdown` renders it into doc lines (its parser, its
/// retagging of blocks and its three-backtick fences; `prost-build`'s `ast.rs`), one space
/// taken off each line as rustdoc takes it.
pub(crate) fn prost_render(comment: &str) -> Vec<String> {
    let events = parser(comment).map(|(event, _)| match event {
        Event::Start(Tag::CodeBlock(kind)) => {
            let info = match kind {
                CodeBlockKind::Fenced(info) if &*info == "rust" => "compile_fail".to_owned(),
                CodeBlockKind::Fenced(info) => format!("text,{info}"),
                CodeBlockKind::Indented => TEXT.to_owned(),
            };
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info.into())))
        }
        event => event,
    });
    let options = pulldown_cmark_to_cmark::Options {
        code_block_token_count: 3,
        ..Default::default()
    };
    let mut out = String::with_capacity(comment.len() + 256);
    let rendered = match pulldown_cmark_to_cmark::cmark_with_options(events, &mut out, options) {
        Ok(_) => out.as_str(),
        // prost-build keeps the comment's own lines then.
        Err(_) => comment,
    };
    rendered
        .lines()
        .map(|line| line.strip_prefix(' ').unwrap_or(line).to_owned())
        .collect()
}

/// Whether `comment`, once prost-build has rendered it, holds no code block rustdoc would run:
/// each is fenced, and its info string starts with `text` (prost-build's `text,…`; rustdoc
/// runs no block naming a language it does not know).
fn survives_prost(comment: &str) -> bool {
    use pulldown_cmark::Options;
    let text = prost_render(comment).join("\n");
    // The extensions rustdoc reads docs with, as `comments::only_text_code_blocks`.
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS;
    Parser::new_ext(&text, options).all(|event| match event {
        Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
            info.split(',').next().map(str::trim) == Some(TEXT)
        }
        Event::Start(Tag::CodeBlock(CodeBlockKind::Indented)) => false,
        _ => true,
    })
}

/// `comment` in one fenced text block, each line that starts (after its indentation) with a
/// backtick or a tilde prefixed with [`DEFUSE`], so no line of it can close the fence
/// prost-build writes around it.
fn defused(comment: &str) -> String {
    let lines: Vec<String> = comment
        .trim_end_matches('\n')
        .lines()
        .map(|line| {
            let body = line.trim_start_matches([' ', '\t']);
            if body.starts_with(['`', '~']) {
                let indent = &line[..line.len() - body.len()];
                format!("{indent}{DEFUSE}{body}")
            } else {
                line.to_owned()
            }
        })
        .collect();
    format!("```{TEXT}\n{}\n```\n", lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(comment: &str) -> String {
        rewrite(comment).unwrap_or_else(|| comment.to_owned())
    }

    #[test]
    fn every_fence_is_tagged_text() {
        let comment =
            " Before.\n\n ```rust\n let x = 1;\n ```\n\n ~~~ rust,no_run\n y();\n ~~~\n\n \
                       ````\n z();\n ````\n";
        assert_eq!(
            rewritten(comment),
            " Before.\n\n ```text\n let x = 1;\n ```\n\n ~~~text\n y();\n ~~~\n\n ````text\n z();\n ````\n"
        );
    }

    #[test]
    fn fences_in_quotes_and_list_items_too() {
        let comment =
            " > ```rust\n > quoted();\n > ```\n\n - item:\n\n   ```rust\n   listed();\n   ```\n";
        assert_eq!(
            rewritten(comment),
            " > ```text\n > quoted();\n > ```\n\n - item:\n\n   ```text\n   listed();\n   ```\n"
        );
    }

    #[test]
    fn comments_without_fences_are_left_alone() {
        for comment in [
            " Plain text with `code` and ``` inline.\n",
            "     indented();\n",
            " ```text\n already();\n ```\n",
        ] {
            assert_eq!(rewrite(comment), None, "{comment:?}");
        }
    }

    #[test]
    fn an_unclosed_fence_is_tagged_to_the_end() {
        assert_eq!(rewritten(" ```rust\n open();\n"), " ```text\n open();\n");
    }

    #[test]
    fn blocks_whose_lines_look_like_fences_are_defused() {
        // prost-build writes each block back with three backticks: a ``` line inside it
        // would close it and leave the next line a doctest.
        for comment in [
            " A field:\n\n     ```\n     ```\n     compile_error!(\"ran\");\n     ```\n",
            " ````\n ```\n compile_error!(\"ran\");\n ```\n ````\n",
            " ~~~\n ```\n compile_error!(\"ran\");\n ```\n ~~~\n",
        ] {
            let rewritten = rewritten(comment);
            assert!(!survives_prost(&rewritten), "the case itself: {comment:?}");
            let safe = defused(&rewritten);
            assert!(survives_prost(&safe), "{safe:?}");
            assert!(
                safe.contains("compile_error!(\"ran\");"),
                "the text is kept: {safe:?}"
            );
        }
    }

    #[test]
    fn a_defused_comment_shows_its_html_as_written() {
        use prost_types::source_code_info::Location;
        use prost_types::{FileDescriptorProto, SourceCodeInfo};
        let comment = " Takes a Vec<u8>.\n\n ````\n ```\n compile_error!(\"ran\");\n ```\n ````\n";
        let mut fds = FileDescriptorSet {
            file: vec![FileDescriptorProto {
                source_code_info: Some(SourceCodeInfo {
                    location: vec![Location {
                        leading_comments: Some(comment.to_owned()),
                        ..Location::default()
                    }],
                }),
                ..FileDescriptorProto::default()
            }],
        };
        text_code_blocks(&mut fds);
        let done = fds.file[0]
            .source_code_info
            .as_ref()
            .expect("info")
            .location[0]
            .leading_comments
            .clone()
            .expect("a comment");
        assert!(survives_prost(&done), "{done:?}");
        assert!(done.contains("Takes a Vec<u8>."), "{done:?}");
    }

    #[test]
    fn ordinary_blocks_survive_prost_as_they_are() {
        for comment in [
            " Before.\n\n ```text\n let x = 1;\n ```\n",
            "     indented();\n",
            " Plain text with `code`.\n",
        ] {
            assert!(survives_prost(comment), "{comment:?}");
        }
    }

    #[test]
    fn the_fallback_holds_the_comment_in_one_text_block() {
        let block = verbatim(" a ```` b\n");
        assert_eq!(block, "`````text\n a ```` b\n`````\n");
        assert!(all_text(&block));
    }
}
