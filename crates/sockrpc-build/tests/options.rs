//! The builder's codegen options (issue 12), read back from the generated source with `syn`:
//! default stubs, `#[deprecated]`, comments left out, `Debug` skipped, the well-known types
//! compiled in, attributes on the generated modules and types, client or server alone.

mod support;

use std::path::Path;

use support::{compact, find_trait, module, trait_fn, trait_fn_docs, trait_types};

const PROTO: &str = r#"
syntax = "proto3";
package opts.v1;
import "google/protobuf/empty.proto";

// The service's own comment.
service Legacy {
  // On its way out.
  rpc Old(google.protobuf.Empty) returns (google.protobuf.Empty) {
    option deprecated = true;
  }
  // Kept.
  rpc Current(Ping) returns (Ping);
  // Streams.
  rpc Watch(Ping) returns (stream Ping);
}

// A ping.
message Ping { uint64 seq = 1; }
"#;

/// Writes the proto into a temp dir and runs `builder` on it into another.
fn generate(
    builder: impl FnOnce(sockrpc_build::Builder) -> sockrpc_build::Builder,
) -> (tempfile::TempDir, tempfile::TempDir) {
    let protos = tempfile::tempdir().expect("temp dir");
    std::fs::write(protos.path().join("opts.proto"), PROTO).expect("write proto");
    let out = tempfile::tempdir().expect("temp dir");
    builder(
        sockrpc_build::configure()
            .out_dir(out.path())
            .emit_rerun_if_changed(false),
    )
    .compile_protos(&[protos.path().join("opts.proto")], &[protos.path()])
    .expect("generates");
    (protos, out)
}

fn parse(dir: &Path, file: &str) -> (String, syn::File) {
    let source = std::fs::read_to_string(dir.join(file)).expect("generated file");
    let parsed = syn::parse_file(&source).expect("parses");
    (source, parsed)
}

fn has_attr(attrs: &[syn::Attribute], name: &str) -> bool {
    attrs.iter().any(|a| a.path().is_ident(name))
}

#[test]
fn defaults_have_no_stubs_and_mark_deprecated_rpcs() {
    let (_protos, out) = generate(|b| b);
    let (_, file) = parse(out.path(), "opts.v1.rs");
    let server = module(&file.items, "legacy_server");
    let service = find_trait(server, "Legacy");
    assert!(trait_fn(service, "current").default.is_none());
    assert_eq!(trait_types(service), ["WatchStream"]);
    assert!(has_attr(&trait_fn(service, "old").attrs, "deprecated"));
    assert!(!has_attr(&trait_fn(service, "current").attrs, "deprecated"));
    let client = module(&file.items, "legacy_client");
    let old = support::inherent_fn(client, "LegacyClient", "old");
    assert!(has_attr(&old.attrs, "deprecated"));
    assert!(!has_attr(
        &support::inherent_fn(client, "LegacyClient", "current").attrs,
        "deprecated"
    ));
    // Docs from comments by default; google.protobuf.Empty is prost's `()`, nothing generated.
    assert!(trait_fn_docs(service, "current").contains("Kept."));
    let (source, _) = parse(out.path(), "opts.v1.rs");
    assert!(!source.contains("google::protobuf"));
    assert!(!out.path().join("google.protobuf.rs").exists());
}

/// Every client method names its rpc with an `RpcMethod` built in a `const` block: its path is
/// checked and split at compile time, not searched again on each call (it was, in
/// `Client::prepare`: about 130 instructions of a unary call).
#[test]
fn client_methods_build_their_rpc_method_at_compile_time() {
    let (_protos, out) = generate(|b| b);
    let (source, _) = parse(out.path(), "opts.v1.rs");
    let compact: String = source.split_whitespace().collect();
    let built = compact
        .matches("::sockrpc::codegen::RpcMethod::new(")
        .count();
    let in_const = compact
        .matches("const{::sockrpc::codegen::RpcMethod::new(")
        .count();
    assert_eq!(built, 3, "one per rpc of Legacy");
    assert_eq!(in_const, built, "an RpcMethod built at run time");
}

