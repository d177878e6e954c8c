//! Reading `.proto` files as protoc does where protox alone would not: a UTF-8 byte order mark
//! at the start is skipped (in requested files and imports, with error places counted from
//! after it), and an `edition = "2023"` file is refused with an error saying editions are not
//! supported.

mod support;

use support::{find_trait, generate, module, trait_fns};

const BOM: &str = "\u{feff}";

#[test]
fn files_starting_with_a_byte_order_mark_generate() {
    let protos = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        protos.path().join("types.proto"),
        format!("{BOM}syntax = \"proto3\";\npackage bom;\nmessage Ping {{ uint64 n = 1; }}\n"),
    )
    .expect("write");
    let service = protos.path().join("service.proto");
    std::fs::write(
        &service,
        format!(
            "{BOM}// A leading comment.\nsyntax = \"proto3\";\npackage bom;\nimport \"types.proto\";\n\
             // Pings.\nservice Pinger {{ rpc Ping(Ping) returns (Ping); }}\n"
        ),
    )
    .expect("write");
    let out = generate(&[&service], &[protos.path()]).expect("a BOM is skipped");
    let file = out.parse("bom.rs");
    let pinger = find_trait(module(&file.items, "pinger_server"), "Pinger");
    assert_eq!(trait_fns(pinger), ["ping"]);
    // Comments are found where they are: source info counts from after the mark.
    assert!(support::trait_fn_docs(pinger, "ping").is_empty());
    assert!(support::docs(&pinger.attrs).contains("Pings."));
    assert!(out.source("bom.rs").contains("pub struct Ping"));
}

#[test]
fn errors_in_a_file_with_a_byte_order_mark_are_placed_as_an_editor_shows_them() {
    let protos = tempfile::tempdir().expect("temp dir");
    let bad = protos.path().join("bad.proto");
    std::fs::write(
        &bad,
        format!("{BOM}syntax = \"proto3\"; message M {{ Missing m = 1; }}\n"),
    )
    .expect("write");
    let Err(err) = generate(&[&bad], &[protos.path()]) else {
        panic!("an unknown type compiled");
    };
    let text = err.to_string();
    // `Missing` starts at the 32nd character after the mark.
    assert!(text.starts_with("bad.proto:1:32: "), "{text}");
    assert!(text.contains("Missing"), "{text}");
}

#[test]
fn editions_are_refused_by_name() {
    let protos = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        protos.path().join("ed.proto"),
        "// Editions.\nedition = \"2023\";\npackage ed;\nmessage E { int32 x = 1; }\n",
    )
    .expect("write");
    let importer = protos.path().join("importer.proto");
    std::fs::write(
        &importer,
        "syntax = \"proto3\";\npackage imp;\nimport \"ed.proto\";\n",
    )
    .expect("write");
    for requested in [protos.path().join("ed.proto"), importer] {
        let Err(err) = generate(&[&requested], &[protos.path()]) else {
            panic!("an editions file compiled");
        };
        let text = err.to_string();
        assert!(text.starts_with("ed.proto:2:1: "), "{text}");
        assert!(text.contains("editions are not supported"), "{text}");
        assert!(text.contains("edition = \"2023\""), "{text}");
    }
}
