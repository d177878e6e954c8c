//! Code blocks in `.proto` comments never run as doctests, whatever language they claim: rustdoc
//! itself runs the doctests of every doc comment generated for the tricky protos, among them
//! `rust_blocks.proto`, whose message, field, oneof and enum comments hold ```` ```rust ````
//! blocks that compile, that do not, and that are marked `no_run` or `should_panic`.
//!
//! The crate's own `cargo test --doc` cannot show it (`sockrpc-tests` builds its library with
//! `doctest = false`), so the doc comments are copied, as written, onto the items of a
//! crate of their own (the generated code needs prost and sockrpc to compile; its doctests
//! need nothing from it) and `rustdoc --test` runs on that.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory the tricky protos were generated into.
const GENERATED: &str = concat!(env!("OUT_DIR"), "/tricky");

/// The doc comments of a generated file: each run of `///` lines, as written (indentation
/// before the `///` taken off).
fn doc_comments(source: &str) -> Vec<Vec<&str>> {
    let mut blocks = Vec::new();
    let mut current = Vec::new();
    for line in source.lines() {
        let line = line.trim_start();
        if line.starts_with("///") {
            current.push(line);
        } else if !current.is_empty() {
            blocks.push(std::mem::take(&mut current));
        }
    }
    blocks
}

/// A crate holding `blocks`, each on a unit struct of its own.
fn doc_crate(blocks: &[Vec<&str>]) -> String {
    let mut out = String::from("//! Doc comments generated for the tricky protos.\n");
    for (i, block) in blocks.iter().enumerate() {
        for line in block {
            out.push_str(line);
            out.push('\n');
        }
        out.push_str(&format!("pub struct Doc{i};\n"));
    }
    out
}

fn generated_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(GENERATED)
        .expect("the tricky output directory")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    files
}

/// Runs `rustdoc --test` on `krate`; its output, or a panic with it when a doctest failed.
fn rustdoc_test(dir: &Path, krate: &str) -> String {
    let file = dir.join("generated_docs.rs");
    std::fs::write(&file, krate).expect("write the doc crate");
    let rustdoc = std::env::var_os("RUSTDOC").unwrap_or_else(|| "rustdoc".into());
    let output = Command::new(rustdoc)
        .args([
            "--test",
            "--edition",
            "2021",
            "--crate-name",
            "generated_docs",
        ])
        .arg(&file)
        .current_dir(dir)
        .output()
        .expect("run rustdoc");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "rustdoc --test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn no_code_block_in_a_proto_comment_runs_as_a_doctest() {
    let sources: Vec<String> = generated_files()
        .iter()
        .map(|path| std::fs::read_to_string(path).expect("read generated file"))
        .collect();
    let blocks: Vec<Vec<&str>> = sources.iter().flat_map(|s| doc_comments(s)).collect();
    let rust_blocks = sources
        .iter()
        .find(|s| s.contains("pub struct Snippet"))
        .expect("rust_blocks.proto is generated with the tricky protos");
    // The comments under test are there, with their code.
    for code in ["assert_eq!(answer, 42);", "let n: u8 = \"not a number\";"] {
        assert!(rust_blocks.contains(code), "generated docs lack {code:?}");
    }

    let dir = std::env::temp_dir().join(format!("sockrpc-rust-blocks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let result = std::panic::catch_unwind(|| rustdoc_test(&dir, &doc_crate(&blocks)));
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = result.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    assert!(
        stdout.contains("running 0 tests"),
        "doctests ran from proto comments:\n{stdout}"
    );
}
