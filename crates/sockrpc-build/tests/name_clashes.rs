//! Protos that protox accepts but prost-build cannot render: each must fail the build with an
//! error naming the file and both proto names, never panic inside prost-build and never write
//! code rustc refuses inside `OUT_DIR`.

mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};

use support::generate;

/// Runs the builder on `proto` (as `clash.proto`), and returns its error, failing the test if
/// it panics or succeeds.
fn refused(proto: &str) -> String {
    let src = tempfile::tempdir().expect("temp dir");
    std::fs::write(src.path().join("clash.proto"), proto).expect("write proto");
    let run = catch_unwind(AssertUnwindSafe(|| {
        generate(&[src.path().join("clash.proto")], &[src.path()]).map(|_| ())
    }));
    match run {
        Err(_) => panic!("the builder panicked on:\n{proto}"),
        Ok(Ok(())) => panic!("the builder accepted:\n{proto}"),
        Ok(Err(err)) => {
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
            err.to_string()
        }
    }
}

/// Runs the builder on `proto`, which must succeed.
fn accepted(proto: &str) {
    let src = tempfile::tempdir().expect("temp dir");
    std::fs::write(src.path().join("fine.proto"), proto).expect("write proto");
    if let Err(err) = generate(&[src.path().join("fine.proto")], &[src.path()]) {
        panic!("refused: {err}\n{proto}");
    }
}

#[test]
fn enum_values_prost_names_alike_are_refused() {
    // prost-build 0.14 panics on each: "Generated enum variant names overlap".
    for (proto, values, variant) in [
        (
            "syntax = \"proto3\"; package p; enum E { FOO_BAR = 0; FooBar = 1; }",
            "`FOO_BAR` and `FooBar`",
            "`E::FooBar`",
        ),
        (
            "syntax = \"proto2\"; package p; enum Color { COLOR_RED = 0; RED = 1; }",
            "`COLOR_RED` and `RED`",
            "`Color::Red`",
        ),
        (
            "syntax = \"proto3\"; package p; message M { enum Kind { KIND_A = 0; A = 1; } }",
            "`KIND_A` and `A`",
            "`Kind::A`",
        ),
    ] {
        let msg = refused(proto);
        assert!(
            msg.contains("clash.proto") && msg.contains(values) && msg.contains(variant),
            "{msg}"
        );
    }
    // Aliases share a number and prost-build gives them no variant; distinct names are fine.
    accepted(
        "syntax = \"proto3\"; package p; \
         enum E { option allow_alias = true; FOO_BAR = 0; FooBar = 0; FOO_BAR2 = 1; } \
         enum Color { COLOR_RED = 0; COLORFUL = 1; }",
    );
}

#[test]
fn names_of_underscores_only_are_refused() {
    // prost-build 0.14 panics on the first five (its output does not parse) and writes
    // `pub mod  { .. }` into the include file for the last.
    for (proto, name) in [
        (
            "syntax = \"proto3\"; package p; message _ { int32 a = 1; }",
            "message `p._`",
        ),
        (
            "syntax = \"proto3\"; package p; message M { int32 __ = 1; }",
            "field `p.M.__`",
        ),
        (
            "syntax = \"proto3\"; package p; message M { oneof _ { int32 a = 1; } }",
            "oneof `p.M._`",
        ),
        (
            "syntax = \"proto3\"; package p; enum _ { A = 0; }",
            "enum `p._`",
        ),
        (
            "syntax = \"proto3\"; package p; enum E { _ = 0; }",
            "enum value `p.E._`",
        ),
        (
            "syntax = \"proto3\"; package a._; message M {}",
            "package `a._`",
        ),
    ] {
        let msg = refused(proto);
        assert!(msg.contains("clash.proto") && msg.contains(name), "{msg}");
    }
    // A leading underscore keeps a name: `_1` is `_1`, `_a` is `a`.
    accepted("syntax = \"proto3\"; package p; message _M { int32 _1 = 1; int32 _a = 2; }");
    // An alias (a number already used) gets no variant from prost-build, so no name at all.
    accepted("syntax = \"proto3\"; package p; enum E { option allow_alias = true; A = 0; _ = 0; }");
}

