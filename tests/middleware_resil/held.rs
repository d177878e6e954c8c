//! `Sleep` calls that carry a token, as `Plain` runs them: a test waits for a call to hold its
//! place (its handler began, so every limit in front of it admitted it) instead of sleeping a
//! guess of how long that takes. A guess of 20 or 50 ms is outlasted on a loaded machine
//! (`cargo test` runs this binary's tests at once on CI's 2 cores): the call meant to hold the
//! place arrives after the one meant to be refused, which is then admitted.
//!
//! The record also keeps what a test of a deadline checks instead of how long a call took:
//! the timeout the call reached the server with, and when its handler ended.
//!
//! The record is process-wide (the tests run as threads of one process), so each test uses
//! tokens of its own.

use super::*;
use std::time::Instant;

/// A tokened `Sleep` as the server ran it.
struct Record {
    token: String,
    /// The time the call reached the server with (its deadline's remainder when sent).
    timeout: Option<Duration>,
    /// When its handler ended or was dropped; `None` while it runs.
    ended: Option<Instant>,
}

/// Each tokened `Sleep` the server began.
static SLEEPS: Mutex<Vec<Record>> = Mutex::new(Vec::new());

/// Marks a tokened `Sleep` as running for as long as it lives (its handler ends or is dropped).
pub(crate) struct Holding(String);

impl Holding {
    /// Records `token`'s `Sleep`, sent with `timeout`, as begun; an empty token (most tests)
    /// records nothing.
    pub(crate) fn begin(token: String, timeout: Option<Duration>) -> Option<Holding> {
        if token.is_empty() {
            return None;
        }
        lock().push(Record {
            token: token.clone(),
            timeout,
            ended: None,
        });
        Some(Holding(token))
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        let now = Instant::now();
        for record in lock().iter_mut().filter(|r| r.token == self.0) {
            record.ended.get_or_insert(now);
        }
    }
}

fn lock() -> std::sync::MutexGuard<'static, Vec<Record>> {
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
    lock().iter().any(|r| r.token == token && r.ended.is_none())
}

/// The timeout `token`'s `Sleep` reached the server with, if it began and carried one.
pub(crate) fn sent_with(token: &str) -> Option<Duration> {
    lock()
        .iter()
        .find(|r| r.token == token)
        .and_then(|r| r.timeout)
}

/// When `token`'s `Sleep` handler ended, if it began and ended.
pub(crate) fn ended_at(token: &str) -> Option<Instant> {
    lock()
        .iter()
        .find(|r| r.token == token)
        .and_then(|r| r.ended)
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
