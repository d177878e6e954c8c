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
//! cleanup keeps; the docs show the text as written. Links to URLs, paths with a `/`, anchors
//! and e-mail addresses are left as links, as are code spans and code blocks.

use pulldown_cmark::{Event, LinkType, Options, Parser, Tag};

/// `comment` with the brackets of every inline link to a Rust-path-like target escaped; `None`
/// when it holds no such link.
pub(crate) fn escape_path_links(comment: &str) -> Option<String> {
    let options = Options::all() - Options::ENABLE_SMART_PUNCTUATION;
    // The byte offsets of the `[` and `]` around each such link's text.
    let mut brackets: Vec<usize> = Vec::new();
    for (event, range) in Parser::new_ext(comment, options).into_offset_iter() {
        let Event::Start(Tag::Link {
            link_type: LinkType::Inline,
            dest_url,
            ..
        }) = event
        else {
            continue;
        };
        if !rust_path(&dest_url) {
            continue;
        }
        let source = &comment[range.clone()];
        // `[text](dest)` as written: the `]` is the one right before `(dest)`.
        let tail = format!("]({dest_url})");
        if source.starts_with('[') && source.ends_with(&tail) {
            brackets.push(range.start);
            brackets.push(range.end - tail.len());
        }
    }
    if brackets.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(comment.len() + brackets.len());
    let mut last = 0;
    for at in brackets {
        out.push_str(&comment[last..at]);
        out.push('\\');
        last = at;
    }
    out.push_str(&comment[last..]);
    Some(out)
}

/// Whether rustdoc would try `dest` as an intra-doc link: non-empty, and (before any `#`
/// fragment) only the characters rustdoc accepts in a path (`should_ignore_link` in rustdoc's
/// `collect_intra_doc_links`): alphanumerics and `:_<>, !*&;@()`.
fn rust_path(dest: &str) -> bool {
    let path = dest.split('#').next().unwrap_or_default();
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
}
