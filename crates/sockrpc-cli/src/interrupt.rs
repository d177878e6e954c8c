//! Ctrl-C (or SIGTERM) during a run whose embedded server has a Unix socket.
//!
//! The default action of either signal ends the process at once: no destructor runs, so the
//! embedded server's private socket directory (`$TMPDIR/sockrpc-bench-PID`, with `bench.sock`
//! in it) stayed behind, one for every interrupted `sockrpc bench`. While such a directory
//! exists, a thread of its own waits for either signal, removes the socket and the directory,
//! and ends the process with the status a shell reports for the signal (130 for SIGINT, 143
//! for SIGTERM), as the default action would have.

use std::{io, path::PathBuf};
use tokio::signal::unix::{signal, SignalKind};

/// 128 + SIGINT (2).
const INTERRUPTED_EXIT: i32 = 130;

/// 128 + SIGTERM (15).
const TERMINATED_EXIT: i32 = 143;

/// Listens for SIGINT and SIGTERM from now on, and on the first of them, on a thread of its
/// own, removes `socket` and `dir` (only if empty) and exits. An error (no runtime, no signal
/// handler, no thread) leaves nothing installed that would swallow the signals.
pub(crate) fn remove_on_interrupt(dir: PathBuf, socket: PathBuf) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let thread = std::thread::Builder::new().name("sockrpc-interrupt".into());
    // Registered before this returns, so no signal falls between the caller's directory and
    // the thread's first poll; the thread is spawned last, so a failure to register leaves the
    // default actions.
    let (mut interrupt, mut terminate) = {
        let _entered = runtime.enter();
        (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        )
    };
    thread.spawn(move || {
        let code = runtime.block_on(async {
            tokio::select! {
                _ = interrupt.recv() => INTERRUPTED_EXIT,
                _ = terminate.recv() => TERMINATED_EXIT,
            }
        });
        let _ = std::fs::remove_file(&socket);
        let _ = std::fs::remove_dir(&dir);
        crate::out::errln!("sockrpc: interrupted");
        std::process::exit(code);
    })?;
    Ok(())
}
