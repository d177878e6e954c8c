//! Generates code for the framework's own test protos and for every real-world `.proto` under
//! `../../shared/protos` (gRPC and OpenTelemetry), so that codegen is proven on input nobody here
//! wrote.
use std::path::{Path, PathBuf};

fn protos_under(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            protos_under(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    sockrpc_build::configure().bytes(["."]).compile_protos(
        &[
            "../proto/helloworld/helloworld.proto",
            "proto/sockrpc/test/echo.proto",
            "proto/sockrpc/test/counter.proto",
            "proto/sockrpc/test/stream.proto",
            "proto/sockrpc/test/blob.proto",
            // `include_proto!("kw.type.v1")` (tests/src/lib.rs) against prost-build's
            // `kw.r#type.v1.rs`.
            "proto/kw/type/v1/kw.proto",
            // The peer framework's test services (`tests/parity/`).
            "proto/parity/test.proto",
        ],
        &["../proto", "proto"],
    )?;

    let shared = Path::new("../../shared/protos");
    println!("cargo:rerun-if-changed={}", shared.display());
    let mut files = Vec::new();
    protos_under(shared, &mut files)?;
    files.sort();
    let out =
        PathBuf::from(std::env::var("OUT_DIR").map_err(std::io::Error::other)?).join("shared");
    std::fs::create_dir_all(&out)?;
    sockrpc_build::configure()
        .out_dir(&out)
        .include_file("shared.rs")
        .compile_protos(&files, &[shared])?;

    // Codegen options (issue 12): default stubs, and the well-known types compiled in.
    let options =
        PathBuf::from(std::env::var("OUT_DIR").map_err(std::io::Error::other)?).join("options");
    std::fs::create_dir_all(&options)?;
    sockrpc_build::configure()
        .out_dir(&options)
        .include_file("options.rs")
        .generate_default_stubs(true)
        .compile_well_known_types(true)
        .compile_protos(&["proto/sockrpc/test/options.proto"], &["proto"])?;

    // Tricky but valid input (keyword and helper names, acronyms, well-known types, other and
    // missing packages, every call shape, odd comments): `tests/tricky/` serves all of it.
    let tricky =
        PathBuf::from(std::env::var("OUT_DIR").map_err(std::io::Error::other)?).join("tricky");
    std::fs::create_dir_all(&tricky)?;
    sockrpc_build::configure()
        .out_dir(&tricky)
        .include_file("tricky.rs")
        .compile_protos(&["proto/sockrpc/test/tricky.proto"], &["proto"])?;

    proto2()?;
    brought()?;
    proto_more()?;
    codegen_gaps()
}

/// `tests/brought/`: protos a tonic user brings (services named like std and generated items,
/// nested packages, a service name in three packages, every call shape over `Empty`), served
/// end to end.
fn brought() -> std::io::Result<()> {
    let out =
        PathBuf::from(std::env::var("OUT_DIR").map_err(std::io::Error::other)?).join("brought");
    std::fs::create_dir_all(&out)?;
    sockrpc_build::configure()
        .out_dir(&out)
        .include_file("brought.rs")
        .compile_protos(
            &[
                "proto/brought/names/names.proto",
                "proto/brought/deep/deep.proto",
                "proto/brought/deep/nopkg.proto",
                "proto/brought/caps.proto",
            ],
            &["proto"],
        )
}

/// `tests/proto_more/`: protos real projects have that the sets above miss (keyword packages
/// `crate.self`, a deep package, two files in one package with `import public` and `import
/// weak`, well-known types streamed both ways, a CRLF file with a byte order mark), served by
/// `tests/proto_more/`.
fn proto_more() -> std::io::Result<()> {
    let out = PathBuf::from(std::env::var("OUT_DIR").map_err(std::io::Error::other)?).join("more");
    std::fs::create_dir_all(&out)?;
    sockrpc_build::configure()
        .out_dir(&out)
        .bytes(["."])
        .include_file("more.rs")
        .compile_protos(
            &[
                "proto_more/my_co/api_v2/x3/svc.proto",
                "proto_more/crlf/crlf.proto",
            ],
            &["proto_more"],
        )
}

/// `tests/proto2/`: a proto2 file (required fields, defaults, groups, extensions, closed enums,
/// packed fields) served end to end.
fn proto2() -> std::io::Result<()> {
    let out = PathBuf::from(std::env::var("OUT_DIR").map_err(std::io::Error::other)?).join("p2");
    std::fs::create_dir_all(&out)?;
    sockrpc_build::configure()
        .out_dir(&out)
        .include_file("p2.rs")
        .compile_protos(&["proto/sockrpc/p2/shop.proto"], &["proto"])
}

/// `tests/codegen_gaps/`: a glob-imported server module, child packages named like a service's
/// modules, a service gated by `#[cfg]` attributes, once on and once off, and tonic-build's
/// options.
fn codegen_gaps() -> std::io::Result<()> {
    let out = PathBuf::from(std::env::var("OUT_DIR").map_err(std::io::Error::other)?);
    let gaps = out.join("gaps");
    std::fs::create_dir_all(&gaps)?;
    sockrpc_build::configure()
        .out_dir(&gaps)
        .include_file("gaps.rs")
        .compile_protos(
            &[
                "proto/sockrpc/gaps/glob.proto",
                "proto/sockrpc/gaps/parent.proto",
                "proto/sockrpc/gaps/child.proto",
                "proto/sockrpc/gaps/child_client.proto",
            ],
            &["proto"],
        )?;
    // The same service twice, gated by a cfg that holds and by one that does not (whichever
    // features the crate is built with): both must compile.
    for (dir, cfg) in [
        ("gated_on", r#"#[cfg(feature = "bincode")]"#),
        ("gated_off", r#"#[cfg(not(feature = "bincode"))]"#),
    ] {
        let dir = out.join(dir);
        std::fs::create_dir_all(&dir)?;
        sockrpc_build::configure()
            .out_dir(&dir)
            .include_file("gated.rs")
            .server_attribute(".gaps.gated", cfg)
            .trait_attribute(".gaps.gated", cfg)
            .client_attribute(".gaps.gated", cfg)
            .compile_protos(&["proto/sockrpc/gaps/gated.proto"], &["proto"])?;
    }
    // Warnings: a package of its own, included under `#[deny(dead_code)]` (`lint.rs`).
    let lint = out.join("gaps_lint");
    std::fs::create_dir_all(&lint)?;
    sockrpc_build::configure()
        .out_dir(&lint)
        .compile_protos(&["proto/sockrpc/gaps/lint.proto"], &["proto"])?;
    // The shapes tonic-build's compile tests guard (names of prost's and std's items).
    let shapes = out.join("gaps_shapes");
    std::fs::create_dir_all(&shapes)?;
    sockrpc_build::configure()
        .out_dir(&shapes)
        .compile_protos(&["proto/sockrpc/gaps/shapes.proto"], &["proto"])?;
    // tonic's `included_service`: only the importing file is compiled.
    let included = out.join("gaps_included");
    std::fs::create_dir_all(&included)?;
    sockrpc_build::configure()
        .out_dir(&included)
        .compile_protos(&["proto/sockrpc/gaps/includer.proto"], &["proto"])?;
    // tonic-build's options: a custom codec, BTreeMap maps, a boxed field, the descriptor set
    // written out, then generated again from that set alone.
    let opts = out.join("opts");
    std::fs::create_dir_all(&opts)?;
    let set = out.join("opts.bin");
    sockrpc_build::configure()
        .out_dir(&opts)
        .btree_map([".gaps.opts.Tree.counts"])
        .boxed(".gaps.opts.Tree.leaf")
        .codec_path("crate::codec::CountingCodec")
        .file_descriptor_set_path(&set)
        .compile_protos(&["proto/sockrpc/gaps/opts.proto"], &["proto"])?;
    let from_set = out.join("opts_from_set");
    std::fs::create_dir_all(&from_set)?;
    let fds =
        prost::Message::decode(std::fs::read(&set)?.as_slice()).map_err(std::io::Error::other)?;
    sockrpc_build::configure()
        .out_dir(&from_set)
        .btree_map(["."])
        .boxed(".gaps.opts.Tree.leaf")
        .compile_fds(fds)?;
    // tonic-build's `use_arc_self(true)`, with the trait's own methods and with default stubs
    // (a streaming rpc's method then returns a `BoxStream`).
    for (dir, stubs) in [("arc_self", false), ("arc_self_stubs", true)] {
        let dir = out.join(dir);
        std::fs::create_dir_all(&dir)?;
        sockrpc_build::configure()
            .out_dir(&dir)
            .use_arc_self(true)
            .generate_default_stubs(stubs)
            .compile_protos(&["proto/sockrpc/gaps/arc_self.proto"], &["proto"])?;
    }
    // tonic-build's `skip_protoc_run`: the set `opts` wrote, read back in place of the
    // `.proto` files, which are not read (this one does not exist).
    let skipped = out.join("opts_skip");
    std::fs::create_dir_all(&skipped)?;
    sockrpc_build::configure()
        .out_dir(&skipped)
        .btree_map(["."])
        .boxed(".gaps.opts.Tree.leaf")
        .file_descriptor_set_path(&set)
        .skip_protoc_run()
        .compile_protos(&["proto/sockrpc/gaps/not_read.proto"], &["proto"])?;
    // `compile_protos_with_config` and `compile_fds_with_config`: prost-build's settings from
    // a `Config` (`Leaf` gets `PartialOrd`), and `disable_package_emission`.
    for (dir, from_set) in [("opts_protos_config", false), ("opts_fds_config", true)] {
        let dir = out.join(dir);
        std::fs::create_dir_all(&dir)?;
        let mut prost = sockrpc_build::prost_build::Config::new();
        prost.type_attribute(".gaps.opts.Leaf", "#[derive(PartialOrd)]");
        let builder = sockrpc_build::configure()
            .out_dir(&dir)
            .boxed(".gaps.opts.Tree.leaf")
            .disable_package_emission();
        if from_set {
            let fds = prost::Message::decode(std::fs::read(&set)?.as_slice())
                .map_err(std::io::Error::other)?;
            builder.compile_fds_with_config(prost, fds)?;
        } else {
            builder.compile_protos_with_config(
                prost,
                &["proto/sockrpc/gaps/opts.proto"],
                &["proto"],
            )?;
        }
    }
    // A tonic user's build script as written for tonic-build: one path where prost-build takes
    // a list, a `protoc` flag, services named without their package, and no descriptor
    // constant of sockrpc's (`tonic_style.rs` declares its own with
    // `include_file_descriptor_set!`, and includes both packages into one module).
    // prost-build's own settings come in a `Config` (`compile_with_config`), and the services
    // find the messages at `proto_path`, the module both packages are included into.
    let mut prost = sockrpc_build::prost_build::Config::new();
    prost.type_attribute(".tstyle_two.Note", "#[derive(PartialOrd)]");
    sockrpc_build::configure()
        .bytes(".")
        .btree_map(".")
        .protoc_arg("--experimental_allow_proto3_optional")
        .emit_package(false)
        .proto_path("crate::tonic_style::pb")
        .file_descriptor_set_const(false)
        .file_descriptor_set_path(out.join("tstyle_descriptor.bin"))
        .compile_with_config(
            prost,
            &[
                "proto/sockrpc/gaps/tstyle.proto",
                "proto/sockrpc/gaps/tstyle_two.proto",
            ],
            &["proto"],
        )?;
    Ok(())
}