#[test]
fn fields_prost_names_alike_are_refused() {
    // prost-build 0.14 writes each, and rustc refuses the code: E0124 (a struct field declared
    // twice), E0428 (a variant defined twice) or E0592 (an accessor method defined twice).
    for (proto, names, rust) in [
        (
            "syntax = \"proto2\"; package p; \
             message M { optional int32 FooBar = 1; optional int32 foo_bar = 2; }",
            "field `FooBar` and field `foo_bar`",
            "the Rust field `foo_bar`",
        ),
        (
            "syntax = \"proto3\"; package p; message M { int32 Kind = 1; oneof kind { int32 a = 2; } }",
            "oneof `kind` and field `Kind`",
            "the Rust field `kind`",
        ),
        (
            "syntax = \"proto3\"; package p; \
             message M { int32 foo_bar = 1; oneof fooBar { int32 a = 2; } }",
            "oneof `fooBar` and field `foo_bar`",
            "the Rust field `foo_bar`",
        ),
        (
            "syntax = \"proto2\"; package p; \
             message M { message N { oneof k { int32 FooBar = 1; int32 foo_bar = 2; } } }",
            "oneof `p.M.N.k`: field `FooBar` and field `foo_bar`",
            "the variant `K::FooBar`",
        ),
        (
            "syntax = \"proto3\"; package p; enum E { A = 0; } message M { E foo = 1; E set_foo = 2; }",
            "field `foo` and field `set_foo`",
            "the accessor method `set_foo`",
        ),
    ] {
        let msg = refused(proto);
        assert!(
            msg.contains("clash.proto") && msg.contains(names) && msg.contains(rust),
            "{msg}"
        );
    }
    // Distinct Rust names, and names that meet in different namespaces (a struct field and a
    // method, a oneof's enum and a field) compile.
    accepted(
        "syntax = \"proto2\"; package p; enum E { A = 0; } \
         message M { optional int32 foo_bar = 1; optional int32 foo_bar2 = 2; \
         optional E kind = 3; repeated int32 set_kind = 4; repeated int32 push_kind = 5; \
         oneof Choice { int32 choice_a = 6; int32 choiceB = 7; } }",
    );
}

#[test]
fn a_oneof_named_like_a_nested_type_is_accepted() {
    // prost-build names such a oneof's enum `<Name>OneOf` (its `OneofField::type_name`), as in
    // its own test `oneof_name_conflict.proto`: `bakery::Bread` and `bakery::BreadOneOf`.
    let proto = "syntax = \"proto3\"; package p; \
                 message Bakery { message Bread { int32 weight = 3; } \
                 enum Kind { K = 0; } oneof bread { string a = 1; Bread b = 2; } \
                 oneof kind { int32 c = 4; } }";
    accepted(proto);
    let src = tempfile::tempdir().expect("temp dir");
    std::fs::write(src.path().join("fine.proto"), proto).expect("write proto");
    let out = generate(&[src.path().join("fine.proto")], &[src.path()]).expect("generates");
    let code = out.source("p.rs");
    for item in [
        "pub enum BreadOneOf",
        "pub struct Bread",
        "pub enum KindOneOf",
        "pub enum Kind ",
    ] {
        assert!(code.contains(item), "no `{item}` in:\n{code}");
    }
    // The renamed enum still meets a nested type of its new name.
    let msg = refused(
        "syntax = \"proto3\"; package p; message M { message Bread {} message BreadOneOf {} \
         oneof bread { string a = 1; } }",
    );
    assert!(
        msg.contains("`p.M.BreadOneOf`") && msg.contains("`p::m::BreadOneOf`"),
        "{msg}"
    );
}

