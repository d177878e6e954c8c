//! Links whose target rustdoc would read as a Rust path, in the comments prost-build renders
//! (messages, fields, oneofs, enums and their values), become text.
//!
//! A `.proto` comment's `[Option](Option)` or `[the spec](Spec)` names a proto type, or nothing,
//! never an item of the user's crate; but rustdoc resolves such a target as an intra-doc link in
//! the package module, which prost-build writes without lint allowances. It then reports
//! `broken_intra_doc_links` (nothing of that name), `redundant_explicit_links` (the link text
//! names the item it resolves to: a message `Option` or `Vec`) or `private_intra_doc_links`, so
//! a crate that documents its generated code with `-D warnings` fails to build its docs. Before
//! prost-build sees a comment (`text_code_blocks.rs` calls [`escape_path_links`] on each), the
//! brackets of such a link are escaped (`\[Option\](Option)`), which prost-build's Markdown
//! cleanup keeps; the docs show the text as written. Reference-style links (`[a][b]` with
//! `[b]: Option`) are escaped as well, since rustdoc resolves their targets the same way, and
//! so are the links that escaping makes: a link cannot hold a link, so `[[a](Option)](Option)`
//! has an outer one only once the inner one is text. Links to URLs, paths with a `/`, anchors
//! and e-mail addresses are left as links, as are code spans and code blocks.

use pulldown_cmark::{Event, LinkType, Options, Parser, Tag, TagEnd};

/// How many times a comment is escaped again at most. A link cannot hold a link, so brackets
/// around one (`[[a](Option)](Option)`) become a link of their own once it is text: each pass
/// undoes one level of such nesting. Past this depth the comment is kept as written, as text.
const MAX_PASSES: usize = 16;

/// `comment` with the brackets of every link to a Rust-path-like target escaped (inline and
/// reference-style); `None` when it holds no such link. A comment whose links nest deeper than
/// [`MAX_PASSES`] comes back as written, in one text block.
pub(crate) fn escape_path_links(comment: &str) -> Option<String> {
    let mut escaped: Option<String> = None;
    for _ in 0..MAX_PASSES {
        let text = escaped.as_deref().unwrap_or(comment);
        let brackets = path_link_brackets(text);
        if brackets.is_empty() {
            return escaped;
        }
        escaped = Some(insert_backslashes(text, &brackets));
    }
    Some(crate::text_code_blocks::verbatim(comment))
}

/// The byte offsets of the brackets of each link in `comment` whose target rustdoc would read
/// as a Rust path, in order: `[` and `]` around its text and, for `[text][label]`, around its
/// label. A link whose brackets are not where they should be is left out, never guessed at.
fn path_link_brackets(comment: &str) -> Vec<usize> {
    let options = Options::all() - Options::ENABLE_SMART_PUNCTUATION;
    let bytes = comment.as_bytes();
    let mut brackets: Vec<usize> = Vec::new();
    let mut events = Parser::new_ext(comment, options).into_offset_iter();
    while let Some((event, range)) = events.next() {
        let Event::Start(Tag::Link {
            link_type,
            dest_url,
            ..
        }) = event
        else {
            continue;
        };
        // The link's text ends where the last event inside it does (a code span in it may hold
        // a `]`); its `]` is the first one from there.
        let mut text_end = range.start + 1;
        for (inner, inner_range) in events.by_ref() {
            if matches!(inner, Event::End(TagEnd::Link)) {
                break;
            }
            text_end = text_end.max(inner_range.end);
        }
        let labelled = match link_type {
            LinkType::Inline | LinkType::Shortcut => false,
            LinkType::Reference | LinkType::Collapsed => true,
            // Autolinks and e-mail addresses, links rustdoc never resolves, and the broken
            // references this parser reports only through a callback.
            _ => continue,
        };
        if !rust_path(&dest_url) || bytes.get(range.start) != Some(&b'[') {
            continue;
        }
        let Some(close) = comment
            .get(text_end..range.end)
            .and_then(|rest| rest.find(']'))
            .map(|at| text_end + at)
        else {
            continue;
        };
        let mut link = vec![range.start, close];
        if labelled {
            // `[text][label]`, `[text][]`: the label's brackets follow at once (a label holds
            // no unescaped bracket; the parser's range may end before a `[]`).
            let open = close + 1;
            let Some(end) = (bytes.get(open) == Some(&b'['))
                .then(|| comment.get(open + 1..))
                .flatten()
                .and_then(|rest| rest.find(']'))
                .map(|at| open + 1 + at)
            else {
                continue;
            };
            link.extend([open, end]);
        }
        brackets.extend(link);
    }
    brackets.sort_unstable();
    brackets.dedup();
    brackets
}

/// `text` with a backslash before each of the bytes at `at` (ascending offsets of ASCII
/// brackets, so each is a char boundary).
fn insert_backslashes(text: &str, at: &[usize]) -> String {
    let mut out = String::with_capacity(text.len() + at.len());
    let mut last = 0;
    for &offset in at {
        out.push_str(&text[last..offset]);
        out.push('\\');
        last = offset;
    }
    out.push_str(&text[last..]);
    out
}