#[test]
fn default_stubs_give_every_method_a_body() {
    let (_protos, out) = generate(|b| b.generate_default_stubs(true));
    let (_, file) = parse(out.path(), "opts.v1.rs");
    let service = find_trait(module(&file.items, "legacy_server"), "Legacy");
    for name in ["old", "current", "watch"] {
        let method = trait_fn(service, name);
        let body = compact(method.default.as_ref().expect("a default body"));
        assert!(body.contains("unimplemented"), "{name}: {body}");
    }
    // No associated stream type: a streaming rpc returns a BoxStream.
    assert!(trait_types(service).is_empty());
    let watch = compact(&trait_fn(service, "watch").sig.output);
    assert!(watch.contains("BoxStream"), "{watch}");
}

#[test]
fn comments_can_be_left_out() {
    let (_protos, out) = generate(|b| b.disable_comments([".opts.v1.Legacy.Current"]));
    let (_, file) = parse(out.path(), "opts.v1.rs");
    let service = find_trait(module(&file.items, "legacy_server"), "Legacy");
    assert!(trait_fn_docs(service, "current").is_empty());
    assert!(trait_fn_docs(service, "watch").contains("Streams."));
    assert!(support::docs(&service.attrs).contains("own comment"));

    let (_protos, out) = generate(|b| b.disable_comments(["."]));
    let (source, file) = parse(out.path(), "opts.v1.rs");
    let service = find_trait(module(&file.items, "legacy_server"), "Legacy");
    assert!(support::docs(&service.attrs).is_empty());
    assert!(trait_fn_docs(service, "watch").is_empty());
    assert!(
        !source.contains("A ping."),
        "message comments are prost's: gone too"
    );
}

#[test]
fn debug_can_be_skipped_and_well_known_types_compiled() {
    let (_protos, out) = generate(|b| {
        b.skip_debug([".opts.v1.Ping"])
            .compile_well_known_types(true)
    });
    let (source, _) = parse(out.path(), "opts.v1.rs");
    assert!(source.contains("skip_debug"), "prost's skip_debug on Ping");
    // Empty is generated beside the package, not taken from prost-types.
    assert!(!source.contains("prost_types::Empty"));
    assert!(source.contains("google::protobuf::Empty"));
    let (wkt, _) = parse(out.path(), "google.protobuf.rs");
    assert!(wkt.contains("pub struct Empty"));
}

#[test]
fn attributes_land_on_the_generated_modules_and_types() {
    let (_protos, out) = generate(|b| {
        b.client_mod_attribute(".opts", "#[cfg(any())]")
            .client_attribute(".opts.v1.Legacy", "#[doc(alias = \"legacy_client\")]")
            .server_mod_attribute(".", "#[cfg(all())]")
            .server_attribute("opts.v1.Legacy", "#[doc(alias = \"legacy_server\")]")
            .trait_attribute("opts.v1.Legacy", "#[doc(alias = \"legacy_trait\")]")
            .client_attribute(".other", "#[doc(alias = \"not_here\")]")
    });
    let (source, _) = parse(out.path(), "opts.v1.rs");
    assert!(
        source.contains("#[cfg(any())]\npub mod legacy_client"),
        "{source}"
    );
    assert!(source.contains("#[cfg(all())]\npub mod legacy_server"));
    assert!(source.contains("#[doc(alias = \"legacy_client\")]"));
    // tonic-build's places: `server_attribute` on the struct, `trait_attribute` on the trait.
    assert_eq!(
        source.matches("#[doc(alias = \"legacy_server\")]").count(),
        1
    );
    assert!(source.contains("#[doc(alias = \"legacy_server\")]\n    pub struct LegacyServer"));
    assert!(source.contains("#[doc(alias = \"legacy_trait\")]\n    pub trait Legacy:"));
    assert!(!source.contains("not_here"));
}

