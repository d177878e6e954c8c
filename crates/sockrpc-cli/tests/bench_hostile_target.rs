//! `sockrpc bench --target` and `sockrpc call` against a hostile server: one that answers every
//! call with an error whose status message holds a terminal escape (OSC: retitle the window),
//! a bell and a newline followed by a fake line. Both must exit with a clear error and print
//! the message escaped. `call` did (`dynamic/exit.rs`); `bench` put the first error of a row
//! raw into its report (the row's note, and the "no call succeeded" line the run fails with).

mod call_support;
mod support;

use call_support::route_guide_proto;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use support::*;

const PREFACE: &[u8; 8] = b"SOCKRPC\x01";
const OPEN: u8 = 1;
const END: u8 = 4;
/// The status message every call is answered with.
const HOSTILE: &[u8] = b"boom\x1b]0;owned\x07\nsockrpc bench: all good";
/// How it must be printed.
const ESCAPED: &str = "boom\\u{1b}]0;owned\\u{7}\\nsockrpc bench: all good";

fn frame(kind: u8, flags: u8, call_id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(body.len())
        .expect("short")
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(&[kind, flags, 0, 0]);
    out.extend_from_slice(&call_id.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// END INTERNAL with [`HOSTILE`] as its message, no details, no trailers.
fn hostile_end(call_id: u32) -> Vec<u8> {
    let mut body = 13u32.to_be_bytes().to_vec();
    body.extend_from_slice(&u32::try_from(HOSTILE.len()).expect("short").to_be_bytes());
    body.extend_from_slice(HOSTILE);
    body.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    frame(END, 0, call_id, &body)
}

/// Answers every call opened on `stream` with [`hostile_end`], for at most 100,000 frames.
fn serve(mut stream: std::net::TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(PREFACE)?;
    let mut preface = [0u8; 8];
    stream.read_exact(&mut preface)?;
    for _ in 0..100_000 {
        let mut head = [0u8; 12];
        stream.read_exact(&mut head)?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body)?;
        if head[4] == OPEN {
            let id = u32::from_be_bytes([head[8], head[9], head[10], head[11]]);
            stream.write_all(&hostile_end(id))?;
        }
    }
    Ok(())
}

/// The hostile server on 127.0.0.1: its `tcp://` address, and a flag that stops it accepting
/// (it stops after 30 s anyway); each connection on a thread of its own.
fn hostile_server() -> (String, Arc<AtomicBool>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = format!("tcp://{}", listener.local_addr().expect("addr"));
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(30);
        while !stopped.load(Ordering::Relaxed) && Instant::now() < until {
            match listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(false).is_ok() {
                        thread::spawn(move || serve(stream));
                    }
                }
                Err(_) => thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    (addr, stop)
}

/// Whether `text` holds a control character other than the newline.
fn drives_a_terminal(text: &str) -> bool {
    text.chars().any(|c| c.is_control() && c != '\n')
}

#[test]
fn bench_against_a_hostile_target_fails_printing_its_message_escaped() {
    let (addr, stop) = hostile_server();
    let output = run(tcp_bench("0.2").args(["--target", &addr]));
    stop.store(true, Ordering::Relaxed);
    let (stdout, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    for (name, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        assert!(
            !drives_a_terminal(text),
            "raw control characters on {name}: {text:?}"
        );
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("sockrpc bench: all good")),
            "a faked line on {name}: {text:?}"
        );
    }
    assert!(
        stderr.contains("no call succeeded") && stderr.contains(ESCAPED),
        "{stderr:?}"
    );
}

#[test]
fn call_against_a_hostile_target_fails_printing_its_message_escaped() {
    let (addr, stop) = hostile_server();
    let proto = route_guide_proto();
    let proto = proto.to_str().expect("utf-8");
    let get = "routeguide.RouteGuide/GetFeature";
    let output = run(sockrpc().args(["call", &addr, get, "--proto", proto, "-d", "{}"]));
    stop.store(true, Ordering::Relaxed);
    let (stdout, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(13), "{stdout}\n{stderr}");
    assert!(stdout.is_empty(), "{stdout:?}");
    assert!(!drives_a_terminal(&stderr), "{stderr:?}");
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(stderr.contains(ESCAPED), "{stderr:?}");
}