/// Whether rustdoc would try `dest` as an intra-doc link (`preprocess_link` and
/// `should_ignore_link` in rustdoc's `collect_intra_doc_links`): no `/`, and once its
/// backticks are dropped, before any `#` fragment and trimmed, non-empty and only the
/// characters rustdoc accepts in a path: alphanumerics and `:_<>, !*&;@()`.
fn rust_path(dest: &str) -> bool {
    if dest.contains('/') {
        return false;
    }
    let stripped = dest.replace('`', "");
    let path = stripped.split('#').next().unwrap_or_default().trim();
    !path.is_empty()
        && path
            .chars()
            .all(|c| c.is_alphanumeric() || ":_<>, !*&;@()".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_targets_lose_their_link() {
        assert_eq!(
            escape_path_links("see [Option](Option) and [`Vec`](Vec).").as_deref(),
            Some("see \\[Option\\](Option) and \\[`Vec`\\](Vec).")
        );
        assert_eq!(
            escape_path_links("[a b](google::rpc::Status#code)\nnext").as_deref(),
            Some("\\[a b\\](google::rpc::Status#code)\nnext")
        );
    }

    #[test]
    fn urls_anchors_and_code_are_left_alone() {
        for kept in [
            "[a](https://example.com/x)",
            "[spec](docs/spec.md)",
            "[up](#anchor)",
            "[mail](mailto:a@b.c)",
            "`[Option](Option)`",
            "```\n[Option](Option)\n```",
            "[Box][brought.std.v1.Box]",
            "no links [at] all",
        ] {
            assert_eq!(escape_path_links(kept), None, "{kept}");
        }
    }

    /// What rustdoc sees of `comment` once it has gone through prost-build: the target of
    /// every link in it, reference-style ones included.
    fn rendered_targets(comment: &str) -> Vec<String> {
        let text = crate::text_code_blocks::prost_render(comment).join("\n");
        Parser::new_ext(&text, Options::ENABLE_TABLES | Options::ENABLE_FOOTNOTES)
            .filter_map(|event| match event {
                Event::Start(Tag::Link {
                    link_type: LinkType::Autolink | LinkType::Email,
                    ..
                }) => None,
                Event::Start(Tag::Link { dest_url, .. }) => Some(dest_url.to_string()),
                _ => None,
            })
            .collect()
    }

    /// Escaped, rendered by prost-build: no link rustdoc would resolve is left, the others are
    /// kept as they were, and the text is the comment's (only backslashes were added).
    fn check(comment: &str) {
        let escaped = escape_path_links(comment).unwrap_or_else(|| comment.to_owned());
        let left = rendered_targets(&escaped);
        assert!(
            left.iter().all(|target| !rust_path(target)),
            "{comment:?} became {escaped:?}, which still links to {left:?}"
        );
        let urls: Vec<String> = rendered_targets(comment)
            .into_iter()
            .filter(|target| !rust_path(target))
            .collect();
        assert_eq!(left, urls, "{comment:?}: the other links are kept");
        assert_eq!(
            escaped.replace('\\', ""),
            comment.replace('\\', ""),
            "{comment:?}: only backslashes are added"
        );
    }

    #[test]
    fn links_made_by_escaping_the_inner_one_are_escaped_too() {
        // A link cannot hold a link: once the inner one is text, the outer brackets make one.
        for comment in [
            "[[a](Option)](Option)",
            "[ [x](Option) ](Vec)",
            "[[[a](Option)](Option)](Option)",
        ] {
            check(comment);
        }
    }

    #[test]
    fn every_way_of_writing_a_path_target_loses_its_link() {
        for comment in [
            "[x](<Option>)",
            "[x](Option \"title\")",
            "[x](Option 'title')",
            "[x]( Option )",
            "[x](Opt\\_ion)",
            "[x](&lt;Option&gt;)",
            "[x](`Option`)",
            "[`a]`](Option)",
            "[a\\]](Option)",
            "[a][b]\n\n[b]: Option",
            "[x][]\n\n[x]: Vec",
            "[Option]\n\n[Option]: Option",
            "[a\nb](Option)",
            "[![img](x.png)](Option)",
        ] {
            check(comment);
        }
    }

    #[test]
    fn hostile_comments_neither_panic_nor_lose_text() {
        for comment in [
            "[",
            "]",
            "[[",
            "\\",
            "[a](Option",
            "\\[escaped\\](Option)",
            "[a [b] c](Option)",
            "`[a](Option)`",
            "```\n[a](Option)\n```",
            "[x](https://e.com/a_(b))",
            "[x](<spaces in target>)",
            "<b>[x](Option)</b>",
            "[é](Ünïcode) [日本](日本語) [🦀](🦀)",
            "[x](Option)[y](Vec)",
            "[a](b)(c)",
            "| a |\n|---|\n| [x](Option) |",
            "[^1]\n\n[^1]: [x](Option)",
            "[x](Option)\r\n[y](https://a/b)",
            "[x](a.b) [m](mailto:a@b.c) [up](#anchor) [p](a/b)",
            "[ü]: Option\n\n[ü]",
        ] {
            check(comment);
        }
    }

    #[test]
    fn nesting_too_deep_to_untangle_is_kept_as_text() {
        let depth = 40;
        let comment = format!("{}a{}", "[".repeat(depth), "](Option)".repeat(depth));
        let escaped = escape_path_links(&comment).expect("changed");
        assert!(rendered_targets(&escaped).is_empty(), "{escaped:?}");
        assert!(
            escaped.contains(&comment),
            "the comment as written: {escaped:?}"
        );
    }

    /// Comments made of the pieces links are made of, from a fixed seed: none panics, loses
    /// text, keeps a link rustdoc would resolve or loses another (20,000 of up to 14 pieces).
    #[test]
    fn generated_comments_hold_no_path_link() {
        let pieces = [
            "[",
            "]",
            "(",
            ")",
            "\\",
            "`",
            "<",
            ">",
            "a",
            "é",
            " ",
            "\n",
            ":",
            "\"",
            "!",
            "Option",
            "/",
            "#",
            "*",
            "[b]: Vec\n",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let count = next() % 14 + 1;
            let comment: String = (0..count)
                .map(|_| pieces[(next() % pieces.len() as u64) as usize])
                .collect();
            check(&comment);
        }
    }
}
