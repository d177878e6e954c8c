//! Helpers shared by the integration tests: run the generator into a temp
//! dir and look at the result through `syn`.

#![allow(dead_code, unreachable_pub)]

use std::fs;
use std::path::{Path, PathBuf};

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
