//! `sockrpc bench --target` at a server that is not sockrpc: an HTTP server that answers every
//! connection with `400 Bad Request` and closes it, and one that accepts and says nothing (as
//! `nc -l`). The run must end in bounded time, exit 1, and say what happened in words that fit
//! it.

mod support;

use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use support::*;

/// A server on 127.0.0.1 that runs `answer` on each connection it accepts (each on a thread of
/// its own) until the returned flag is set, or for 30 s: its `tcp://` address and the flag.
fn foreign_server(answer: fn(std::net::TcpStream)) -> (String, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
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
                        thread::spawn(move || answer(stream));
                    }
                }
                Err(_) => thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    (addr, stop)
}

/// An HTTP/1 server's answer to bytes it cannot parse; the connection is closed once the
/// client closes it (closed first, a write of the client's could meet a reset before the
/// client read the answer, and its first error would not be about HTTP).
fn bad_request(mut stream: std::net::TcpStream) {
    let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = std::io::copy(&mut stream, &mut std::io::sink());
}

/// Reads what the client sends and says nothing (as `nc -l`), for at most 30 s.
fn silent(mut stream: std::net::TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = std::io::copy(&mut stream, &mut std::io::sink());
}

/// The note of the `name` row of the JSON report at `path`.
fn note(path: &PathBuf, name: &str) -> String {
    let report = read_json(path);
    let rows = report["rows"].as_array().expect("rows");
    let row = rows
        .iter()
        .find(|row| row["name"] == name)
        .unwrap_or_else(|| panic!("no {name} row: {report:#}"));
    row["note"].as_str().unwrap_or_default().to_owned()
}

/// Every connection to an HTTP server is closed at once, so no connection of the pool is live
/// when the row ends: its note said "pool of 1, 0 live at the end; calls started per
/// connection, warmup included: " and then nothing, a list of no connection. It now says none
/// was live, and the first error says the server does not speak sockrpc.
#[test]
fn a_pool_with_no_live_connection_says_so() {
    let (addr, stop) = foreign_server(bad_request);
    let json = temp_path("foreign.json");
    let output = run(tcp_bench("0.1").args([
        "--target",
        &addr,
        "--rounds",
        "1",
        "--json",
        json.to_str().expect("utf-8 path"),
    ]));
    stop.store(true, Ordering::Relaxed);
    let (stdout, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    let note = note(&json, "sockrpc-tcp");
    let _ = std::fs::remove_file(&json);
    assert!(note.contains("does not speak sockrpc"), "{note}");
    assert!(note.contains("pool of 1, none live at the end"), "{note}");
    assert!(
        !note.contains("warmup included: ;") && !note.ends_with(": "),
        "{note}"
    );
}

/// At a server that accepts and never answers, sockrpc-stream's one stream did not open within
/// 5 s, and the row blamed the server's limit of calls per connection ("try more
/// --connections"), which a first stream cannot meet. It now says the server did not answer.
#[test]
fn a_first_stream_the_server_never_answers_is_not_blamed_on_the_call_limit() {
    let (addr, stop) = foreign_server(silent);
    let json = temp_path("silent.json");
    let output = run(sockrpc().args([
        "bench",
        "--target",
        &addr,
        "--transport",
        "stream",
        "--payload",
        "64",
        "--duration",
        "0.1",
        "--warmup",
        "0",
        "--rounds",
        "1",
        "--json",
        json.to_str().expect("utf-8 path"),
    ]));
    stop.store(true, Ordering::Relaxed);
    let (stdout, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    let note = note(&json, "sockrpc-stream");
    let _ = std::fs::remove_file(&json);
    assert!(note.contains("stream 1 of 1 not open within 5 s"), "{note}");
    assert!(note.contains("the server did not answer it"), "{note}");
    assert!(!note.contains("--connections"), "{note}");
}
