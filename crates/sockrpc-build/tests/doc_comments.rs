//! No comment in a `.proto` becomes a doctest: every code block rustdoc would find in the
//! generated docs (services and rpcs rendered here, messages by prost-build) is tagged as text,
//! ```` ```rust ```` blocks in message comments too (`rust_blocks.proto`, imported by
//! `tricky.proto`). Nor does any HTML in one reach rustdoc as HTML (`invalid_html_tags`), nor
//! does a link rustdoc resolves itself fail `cargo doc` (`redundant_explicit_links`).

mod support;

use std::path::Path;

use pulldown_cmark::{CodeBlockKind, Event, Parser, Tag};
use support::doc_blocks;

/// The info strings of the code blocks in `doc` tagged otherwise than `text` (services and
/// rpcs) or `text,text` (prost-build's tag for a block tagged `text`): indented blocks, and
/// fenced ones such as prost-build's `compile_fail` for ```` ```rust ````.
fn doctests(doc: &str) -> Vec<String> {
    Parser::new_ext(doc, support::rustdoc_markdown())
        .filter_map(|event| match event {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Indented)) => Some("<indented>".to_owned()),
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info)))
                if !(&*info == "text" || &*info == "text,text") =>
            {
                Some(info.to_string())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn tricky_proto_comments_hold_no_doctests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/proto");
    let out = support::generate(&[root.join("sockrpc/test/tricky.proto")], &[&root])
        .expect("tricky.proto generates");
    let mut blocks = 0;
    for file in out.files() {
        let source = std::fs::read_to_string(&file).expect("read generated file");
        for doc in doc_blocks(&source) {
            let found = doctests(&doc);
            assert!(
                found.is_empty(),
                "{}: doc comment would run {found:?} as doctests:\n{doc}",
                file.display()
            );
            blocks += 1;
        }
    }
    // The comments with code in them are there to be checked.
    assert!(blocks > 100, "only {blocks} doc comments found");
    let tricky = out.source("sockrpc.test.tricky.rs");
    for expected in [
        "/// ```text\n    /// heading_then_indented();",
        "/// > ```text\n    /// > quoted_fence();",
        "/// Msg msg = Msg.newBuilder()",
    ] {
        assert!(
            tricky.contains(expected),
            "generated docs lack {expected:?}"
        );
    }
    // Message, field, oneof and enum comments with Rust in them, which would compile.
    let rust_blocks = out.source("sockrpc.test.rust_blocks.rs");
    for expected in [
        "/// ```text,text\n/// let answer = 6 * 7;",
        "    /// ```text,text\n    /// let field: i32 = \"text\";",
        "    /// ```text,text\n    /// unreachable_code();",
    ] {
        assert!(
            rust_blocks.contains(expected),
            "generated docs lack {expected:?}"
        );
    }
}