/// Every impl block of a struct given a `#[cfg]` carries it, and so does everything naming a
/// trait given one; other attributes stay where they were given.
#[test]
fn cfg_attributes_gate_the_impls_of_what_they_gate() {
    let (_protos, out) = generate(|b| {
        b.server_attribute(".opts", "#[cfg(feature = \"s\")] #[doc(alias = \"srv\")]")
            .trait_attribute(".opts", "#[cfg(feature = \"t\")]")
            .client_attribute(".opts", "#[cfg(feature = \"c\")]")
    });
    let (source, file) = parse(out.path(), "opts.v1.rs");
    let cfgs = |attrs: &[syn::Attribute]| -> Vec<String> {
        attrs
            .iter()
            .filter(|a| a.path().is_ident("cfg"))
            .map(|a| compact(&a.meta))
            .collect()
    };
    let s = r#"cfg(feature="s")"#;
    let t = r#"cfg(feature="t")"#;
    let c = r#"cfg(feature="c")"#;
    let server = module(&file.items, "legacy_server");
    let mut impls = 0;
    for item in server {
        let (name, attrs) = match item {
            syn::Item::Struct(i) => (i.ident.to_string(), &i.attrs),
            syn::Item::Trait(i) => (i.ident.to_string(), &i.attrs),
            syn::Item::Impl(i) => {
                impls += 1;
                (compact(&i.self_ty), &i.attrs)
            }
            _ => continue,
        };
        let expected: &[&str] = match item {
            syn::Item::Struct(_) => &[s],
            syn::Item::Trait(_) => &[t],
            syn::Item::Impl(i) => match i.trait_.as_ref().map(|(p, _)| compact(p)) {
                Some(p) if p.contains("NamedService") || p.contains("Service<") => &[s, t],
                // The twin's impls: the blanket one, and the trait for `Arc<dyn DynLegacy>`.
                Some(p) if p == "DynLegacy" || p == "Legacy" => &[t],
                _ => &[s],
            },
            _ => unreachable!(),
        };
        assert_eq!(cfgs(attrs), expected, "{name}");
    }
    assert_eq!(
        impls, 7,
        "inherent, Clone, Debug, NamedService, Service, twin, Arc<dyn>"
    );
    assert_eq!(source.matches("#[doc(alias = \"srv\")]").count(), 1);
    let client = module(&file.items, "legacy_client");
    for item in client {
        if let syn::Item::Impl(i) = item {
            assert_eq!(cfgs(&i.attrs), [c], "{}", compact(&i.self_ty));
        }
    }
}

#[test]
fn client_or_server_alone() {
    let (_protos, out) = generate(|b| b.build_server(false));
    let (_, file) = parse(out.path(), "opts.v1.rs");
    assert!(support::has_module(&file.items, "legacy_client"));
    assert!(!support::has_module(&file.items, "legacy_server"));
    let (_protos, out) = generate(|b| b.build_client(false));
    let (_, file) = parse(out.path(), "opts.v1.rs");
    assert!(!support::has_module(&file.items, "legacy_client"));
    assert!(support::has_module(&file.items, "legacy_server"));
}

#[test]
fn extern_path_uses_an_existing_type() {
    let (_protos, out) = generate(|b| b.extern_path(".opts.v1.Ping", "::my_crate::Ping"));
    let (source, _) = parse(out.path(), "opts.v1.rs");
    assert!(!source.contains("pub struct Ping"), "not generated");
    assert!(source.contains("::sockrpc::codegen::Request<::my_crate::Ping>"));
}

#[test]
fn every_server_trait_has_an_object_safe_twin() {
    for stubs in [false, true] {
        let (_protos, out) = generate(|b| b.generate_default_stubs(stubs));
        let (source, file) = parse(out.path(), "opts.v1.rs");
        let server = module(&file.items, "legacy_server");
        let twin = find_trait(server, "DynLegacy");
        // Named apart from the trait's methods: `use legacy_server::*;` brings both traits into
        // scope, and `imp.current(..)` must not find two methods.
        let trait_methods = support::trait_fns(find_trait(server, "Legacy"));
        assert!(support::trait_fns(twin)
            .iter()
            .all(|name| !trait_methods.contains(name)));
        for name in ["old", "current", "watch"] {
            let output = compact(&trait_fn(twin, &format!("__dyn_{name}")).sig.output);
            assert!(
                output.contains("Pin<::std::boxed::Box<dyn"),
                "{name}: {output}"
            );
        }
        assert!(source.contains("impl Legacy for ::std::sync::Arc<dyn DynLegacy>"));
    }
}
