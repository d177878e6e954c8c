//! Discovery: where a balanced channel learns its endpoints — a stream of [`Change`]s.
//!
//! ```text
//!  static list ─┐
//!  DNS (A/AAAA, SRV; re-resolved on TTL) ─┼─▶ Stream<Change> ─▶ Channel::balance ─▶ one pool per endpoint
//!  etcd prefix watch (feature `etcd`) ─┘        ▲
//!                          "a connection to X failed" ── (early re-resolution hint)
//! ```
//!
//! A [`Discovery`] is the stream plus an optional [`Notify`] the channel pokes when a
//! connection to a discovered address fails, so DNS re-resolves early instead of waiting
//! for the TTL.

mod config_feed;
#[cfg(feature = "dns")]
pub mod dns;
#[cfg(feature = "etcd")]
pub mod etcd;
mod fixed;

pub use config_feed::ServiceConfigFeed;
pub(crate) use fixed::of_endpoints;
pub use fixed::{fixed, from_addrs};

use futures_core::Stream;
use sockrpc_transport::endpoint::Endpoint;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// One change to the endpoint set.
#[derive(Debug, Clone)]
pub enum Change {
    /// An endpoint appears (or, for a known key, its endpoint, weight or priority changes).
    Insert {
        /// What identifies it (usually `IP:PORT`).
        key: String,
        /// How to reach it (boxed: an endpoint is large, a removal small).
        endpoint: Box<Endpoint>,
        /// Its weight (≥ 1; p2c and the hash ring use it).
        weight: u32,
        /// Its priority: lower is preferred. Calls go to the endpoints of the best priority
        /// that has one usable (connected, serving, not ejected), and to a worse one only when
        /// none is (SRV's rule, RFC 2782). 0 for sources without priorities.
        priority: u32,
    },
    /// The endpoint with this key leaves: no new calls; calls in flight finish and its
    /// connections close.
    Remove(String),
    /// The endpoint with this key gets a new weight.
    Weight(String, u32),
}

impl Change {
    /// An insert of `endpoint` under `key` with weight 1 and priority 0.
    pub fn insert(key: impl Into<String>, endpoint: Endpoint) -> Change {
        Change::Insert {
            key: key.into(),
            endpoint: Box::new(endpoint),
            weight: 1,
            priority: 0,
        }
    }
}

/// The key an endpoint is known by: `IP:PORT` (`[IPv6]:PORT`), the Unix socket's path, or
/// `unix-abstract:NAME` for a Linux abstract socket; a path or name whose bytes are not UTF-8
/// (percent-decoded from `unix:///tmp/%FF.sock`), its URI, which escapes them.
pub fn endpoint_key(endpoint: &Endpoint) -> String {
    if let Some(path) = endpoint
        .unix_path
        .as_deref()
        .filter(|p| p.to_str().is_none())
    {
        // Shown lossily, every such path of one shape would share a key.
        return Endpoint::unix(path).to_string();
    }
    if let Some(name) = endpoint.unix_abstract_name() {
        return format!("unix-abstract:{}", String::from_utf8_lossy(name));
    }
    match &endpoint.unix_path {
        Some(path) => path.display().to_string(),
        None if endpoint.host.contains(':') => format!("[{}]:{}", endpoint.host, endpoint.port),
        None => format!("{}:{}", endpoint.host, endpoint.port),
    }
}

/// A boxed stream of changes.
pub type ChangeStream = Pin<Box<dyn Stream<Item = Change> + Send + 'static>>;

/// Why a discovery source has no answer, or only an old one: its last error, cleared when it
/// succeeds again. The balanced channel adds it to the status of a call no endpoint can take
/// (as grpc-go reports a name resolver's error), so that a misspelt name or an unreachable DNS
/// server says so instead of only "no endpoint".
#[derive(Debug, Clone, Default)]
pub struct Problem(Arc<Mutex<ProblemState>>);

#[derive(Debug, Default)]
struct ProblemState {
    error: Option<String>,
    /// Changes that answer the error, still to be applied by the channel
    /// ([`Problem::clear_after`]).
    pending: usize,
    /// What the source is still waiting for, when it has no error ([`Problem::waiting`]).
    waiting: Option<String>,
}

impl Problem {
    /// Records the source's latest error.
    pub fn set(&self, error: impl Into<String>) {
        *self.lock() = ProblemState {
            error: Some(error.into()),
            pending: 0,
            waiting: None,
        };
    }

    /// Says what the source is still waiting for (`None`: nothing), such as a DNS server that
    /// has not answered yet. Not an error: a call that finds no endpoint still waits for the
    /// answer, but when it gives up (its deadline) its status says what was awaited, instead
    /// of only that no endpoint was known. An error set later takes its place.
    pub fn waiting(&self, note: Option<String>) {
        self.lock().waiting = note;
    }

    /// The source succeeded: nothing to report.
    pub fn clear(&self) {
        *self.lock() = ProblemState::default();
    }

    /// The source succeeded and is about to send `changes` changes that say so: the error
    /// clears once the channel has applied that many more (at once when `changes` is 0), and
    /// until then a call that finds no endpoint waits for them instead of failing (with the
    /// old error, or with none). Call it before sending them: the channel may apply a change
    /// as soon as it is sent.
    pub fn clear_after(&self, changes: usize) {
        let mut state = self.lock();
        if changes == 0 {
            *state = ProblemState::default();
        } else {
            state.pending = changes;
        }
    }

