//! `option deprecated = true` on a whole service: the generated client struct, every client
//! method and every server trait method carry `#[deprecated]` (as an rpc marked so on its own
//! does), while the server trait and struct stay unmarked so that serving the service warns
//! nobody; the generated modules allow `deprecated` for their own uses. A service without the
//! option next to it is left alone.

mod support;

use std::path::Path;

use support::{find_trait, module, trait_fn};

/// The rpcs of the deprecated service `Sunset`, as Rust methods.
const SUNSET_RPCS: [&str; 4] = ["next", "count", "sum", "double"];

/// `tests/proto/sockrpc/test/sunset.proto`: the deprecated `Sunset` and `Dawn` beside it.
fn generated() -> (String, syn::File) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/proto");
    let out = support::generate(&[root.join("sockrpc/test/sunset.proto")], &[&root])
        .expect("sunset.proto generates");
    let file = "sockrpc.test.sunset.rs";
    (out.source(file), out.parse(file))
}

fn deprecated(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| a.path().is_ident("deprecated"))
}

/// The struct `name` among `items`.
fn find_struct<'a>(items: &'a [syn::Item], name: &str) -> &'a syn::ItemStruct {
    items
        .iter()
        .find_map(|item| match item {
            syn::Item::Struct(s) if s.ident == name => Some(s),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no struct `{name}`"))
}

/// Whether the module `name`'s inner attributes allow the `deprecated` lint.
fn module_allows_deprecated(items: &[syn::Item], name: &str) -> bool {
    items.iter().any(|item| match item {
        syn::Item::Mod(m) if m.ident == name => m.attrs.iter().any(|a| {
            matches!(a.style, syn::AttrStyle::Inner(_))
                && a.path().is_ident("allow")
                && support::compact(&a.meta).contains("deprecated")
        }),
        _ => false,
    })
}

#[test]
fn a_deprecated_service_marks_its_client_and_every_rpc() {
    let (_, file) = generated();
    let client = module(&file.items, "sunset_client");
    assert!(
        deprecated(&find_struct(client, "SunsetClient").attrs),
        "SunsetClient lacks #[deprecated]"
    );
    for rpc in SUNSET_RPCS {
        let method = support::inherent_fn(client, "SunsetClient", rpc);
        assert!(
            deprecated(&method.attrs),
            "SunsetClient::{rpc} lacks #[deprecated]"
        );
    }
    // The client's own helpers are not rpcs: the struct's mark covers them.
    let connect = support::inherent_fn(client, "SunsetClient", "connect");
    assert!(!deprecated(&connect.attrs));

    let server = module(&file.items, "sunset_server");
    let service = find_trait(server, "Sunset");
    for rpc in SUNSET_RPCS {
        assert!(
            deprecated(&trait_fn(service, rpc).attrs),
            "trait method Sunset::{rpc} lacks #[deprecated]"
        );
    }
    // Implementing and serving the service is not what is deprecated.
    assert!(!deprecated(&service.attrs), "the trait itself is marked");
    assert!(!deprecated(&find_struct(server, "SunsetServer").attrs));
}

#[test]
fn generated_modules_allow_their_own_uses_of_deprecated_items() {
    let (_, file) = generated();
    for name in ["sunset_client", "sunset_server"] {
        assert!(
            module_allows_deprecated(&file.items, name),
            "`{name}` does not allow `deprecated`: its own uses of the marked items would warn"
        );
    }
}

#[test]
fn a_service_without_the_option_is_not_marked() {
    let (source, file) = generated();
    let client = module(&file.items, "dawn_client");
    assert!(!deprecated(&find_struct(client, "DawnClient").attrs));
    assert!(!deprecated(
        &support::inherent_fn(client, "DawnClient", "next").attrs
    ));
    let service = find_trait(module(&file.items, "dawn_server"), "Dawn");
    assert!(!deprecated(&trait_fn(service, "next").attrs));
    // One mark on the struct plus one per rpc, on client and trait: nothing else.
    let marks = source.matches("#[deprecated]").count();
    assert_eq!(marks, 1 + 2 * SUNSET_RPCS.len(), "{source}");
}
