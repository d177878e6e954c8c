//! Ctrl-C (or SIGTERM) during `sockrpc bench`.
//!
//! The default action of either signal ends the process at once: no destructor runs, so the
//! embedded server's private socket directory (`$TMPDIR/sockrpc-bench-PID`, with `bench.sock`
//! in it) stayed behind, one for every interrupted `sockrpc bench`, and a run given `--json`
//! wrote nothing of the rows it had finished. Once something asks ([`on_interrupt`]), a thread
//! of its own waits for either signal, does what was asked in the order asked (remove the
//! directory, write the partial report), and ends the process with the status a shell reports
//! for the signal (130 for SIGINT, 143 for SIGTERM), as the default action would have.
//!
//! A report on its way to its path is first written to a hidden temporary file beside it
//! ([`crate::atomic_file`]); a signal in the middle of that left `.NAME.PID.tmp` behind. While
//! one is being written ([`removing_on_interrupt`]), a signal removes it before the process
//! exits. The writer may go on meanwhile: a signal handled on its thread interrupts a blocked
//! `open`, which the standard library retries, creating the file again after it was removed.
//! So the waiting thread marks the process interrupted before it removes anything, and waits
//! (up to [`WRITERS_GRACE`]) for the writers under way to see the mark, remove what they made
//! and stop, before it exits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use std::{
    io,
    path::{Path, PathBuf},
};
use tokio::signal::unix::{signal, SignalKind};

/// 128 + SIGINT (2).
const INTERRUPTED_EXIT: i32 = 130;

/// 128 + SIGTERM (15).
const TERMINATED_EXIT: i32 = 143;

/// Something to do on a signal, before the process exits.
pub(crate) type Action = Box<dyn FnOnce() + Send>;

/// What to do on a signal, and whether the thread that waits for one runs.
struct Asked {
    actions: Vec<Action>,
    listening: bool,
}

static ASKED: Mutex<Asked> = Mutex::new(Asked {
    actions: Vec::new(),
    listening: false,
});

/// The temporary files being written now: removed on a signal, before anything else.
static WRITING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Set by the waiting thread on a signal, before it removes the files being written.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// How long the waiting thread waits for writers under way to stop before it exits (a writer
/// blocked for good, on a named pipe, does not hold the exit longer).
const WRITERS_GRACE: Duration = Duration::from_secs(1);

thread_local! {
    /// Whether this is the thread that waits for signals (its own writes never stop it).
    static WAITING_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Does `action` on the first SIGINT or SIGTERM from now on, then exits with the signal's
/// status. The first call starts the waiting thread; an error (no runtime, no signal handler,
/// no thread) leaves nothing installed that would swallow the signals.
pub(crate) fn on_interrupt(action: Action) -> io::Result<()> {
    let mut asked = ASKED.lock().unwrap_or_else(PoisonError::into_inner);
    start_listening(&mut asked)?;
    asked.actions.push(action);
    Ok(())
}

/// Starts the waiting thread, once.
fn start_listening(asked: &mut Asked) -> io::Result<()> {
    if !asked.listening {
        listen()?;
        asked.listening = true;
    }
    Ok(())
}

/// Runs `write`, which writes the temporary file `temp`; a SIGINT or SIGTERM meanwhile removes
/// `temp` before the process exits. Without a thread to wait for signals (it could not start),
/// `write` runs all the same, as it did before.
pub(crate) fn removing_on_interrupt<T>(temp: &Path, write: impl FnOnce() -> T) -> T {
    let watched = start_listening(&mut ASKED.lock().unwrap_or_else(PoisonError::into_inner));
    if watched.is_ok() {
        writing().push(temp.to_path_buf());
    }
    let result = write();
    if watched.is_ok() {
        let mut listed = writing();
        // One entry: the waiting thread's own partial report may have the same name.
        if let Some(at) = listed.iter().position(|path| path == temp) {
            listed.remove(at);
        }
        if interrupted() {
            // Made again after the waiting thread removed it, or renamed: either way, not
            // left behind; this thread then waits for the exit the signal asked for.
            let _ = std::fs::remove_file(temp);
            drop(listed);
            loop {
                std::thread::park();
            }
        }
    }
    result
}

/// Whether a signal has been taken and this thread is not the one answering it: a writer of a
/// temporary file stops before renaming it (the waiting thread writes its partial report).
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst) && !WAITING_THREAD.with(std::cell::Cell::get)
}

fn writing() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    WRITING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts the thread that waits for SIGINT or SIGTERM, does what was asked and exits.
fn listen() -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let thread = std::thread::Builder::new().name("sockrpc-interrupt".into());
    // Registered before this returns, so no signal falls between the caller's first action
    // and the thread's first poll; the thread is spawned last, so a failure to register leaves
    // the default actions.
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
        WAITING_THREAD.with(|waiting| waiting.set(true));
        // Marked first: a writer that makes its file again after this removal sees the mark
        // once its write returns, removes the file and stops (`removing_on_interrupt`).
        INTERRUPTED.store(true, Ordering::SeqCst);
        // A report half written is not left behind.
        for temp in writing().iter() {
            let _ = std::fs::remove_file(temp);
        }
        // Taken out, so an action that takes a while holds no lock a caller could wait on.
        let actions =
            std::mem::take(&mut ASKED.lock().unwrap_or_else(PoisonError::into_inner).actions);
        for action in actions {
            action();
        }
        // Writers under way (listed still) stop once they see the mark.
        let grace = Instant::now() + WRITERS_GRACE;
        while !writing().is_empty() && Instant::now() < grace {
            std::thread::sleep(Duration::from_millis(5));
        }
        crate::out::errln!("sockrpc: interrupted");
        std::process::exit(code);
    })?;
    Ok(())
}

/// Removes `socket` and `dir` (only if empty) on SIGINT or SIGTERM, before exiting.
pub(crate) fn remove_on_interrupt(dir: PathBuf, socket: PathBuf) -> io::Result<()> {
    on_interrupt(Box::new(move || {
        let _ = std::fs::remove_file(&socket);
        let _ = std::fs::remove_dir(&dir);
    }))
}
