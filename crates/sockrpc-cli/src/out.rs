//! Writing to stdout and stderr without panicking when the reader has gone.
//!
//! Rust ignores SIGPIPE, so `println!` into a pipe whose reader exited (`sockrpc bench | head
//! -1`) fails with EPIPE, and `println!` turns that into a panic: a backtrace hint and exit
//! code 101 for what the shell means as "enough". Resetting SIGPIPE would take `unsafe`, which
//! the workspace forbids, so every line goes through [`line`]: when stdout is gone, the process
//! exits at once, quietly, with 141 (128 + SIGPIPE), the status a C tool killed by SIGPIPE
//! reports; a reader that went away wants no more output, and a run left going would only wait
//! (a `call` streaming answers for ever). A failed write to stderr is dropped: there is nowhere
//! left to say so.
//!
//! `bench --json -` (or `--plot -`, `--rate-plot -`) makes stdout the report's: from then on
//! ([`give_stdout_to_report`]) the lines meant for stdout (tables, `wrote` lines) go to stderr,
//! and only [`report`] writes to stdout, so `sockrpc bench --json - | jq` reads JSON alone.
//!
//! Text a peer chose (a server's names, comments, status messages) is printed through
//! [`one_line`] or [`lines`]: written raw, an escape sequence in it would drive the user's
//! terminal (retitle it, clear it, hide what follows) and a newline would fake a line of output.

use std::borrow::Cow;
use std::fmt;
use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether stdout carries a report (`--json -`): the lines meant for it go to stderr.
static STDOUT_IS_REPORT: AtomicBool = AtomicBool::new(false);

/// From now on, stdout is the report's alone: [`stdout`]'s lines go to stderr.
pub(crate) fn give_stdout_to_report() {
    STDOUT_IS_REPORT.store(true, Ordering::Relaxed);
}

/// Writes a report (`--json -`'s JSON, `--plot -`'s SVG) to stdout, whole, and flushes it;
/// exits the process as [`stdout`] does when stdout's reader has gone.
pub(crate) fn report(contents: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(contents).and_then(|()| out.flush()) {
        Err(err) if err.kind() == ErrorKind::BrokenPipe => std::process::exit(BROKEN_PIPE_EXIT),
        other => other,
    }
}

/// The exit code when stdout's reader has gone: 128 + SIGPIPE (13), as a shell reports a
/// process that SIGPIPE ended.
pub(crate) const BROKEN_PIPE_EXIT: i32 = 141;

/// Writes `text` to stdout and flushes it; exits the process when stdout cannot be written.
/// Once stdout carries a report ([`give_stdout_to_report`]), writes it to stderr instead.
pub(crate) fn stdout(text: fmt::Arguments<'_>) {
    if STDOUT_IS_REPORT.load(Ordering::Relaxed) {
        return stderr(text);
    }
    let mut out = std::io::stdout().lock();
    if let Err(err) = out.write_fmt(text).and_then(|()| out.flush()) {
        if err.kind() != ErrorKind::BrokenPipe {
            let _ = writeln!(std::io::stderr(), "sockrpc: cannot write to stdout: {err}");
        }
        std::process::exit(BROKEN_PIPE_EXIT);
    }
}

/// Writes `text` to stderr, dropping a failure.
pub(crate) fn stderr(text: fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(text);
}

/// `text` with every control character escaped (`\n` as `\\n`, ESC as `\\u{1b}`), so that it
/// prints as one line and cannot drive a terminal; unchanged (not copied) when it has none.
pub(crate) fn one_line(text: &str) -> Cow<'_, str> {
    escaped(text, |_| false)
}

/// `text` with every control character but the newline and the tab escaped: text of many lines
/// (a `.proto` rendering), which cannot drive a terminal nor return to the start of a line. A
/// CR LF is a newline: protoc keeps the CR of a Windows file's line ends in its comments, and
/// it returns over nothing there (a lone CR is escaped).
pub(crate) fn lines(text: &str) -> Cow<'_, str> {
    let keep = |c: char| c == '\n' || c == '\t';
    if !text.contains("\r\n") {
        return escaped(text, keep);
    }
    Cow::Owned(escaped(&text.replace("\r\n", "\n"), keep).into_owned())
}

/// `text` with the control characters that `keep` refuses escaped as Rust writes them.
fn escaped(text: &str, keep: fn(char) -> bool) -> Cow<'_, str> {
    let bad = |c: char| c.is_control() && !keep(c);
    if !text.contains(bad) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if bad(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `println!` that exits quietly when stdout's reader has gone (see [`stdout`]).
macro_rules! outln {
    () => { $crate::out::stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::out::stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` that exits quietly when stdout's reader has gone (see [`stdout`]).
macro_rules! out {
    ($($arg:tt)*) => { $crate::out::stdout(format_args!($($arg)*)) };
}

/// `eprintln!` that never panics.
macro_rules! errln {
    ($($arg:tt)*) => { $crate::out::stderr(format_args!("{}\n", format_args!($($arg)*))) };
}

pub(crate) use {errln, out, outln};
