//! `Sleep` calls that carry a token, as `Plain` runs them: a test waits for a call to hold its
//! place (its handler began, so every limit in front of it admitted it) instead of sleeping a
//! guess of how long that takes. A guess of 20 or 50 ms is outlasted on a loaded machine
//! (`cargo test` runs this binary's tests at once on CI's 2 cores): the call meant to hold the
//! place arrives after the one meant to be refused, which is then admitted.
//!
//! The record is process-wide (the tests run as threads of one process), so each test uses
//! tokens of its own.

use super::*;

/// Each tokened `Sleep` the server began, and whether its handler still runs.
static SLEEPS: Mutex<Vec<(String, bool)>> = Mutex::new(Vec::new());

/// Marks a tokened `Sleep` as running for as long as it lives (its handler ends or is dropped).
pub(crate) struct Holding(String);

impl Holding {
    /// Records `token`'s `Sleep` as begun; an empty token (most tests) records nothing.
    pub(crate) fn begin(token: String) -> Option<Holding> {
        if token.is_empty() {
            return None;
        }
        lock().push((token.clone(), true));
        Some(Holding(token))
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        for entry in lock().iter_mut().filter(|(t, _)| *t == self.0) {
            entry.1 = false;
        }
    }
}

fn lock() -> std::sync::MutexGuard<'static, Vec<(String, bool)>> {
    // A test that panicked while holding the lock poisons it; the record is still whole.
    SLEEPS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A `Sleep` of `millis` that the server records under `token`.
pub(crate) fn sleep_holding(millis: u64, token: &str) -> SleepRequest {
    SleepRequest {
        millis,
        token: token.to_owned(),
    }
}

/// Whether `token`'s `Sleep` began and its handler still runs.
pub(crate) fn still_running(token: &str) -> bool {
    lock().iter().any(|(t, running)| t == token && *running)
}

/// Waits (bounded: 20 s) until `token`'s `Sleep` runs on the server.
pub(crate) async fn wait_running(token: &str) {
    bounded(token, async {
        while !still_running(token) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
}