    /// The latest error, if the source has not succeeded since.
    pub fn get(&self) -> Option<String> {
        self.lock().error.clone()
    }

    /// The latest error, else what the source is still waiting for: what a call's status says
    /// about discovery.
    pub fn describe(&self) -> Option<String> {
        let state = self.lock();
        state.error.clone().or_else(|| state.waiting.clone())
    }

    /// Whether changes that answer the error are on their way to the channel.
    pub(crate) fn answer_pending(&self) -> bool {
        self.lock().pending > 0
    }

    /// The channel applied a change; whether that cleared the error (the last change of an
    /// answer on its way).
    pub(crate) fn applied(&self) -> bool {
        let mut state = self.lock();
        match state.pending {
            0 => false,
            1 => {
                *state = ProblemState::default();
                true
            }
            _ => {
                state.pending -= 1;
                false
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ProblemState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A source of endpoint changes for [`Channel::balance`](crate::Channel::balance).
pub struct Discovery {
    pub(crate) changes: ChangeStream,
    pub(crate) on_failure: Option<Arc<Notify>>,
    pub(crate) problem: Option<Problem>,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("early_refresh", &self.on_failure.is_some())
            .finish_non_exhaustive()
    }
}

impl Discovery {
    /// Discovery from any stream of changes.
    pub fn new(changes: impl Stream<Item = Change> + Send + 'static) -> Discovery {
        Discovery {
            changes: Box::pin(changes),
            on_failure: None,
            problem: None,
        }
    }

    /// Also tells the source (through `notify`) when a connection to one of its endpoints
    /// failed, so it can look again early.
    pub fn with_failure_hint(mut self, notify: Arc<Notify>) -> Discovery {
        self.on_failure = Some(notify);
        self
    }

    /// Also tells the channel, through `problem`, why the source has no answer when it fails.
    pub fn with_problem(mut self, problem: Problem) -> Discovery {
        self.problem = Some(problem);
        self
    }

    /// A discovery whose changes come through the returned sender: for programs (and tests)
    /// that manage the set themselves.
    pub fn channel() -> (tokio::sync::mpsc::UnboundedSender<Change>, Discovery) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let stream = futures_util_free::poll_fn_stream(move |cx| rx.poll_recv(cx));
        (tx, Discovery::new(stream))
    }
}

impl<S: Stream<Item = Change> + Send + 'static> From<S> for Discovery {
    fn from(changes: S) -> Discovery {
        Discovery::new(changes)
    }
}

/// A `Stream` from a poll function (the crate does not depend on futures-util).
pub(crate) mod futures_util_free {
    use futures_core::Stream;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    pub(crate) struct PollFn<F>(F);

    impl<F> Unpin for PollFn<F> {}

    impl<T, F: FnMut(&mut Context<'_>) -> Poll<Option<T>>> Stream for PollFn<F> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            (self.0)(cx)
        }
    }

    pub(crate) fn poll_fn_stream<T, F>(f: F) -> PollFn<F>
    where
        F: FnMut(&mut Context<'_>) -> Poll<Option<T>>,
    {
        PollFn(f)
    }
}

#[cfg(test)]
mod key_tests {
    use super::endpoint_key;
    use sockrpc_transport::Endpoint;

    /// A Linux abstract socket is keyed by its URI, never by the NUL-first path it travels as;
    /// a socket file by its path, an address by `IP:PORT`.
    /// A socket path percent-decoded to bytes that are not UTF-8 (`unix:///tmp/%FF.sock`) is
    /// keyed by its URI, which escapes them: shown lossily, every such path of one shape got
    /// one key (`/tmp/\u{FFFD}.sock`), and a fixed list naming two sockets kept only the last.
    #[test]
    fn sockets_whose_paths_are_not_utf8_keep_keys_of_their_own() {
        let key = |uri: &str| endpoint_key(&Endpoint::from_uri(uri).expect(uri));
        assert_ne!(key("unix:///tmp/%FF.sock"), key("unix:///tmp/%FE.sock"));
        assert_eq!(key("unix:///tmp/%FF.sock"), "unix:///tmp/%FF.sock");
        assert_eq!(key("unix:///tmp/a%20b.sock"), "/tmp/a b.sock");
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            assert_ne!(key("unix-abstract:/%FF"), key("unix-abstract:/%FE"));
            assert_eq!(key("unix-abstract:/%FF"), "unix-abstract:///%FF");
            assert_eq!(key("unix-abstract:/x"), "unix-abstract:/x");
        }
    }

    #[test]
    fn endpoints_are_keyed_by_address_path_or_abstract_name() {
        assert_eq!(endpoint_key(&Endpoint::new("::1", 7)), "[::1]:7");
        assert_eq!(endpoint_key(&Endpoint::unix("/run/a.sock")), "/run/a.sock");
        #[cfg(any(target_os = "linux", target_os = "android"))]
        assert_eq!(
            endpoint_key(&Endpoint::unix_abstract("app").expect("name")),
            "unix-abstract:app"
        );
    }
}
