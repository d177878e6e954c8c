//! Replays the fuzz corpus on stable `cargo test`, so what the fuzzers found stays fixed.
//!
//! Every file under `fuzz/corpus/<target>/` (seeds, inputs the fuzzer kept, minimized crashes)
//! goes through the same target body `fuzz/` runs (`sockrpc-fuzz-targets`), and so do the seeds
//! as the seed generator builds them today. A target panics only on a bug; each failure is
//! reported with its file.

use sockrpc_fuzz_targets::{seeds, Target, TARGETS};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// Runs `body` on `data`; the panic message on failure.
fn replay(body: Target, data: &[u8]) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| body(data))).map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "non-string panic".to_owned())
    })
}

fn run_target(name: &str, body: Target) {
    let dir = corpus_dir(name);
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|err| panic!("reading {}: {err}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no corpus for {name} in {}",
        dir.display()
    );
    let mut failures = Vec::new();
    for file in &files {
        let data = std::fs::read(file).expect("a corpus file");
        if let Err(message) = replay(body, &data) {
            failures.push(format!("{}: {message}", file.display()));
        }
    }
    for seed in seeds::all().into_iter().filter(|seed| seed.target == name) {
        if let Err(message) = replay(body, &seed.data) {
            failures.push(format!("generated {}: {message}", seed.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {} inputs fail:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

fn body(name: &str) -> Target {
    TARGETS
        .iter()
        .find(|(target, _)| *target == name)
        .map(|(_, body)| *body)
        .unwrap_or_else(|| panic!("no target {name}"))
}

#[test]
fn frame_decoder_corpus() {
    run_target("frame_decoder", body("frame_decoder"));
}

#[test]
fn metadata_corpus() {
    run_target("metadata", body("metadata"));
}

#[test]
fn datagram_corpus() {
    run_target("datagram", body("datagram"));
}

#[test]
fn server_connection_corpus() {
    run_target("server_connection", body("server_connection"));
}

#[test]
fn every_target_is_replayed() {
    let replayed = ["frame_decoder", "metadata", "datagram", "server_connection"];
    for (name, _) in TARGETS {
        assert!(replayed.contains(name), "{name} has no replay test here");
    }
}

/// The server-connection harness reaches the handlers: a fuzzer driving a harness that never
/// got past the handshake would find nothing and say so with confidence.
#[test]
fn server_connection_harness_reaches_handlers() {
    use sockrpc::protocol::frame::Frame;
    use sockrpc::Code;
    let frames_of = |name: &str| {
        let seed = seeds::all()
            .into_iter()
            .find(|seed| seed.target == "server_connection" && seed.name == name)
            .unwrap_or_else(|| panic!("no seed {name}"));
        sockrpc_fuzz_targets::server_connection::serve(&seed.data)
    };
    for name in ["seed-unary", "seed-unary-bytewise", "seed-own-preface"] {
        let frames = frames_of(name);
        assert!(
            frames.iter().any(|frame| matches!(
                frame,
                Frame::Message { call_id: 1, body, .. } if &body[..] == b"hello"
            )),
            "{name}: no echo in {frames:?}"
        );
    }
    let frames = frames_of("seed-wait-deadline");
    assert!(
        frames.iter().any(|frame| matches!(
            frame,
            Frame::End {
                code: Code::DeadlineExceeded,
                ..
            }
        )),
        "no deadline in {frames:?}"
    );
    let frames = frames_of("seed-bidi");
    let echoed = frames
        .iter()
        .filter(|frame| matches!(frame, Frame::Message { call_id: 1, .. }))
        .count();
    assert_eq!(echoed, 2, "bidi echoes: {frames:?}");
    let frames = frames_of("seed-server-stream-flood");
    let flooded = frames
        .iter()
        .filter(|frame| matches!(frame, Frame::Message { call_id: 1, .. }))
        .count();
    assert!(flooded > 100, "flood: {flooded} messages");
}