/// Direction controls in comments (which rustc refuses in doc comments) are dropped from the
/// docs of services, rpcs, messages and fields alike; the text around them stays.
#[test]
fn direction_controls_never_reach_the_docs() {
    let protos = tempfile::tempdir().expect("temp dir");
    let bidi = protos.path().join("bidi.proto");
    std::fs::write(
        &bidi,
        "syntax = \"proto3\";\npackage bidi;\n\
         // Message says \u{202B}שלום\u{202C} here.\n\
         message M {\n  // Field \u{2067}x\u{2069}.\n  string s = 1;\n}\n\
         // Service \u{202E}override\u{202C} comment.\n\
         service Bidi {\n  // Rpc \u{202D}ltr\u{202C} comment.\n  rpc Get(M) returns (M);\n}\n",
    )
    .expect("write");
    let out = support::generate(&[&bidi], &[protos.path()]).expect("generates");
    let source = out.source("bidi.rs");
    assert!(
        !source.contains(|c| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')),
        "a direction control reached the generated code"
    );
    for kept in [
        "שלום",
        "Field x.",
        "Service override comment.",
        "Rpc ltr comment.",
    ] {
        assert!(source.contains(kept), "{kept:?} missing from the docs");
    }
}

/// HTML in message, field, oneof, enum and value comments (and in service and rpc comments)
/// reaches the docs as text: rustdoc finds no tag in them to report as unclosed.
#[test]
fn html_in_comments_reaches_the_docs_as_text() {
    let protos = tempfile::tempdir().expect("temp dir");
    let file = protos.path().join("html.proto");
    std::fs::write(
        &file,
        "syntax = \"proto3\"; package html;\n\
         // A Vec<u8> named <package>.<service>, <b>bold</b>, `Code<T>` and <https://a.b/c>.\n\
         message M {\n\
           // rejected_<signal> of Map<K, V>.\n\
           string s = 1;\n\
           // <div>\n\
           // a block\n\
           // </div>\n\
           oneof o { int32 i = 2; }\n\
         }\n\
         // One of <A>, <B>.\n\
         enum E {\n\
           // The <default>.\n\
           E_UNSPECIFIED = 0;\n\
         }\n\
         // Serves List<M>.\n\
         service S {\n\
           // Gets <one>.\n\
           rpc Get(M) returns (M);\n\
         }\n",
    )
    .expect("write");
    let out = support::generate(&[&file], &[protos.path()]).expect("generates");
    let source = out.source("html.rs");
    let docs = doc_blocks(&source);
    for doc in &docs {
        let html = support::html_in(doc);
        assert!(html.is_empty(), "HTML {html:?} in:\n{doc}");
    }
    let all = docs.join("\n");
    for shown in [
        "A Vec\\<u8> named \\<package>.\\<service>",
        "`Code<T>`",
        "<https://a.b/c>",
        "rejected\\_\\<signal>",
        "The \\<default>.",
    ] {
        assert!(all.contains(shown), "{shown:?} not in:\n{all}");
    }
}

/// A `[text](target)` link stays a link, and rustdoc resolves a target that is a Rust path:
/// `[Greeter](Greeter)` on the trait `Greeter`, or `[Option](Option)`, is then a redundant
/// explicit link, which fails `cargo doc` under `-D warnings` unless the generated modules
/// allow it (seen with `tests/proto/brought/names/names.proto` before they did).
#[test]
fn links_rustdoc_resolves_itself_are_allowed_in_the_generated_modules() {
    let protos = tempfile::tempdir().expect("temp dir");
    let file = protos.path().join("links.proto");
    std::fs::write(
        &file,
        "syntax = \"proto3\"; package links;\n\
         message M { string s = 1; }\n\
         // See [Greeter](Greeter) and [Option](Option).\n\
         service Greeter {\n\
           // Like [`Vec`](Vec).\n\
           rpc Get(M) returns (M);\n\
         }\n",
    )
    .expect("write");
    let out = support::generate(&[&file], &[protos.path()]).expect("generates");
    let source = out.source("links.rs");
    assert!(source.contains("[Greeter](Greeter) and [Option](Option)"));
    assert!(source.contains("[`Vec`](Vec)"));
    for name in ["greeter_client", "greeter_server"] {
        assert!(
            source_allows(&source, name),
            "mod {name} does not allow rustdoc::redundant_explicit_links"
        );
    }
}

/// Whether `mod name`'s inner `#![allow(..)]` in `source` names `redundant_explicit_links`.
fn source_allows(source: &str, name: &str) -> bool {
    let start = source
        .find(&format!("pub mod {name} {{"))
        .unwrap_or_else(|| panic!("mod {name} in the source"));
    let rest = &source[start..];
    let allow = rest.find("#![allow(").expect("an inner allow");
    let end = rest[allow..].find(")]").expect("its end") + allow;
    rest[allow..end].contains("rustdoc::redundant_explicit_links")
}

/// In the comments prost-build renders (the package module allows no rustdoc lint), a link
/// whose target rustdoc reads as a Rust path loses its link: `[Option](Option)` on a message
/// `Option` is a redundant explicit link, `[x](NoSuchItem)` a broken one, and either fails
/// `cargo doc` under `-D warnings`. URLs stay links.
#[test]
fn path_links_in_message_comments_become_text() {
    let protos = tempfile::tempdir().expect("temp dir");
    let file = protos.path().join("paths.proto");
    std::fs::write(
        &file,
        "syntax = \"proto3\"; package paths;\n\
         // See [Option](Option), [x](NoSuchItem) and [the site](https://example.com).\n\
         message Option {\n\
           // The [`Vec`](Vec).\n\
           string s = 1;\n\
         }\n",
    )
    .expect("write");
    let out = support::generate(&[&file], &[protos.path()]).expect("generates");
    let source = out.source("paths.rs");
    for shown in [
        "\\[Option\\](Option)",
        "\\[x\\](NoSuchItem)",
        "\\[`Vec`\\](Vec)",
        "[the site](<https://example.com>)",
    ] {
        assert!(source.contains(shown), "{shown:?} not in:\n{source}");
    }
}
