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
//! terminal (retitle it, clear it, hide what follows), a newline would fake a line of output,
//! and a bidirectional override would show what follows it reversed.

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

/// `text` with every control character escaped (`\n` as `\\n`, ESC as `\\u{1b}`), and every
/// bidirectional control, so that it prints as one line, cannot drive a terminal nor show text
/// reversed; unchanged (not copied) when it has none.
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

/// Whether `c` is one of Unicode's bidirectional controls (`Bidi_Control`): not control
/// characters, but an override or isolate in a server's text shows what follows it reversed,
/// so a status message or a `.proto` comment could show other text than it holds (Trojan
/// Source, CVE-2021-42574). Escaped with the control characters.
pub(crate) fn bidi_control(c: char) -> bool {
    matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with the control characters (and bidirectional controls) that `keep` refuses
/// escaped as Rust writes them.
fn escaped(text: &str, keep: fn(char) -> bool) -> Cow<'_, str> {
    let bad = |c: char| (c.is_control() || bidi_control(c)) && !keep(c);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidi_controls_are_escaped_like_control_characters() {
        // A server's text with a right-to-left override shows what follows reversed: a status
        // message "done\u{202e}exe.txt" reads "donetxt.exe", and a comment in a `.proto`
        // rendering can hide code (Trojan Source, CVE-2021-42574).
        for c in [
            '\u{61c}', '\u{200e}', '\u{200f}', '\u{202a}', '\u{202e}', '\u{2066}', '\u{2069}',
        ] {
            let text = format!("done{c}exe.txt");
            let want = format!("done{}exe.txt", c.escape_default());
            assert_eq!(one_line(&text), want);
            assert_eq!(lines(&format!("{text}\n")), format!("{want}\n"));
        }
        // Other non-ASCII text is kept, and text without any is not copied.
        assert!(matches!(one_line("ünïcode → ok"), Cow::Borrowed(_)));
    }
}
