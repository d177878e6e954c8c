//! Helpers shared by the integration tests: run the generator into a temp
//! dir and look at the result through `syn`.

#![allow(dead_code, unreachable_pub)]

use std::fs;
use std::path::{Path, PathBuf};

use quote::ToTokens;
use syn::{Attribute, Expr, ImplItem, Item, Lit, Meta, TraitItem};

/// Generated files, parsed.
pub struct Output {
    /// Keeps the output directory alive for the test's duration.
    pub dir: tempfile::TempDir,
}

impl Output {
    /// The raw text of `<package>.rs`.
    pub fn source(&self, file: &str) -> String {
        fs::read_to_string(self.dir.path().join(file))
            .unwrap_or_else(|e| panic!("reading {file}: {e}"))
    }

    /// `<package>.rs`, parsed.
    pub fn parse(&self, file: &str) -> syn::File {
        let source = self.source(file);
        syn::parse_file(&source).unwrap_or_else(|e| panic!("{file} does not parse: {e}"))
    }

    /// Every `.rs` file written.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(self.dir.path())
            .expect("read out dir")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "rs"))
            .collect();
        files.sort();
        files
    }
}

/// Runs the default builder (rerun lines off) into a fresh temp dir.
pub fn generate(
    protos: &[impl AsRef<Path>],
    includes: &[impl AsRef<Path>],
) -> std::io::Result<Output> {
    let dir = tempfile::tempdir().expect("temp dir");
    sockrpc_build::configure()
        .out_dir(dir.path())
        .emit_rerun_if_changed(false)
        .include_file("_includes.rs")
        .compile_protos(protos, includes)?;
    Ok(Output { dir })
}