/// Runs `builder` on `a.proto` and `a_b.proto` (package `a.b`, holding `child`), with or without
/// an include file.
fn parent_and_child_with(
    builder: sockrpc_build::Builder,
    parent: &str,
    child: &str,
    include_file: bool,
) -> std::io::Result<()> {
    let src = tempfile::tempdir().expect("temp dir");
    let out = tempfile::tempdir().expect("temp dir");
    std::fs::write(src.path().join("a.proto"), parent).expect("write proto");
    std::fs::write(src.path().join("a_b.proto"), child).expect("write proto");
    let mut builder = builder.out_dir(out.path()).emit_rerun_if_changed(false);
    if include_file {
        builder = builder.include_file("_includes.rs");
    }
    let protos = [src.path().join("a.proto"), src.path().join("a_b.proto")];
    builder.compile_protos(&protos, &[src.path()])
}

/// [`parent_and_child_with`] the default builder, package `a.b` holding `message D {}`.
fn parent_and_child(parent: &str, include_file: bool) -> std::io::Result<()> {
    let child = "syntax = \"proto3\"; package a.b; message D {}";
    parent_and_child_with(sockrpc_build::configure(), parent, child, include_file)
}

#[test]
fn a_child_package_without_code_is_accepted() {
    // prost-build leaves a package it writes no code for out of the include file, so only the
    // message declares `a::b`: extensions only, or every type of `a.b` under an extern path.
    let nested = "syntax = \"proto3\"; package a; message B { message C {} }";
    let options = "syntax = \"proto2\"; package a.b; import \"google/protobuf/descriptor.proto\"; \
                   extend google.protobuf.FieldOptions { optional string note = 50001; }";
    parent_and_child_with(sockrpc_build::configure(), nested, options, true)
        .expect("extensions only");
    let external = sockrpc_build::configure().extern_path(".a.b", "::elsewhere::b");
    let child = "syntax = \"proto3\"; package a.b; message D {}";
    parent_and_child_with(external, nested, child, true).expect("a.b is extern");
}

#[test]
fn types_of_a_message_module_and_a_child_package_mounted_apart_are_accepted() {
    // Without an include file the two may be mounted apart, where their types of one name
    // (`a::b::D` twice) are two types.
    let same_name = "syntax = \"proto3\"; package a; message B { message D {} }";
    parent_and_child(same_name, false).expect("mounted apart");
    let err = parent_and_child(same_name, true).expect_err("nested by the include file");
    assert!(err.to_string().contains("message `a.B`"), "{err}");
}

#[test]
fn a_message_module_that_is_also_a_child_package_is_refused() {
    // prost-build writes `pub mod b` into `a.rs` and the include file nests `pub mod b` for
    // package `a.b` after including it: rustc reports E0428 (`b` defined twice).
    let nested = "syntax = \"proto3\"; package a; message B { message C {} }";
    let err = parent_and_child(nested, true).expect_err("refused");
    let msg = err.to_string();
    assert!(
        msg.contains("a.proto")
            && msg.contains("message `a.B`")
            && msg.contains("`a::b`")
            && msg.contains("package `a.b`"),
        "{msg}"
    );
    // Without an include file the packages may be mounted apart, unless `a` names a type of
    // `a.b`: prost-build writes `b::D`, which resolves into the message's module.
    parent_and_child(nested, false).expect("may be mounted apart");
    let naming = "syntax = \"proto3\"; package a; import \"a_b.proto\"; \
                  message B { enum K { Z = 0; } } message U { a.b.D d = 1; }";
    let err = parent_and_child(naming, false).expect_err("refused");
    assert!(err.to_string().contains("message `a.B`"), "{err}");
    // A message without nested items declares no module, and `a` naming the message's own
    // nested type (`b::C`) is no reference into `a.b`.
    parent_and_child("syntax = \"proto3\"; package a; message B {}", true).expect("no module");
    parent_and_child(
        "syntax = \"proto3\"; package a; message B { message C {} } message U { B.C c = 1; }",
        false,
    )
    .expect("names no type of `a.b`");
}