/// The items of `mod name` among `items`.
pub fn module<'a>(items: &'a [Item], name: &str) -> &'a [Item] {
    items
        .iter()
        .find_map(|item| match item {
            Item::Mod(m) if m.ident == name => m.content.as_ref().map(|(_, items)| &items[..]),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no module `{name}`"))
}

/// Whether a module `name` exists among `items`.
pub fn has_module(items: &[Item], name: &str) -> bool {
    items
        .iter()
        .any(|item| matches!(item, Item::Mod(m) if m.ident == name))
}

/// Names of the methods in all inherent impls of `ty`.
pub fn inherent_fns(items: &[Item], ty: &str) -> Vec<String> {
    let mut fns = Vec::new();
    for item in items {
        if let Item::Impl(imp) = item {
            let self_ty = &imp.self_ty;
            let is_ty = matches!(&**self_ty, syn::Type::Path(p)
                if p.path.segments.last().is_some_and(|s| s.ident == ty));
            if imp.trait_.is_none() && is_ty {
                for it in &imp.items {
                    if let ImplItem::Fn(f) = it {
                        fns.push(f.sig.ident.to_string());
                    }
                }
            }
        }
    }
    fns
}

/// The trait `name` among `items`.
pub fn find_trait<'a>(items: &'a [Item], name: &str) -> &'a syn::ItemTrait {
    items
        .iter()
        .find_map(|item| match item {
            Item::Trait(t) if t.ident == name => Some(t),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no trait `{name}`"))
}

/// Method names of a trait.
pub fn trait_fns(t: &syn::ItemTrait) -> Vec<String> {
    t.items
        .iter()
        .filter_map(|it| match it {
            TraitItem::Fn(f) => Some(f.sig.ident.to_string()),
            _ => None,
        })
        .collect()
}

/// Doc comment text of a trait method.
pub fn trait_fn_docs(t: &syn::ItemTrait, name: &str) -> String {
    t.items
        .iter()
        .find_map(|it| match it {
            TraitItem::Fn(f) if f.sig.ident == name => Some(docs(&f.attrs)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no trait method `{name}`"))
}

/// Doc comment text of `attrs`, lines joined with `\n`.
pub fn docs(attrs: &[Attribute]) -> String {
    attrs
        .iter()
        .filter_map(|a| match &a.meta {
            Meta::NameValue(nv) if nv.path.is_ident("doc") => match &nv.value {
                Expr::Lit(l) => match &l.lit {
                    Lit::Str(s) => Some(s.value()),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Doc comment text of the struct `name` among `items`.
pub fn struct_docs(items: &[Item], name: &str) -> String {
    items
        .iter()
        .find_map(|item| match item {
            Item::Struct(s) if s.ident == name => Some(docs(&s.attrs)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no struct `{name}`"))
}

/// `tokens` as text with all whitespace removed, so expectations don't
/// depend on how tokens are spaced: `Request<super::M>` matches
/// `Request < super :: M >`.
pub fn compact(tokens: &impl ToTokens) -> String {
    squash(&tokens.to_token_stream().to_string())
}

/// `text` with all whitespace and trailing commas (`,>`, `,)`) removed, which
/// is all prettyplease varies with line length.
pub fn squash(text: &str) -> String {
    let squashed: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    squashed.replace(",>", ">").replace(",)", ")")
}

/// The method `name` in the inherent impls of `ty`.
pub fn inherent_fn<'a>(items: &'a [Item], ty: &str, name: &str) -> &'a syn::ImplItemFn {
    items
        .iter()
        .filter_map(|item| match item {
            Item::Impl(imp) if imp.trait_.is_none() => Some(imp),
            _ => None,
        })
        .filter(|imp| {
            matches!(&*imp.self_ty, syn::Type::Path(p)
                if p.path.segments.last().is_some_and(|s| s.ident == ty))
        })
        .flat_map(|imp| &imp.items)
        .find_map(|it| match it {
            ImplItem::Fn(f) if f.sig.ident == name => Some(f),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no method `{name}` on `{ty}`"))
}

/// The single parameter type (after `self`) and the return type of a
/// generated method, compacted.
pub fn param_and_return(sig: &syn::Signature) -> (String, String) {
    let params: Vec<String> = sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            syn::FnArg::Typed(t) => Some(compact(&t.ty)),
            syn::FnArg::Receiver(_) => None,
        })
        .collect();
    assert_eq!(params.len(), 1, "{}: {params:?}", sig.ident);
    let ret = match &sig.output {
        syn::ReturnType::Type(_, ty) => compact(ty),
        syn::ReturnType::Default => String::new(),
    };
    (params[0].clone(), ret)
}

/// The method `name` of a trait.
pub fn trait_fn<'a>(t: &'a syn::ItemTrait, name: &str) -> &'a syn::TraitItemFn {
    t.items
        .iter()
        .find_map(|it| match it {
            TraitItem::Fn(f) if f.sig.ident == name => Some(f),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no trait method `{name}`"))
}

/// Associated type names of a trait.
pub fn trait_types(t: &syn::ItemTrait) -> Vec<String> {
    t.items
        .iter()
        .filter_map(|it| match it {
            TraitItem::Type(ty) => Some(ty.ident.to_string()),
            _ => None,
        })
        .collect()
}

/// The associated type `name` of a trait.
pub fn trait_type<'a>(t: &'a syn::ItemTrait, name: &str) -> &'a syn::TraitItemType {
    t.items
        .iter()
        .find_map(|it| match it {
            TraitItem::Type(ty) if ty.ident == name => Some(ty),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no associated type `{name}`"))
}

/// The bounds of the associated type `name`, compacted.
pub fn trait_type_bounds(t: &syn::ItemTrait, name: &str) -> String {
    compact(&trait_type(t, name).bounds)
}

/// Expected shapes of a generated rpc, written with short names that
/// [`expand`] turns into the fully-qualified paths the generator emits.
pub fn expand(short: &str) -> String {
    let mut out = short.to_owned();
    for (word, path) in [
        ("Result<", "::core::result::"),
        ("Future<", "::core::future::"),
        ("Send", "::core::marker::"),
        ("IntoStreamingRequest<", "::sockrpc::codegen::"),
        ("IntoRequest<", "::sockrpc::codegen::"),
        ("Request<", "::sockrpc::codegen::"),
        ("Response<", "::sockrpc::codegen::"),
        ("Streaming<", "::sockrpc::codegen::"),
        ("Stream<", "::sockrpc::codegen::"),
        ("Status", "::sockrpc::codegen::"),
    ] {
        out = replace_word(&out, word, &format!("{path}{word}"));
    }
    squash(&out)
}

/// Replaces `word` where it starts a name that isn't already qualified:
/// not after a letter, digit, `_` or `:`.
fn replace_word(text: &str, word: &str, with: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(word) {
        out.push_str(&rest[..i]);
        let qualified = out
            .chars()
            .last()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
        out.push_str(if qualified { word } else { with });
        rest = &rest[i + word.len()..];
    }
    out.push_str(rest);
    out
}

/// The `impl Service<Call>` of the server module `items`, compacted.
pub fn service_impl(items: &[Item]) -> String {
    items
        .iter()
        .find_map(|item| match item {
            Item::Impl(imp)
                if imp.trait_.as_ref().is_some_and(|(path, _)| {
                    path.segments.last().is_some_and(|s| s.ident == "Service")
                }) =>
            {
                Some(compact(imp))
            }
            _ => None,
        })
        .expect("an `impl Service<Call>`")
}

/// The handler function the `match call.method_bytes()` arm of the server module
/// `items` uses for the rpc `proto_name` (`unary_handler`, ...).
pub fn dispatch_handler(items: &[Item], proto_name: &str) -> String {
    let squashed = service_impl(items);
    let arm = format!("b{proto_name:?}=>{{");
    let start = squashed
        .find(&arm)
        .unwrap_or_else(|| panic!("no dispatch arm for {proto_name}"))
        + arm.len();
    let rest = &squashed[start..];
    let end = rest.find("_handler(").expect("a handler call") + "_handler".len();
    let begin = rest[..end].rfind("::").expect("a qualified handler") + 2;
    rest[begin..end].to_owned()
}

/// The doc comment blocks of a generated file: runs of `///` lines, markers stripped.
pub fn doc_blocks(source: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in source.lines() {
        match line.trim_start().strip_prefix("///") {
            Some(text) => current.push(text),
            None if !current.is_empty() => {
                // rustdoc strips the indentation all lines share.
                let common = current
                    .iter()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| l.len() - l.trim_start().len())
                    .min()
                    .unwrap_or(0);
                let lines: Vec<&str> = current
                    .iter()
                    .map(|l| l.get(common..).unwrap_or(""))
                    .collect();
                blocks.push(lines.join("\n"));
                current.clear();
            }
            None => {}
        }
    }
    blocks
}

/// The HTML rustdoc would find in `doc` (inline tags and HTML blocks), which it checks with
/// `invalid_html_tags`.
pub fn html_in(doc: &str) -> Vec<String> {
    use pulldown_cmark::{Event, Parser};
    Parser::new_ext(doc, rustdoc_markdown())
        .filter_map(|event| match event {
            Event::Html(html) | Event::InlineHtml(html) => Some(html.to_string()),
            _ => None,
        })
        .collect()
}

/// The Markdown extensions rustdoc reads docs with.
pub fn rustdoc_markdown() -> pulldown_cmark::Options {
    use pulldown_cmark::Options;
    Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
}
