//! Metric handles per method, registered once and cached.
//!
//! Why a cache: the `metrics` macros look a metric up in the recorder by name and labels on
//! every use, which means building a key (and allocating its labels) per call. The layer instead
//! registers each method's handles the first time it sees the method and keeps them here; a call
//! then costs a read lock, a hash of its path and atomic increments.
//!
//! Why a cap: on a server the method path comes from the peer, so a client sending calls to a
//! million made-up methods would otherwise make a million series in the recorder. Past
//! [`DEFAULT_MAX_METHODS`] distinct paths, calls are counted under `_OTHER` (OpenTelemetry's
//! name for a value outside the known set; under gRFC A66's names, `grpc.method="other"`).
//!
//! Why a second, smaller cap: first come, first served, a client that called a thousand
//! made-up paths right after a restart took every place, and the methods really served were
//! counted under `_OTHER` for the life of the process. The layer does not know which methods
//! the router serves, but it learns it from the answers: a path is *confirmed* once a call of it
//! ends `OK`. (Not "anything but `UNIMPLEMENTED`", what the router answers a path it does not
//! serve: a layer inside this one answers made-up paths too, an authentication check with
//! `UNAUTHENTICATED`, a limit with `RESOURCE_EXHAUSTED`, and a call dropped unfinished ends
//! `CANCELLED` wherever it was going.) Paths not yet confirmed take at most
//! [`DEFAULT_MAX_UNCONFIRMED`] places; past that, a new path's calls count under `_OTHER` until
//! one of them ends `OK`, which then gives the path its own series (grpc-go's OpenTelemetry
//! plugin labels unregistered methods "other" from the start; it knows the server's registered
//! methods).
//!
//! Why a length bound too: every series of a method repeats its service and method names, and
//! the recorder keeps them for as long as the process runs. A thousand made-up paths of 60 KB
//! each held 475 MB on a server and rendered a 1.6 GB page. A path whose service or method
//! name is longer than [`MAX_LABEL_LEN`] bytes is counted under `_OTHER`, so what a client can
//! make the recorder keep is at most about [`DEFAULT_MAX_METHODS`] times twice that, per series.

use super::scheme::{MethodHandles, Scheme};
use crate::Side;
use ::metrics::{Counter, Gauge, Histogram, Label};
use sockrpc_protocol::{Code, MethodPath};
use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hasher},
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
    sync::{Arc, OnceLock, RwLock},
};

/// How many distinct method paths a layer gives series of their own.
pub const DEFAULT_MAX_METHODS: usize = 1000;

/// How many method paths not yet confirmed (no call of theirs ended `OK`) a layer gives series
/// of their own; within [`DEFAULT_MAX_METHODS`].
pub const DEFAULT_MAX_UNCONFIRMED: usize = 100;

/// The longest service or method name, in bytes, that gets series of its own: a longer one is
/// counted under `_OTHER`. Real names are far shorter (`grpc.reflection.v1.ServerReflection`
/// is 35 bytes).
pub const MAX_LABEL_LEN: usize = 256;

/// The handles of one method, on one side.
pub(crate) struct MethodMetrics {
    /// The path these are for (storage of its own); `None` for `_OTHER`, which stands for many.
    path: Option<MethodPath>,
    scheme: Arc<Scheme>,
    side: Side,
    labels: Vec<Label>,
    /// Whether a call's counts add up bytes (gRFC A66's totals) rather than messages.
    bytes: bool,
    pub(crate) started: Counter,
    pub(crate) active: Gauge,
    /// Each request message's size, as it passes.
    pub(crate) request_size: Histogram,
    /// Each response message's size, as it passes (a server's one-message answer: once sent).
    pub(crate) response_size: Histogram,
    by_code: [OnceLock<Finished>; Code::ALL.len()],
    /// Whether a call of this path ended `OK` (always for `_OTHER`).
    confirmed: AtomicBool,
    /// The registry's count of paths not yet confirmed, which this one leaves when it is.
    unconfirmed: Arc<AtomicUsize>,
}

/// The handles of one method and status code, registered the first time a call ends with it
/// (so a scrape shows only the codes that happened).
pub(crate) struct Finished {
    pub(crate) count: Counter,
    pub(crate) duration: Histogram,
    /// Request messages per call (A66: bytes of the requests).
    pub(crate) requests: Histogram,
    /// Response messages per call (A66: bytes of the responses).
    pub(crate) responses: Histogram,
    /// A66's client calls, besides their attempts; `None` where there is no such metric.
    pub(crate) call_duration: Option<Histogram>,
}

impl MethodMetrics {
    /// The handles of `path` (`None`: of `_OTHER`) in `registry`'s scheme.
    fn register(
        registry: &Registry,
        path: Option<MethodPath>,
        unconfirmed: &Arc<AtomicUsize>,
        confirmed: bool,
    ) -> MethodMetrics {
        let scheme = Arc::clone(&registry.scheme);
        let labels = scheme.labels(path.as_ref().map(|p| (p.service(), p.method())));
        let MethodHandles {
            started,
            active,
            request_size,
            response_size,
        } = scheme.method_handles(&labels);
        MethodMetrics {
            started,
            active,
            request_size,
            response_size,
            path,
            bytes: scheme.counts_bytes(),
            scheme,
            side: registry.side,
            labels,
            by_code: std::array::from_fn(|_| OnceLock::new()),
            confirmed: AtomicBool::new(confirmed),
            unconfirmed: Arc::clone(unconfirmed),
        }
    }

    /// A call of this path ended with `code`: `OK` confirms the path.
    pub(crate) fn ended(&self, code: Code) {
        if code == Code::Ok
            && !self.confirmed.load(Ordering::Relaxed)
            && !self.confirmed.swap(true, Ordering::Relaxed)
        {
            self.unconfirmed.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// What one message of `len` bytes adds to its call's count: one message, or (A66) its
    /// bytes. A select, not a jump: the default path pays no branch for it.
    #[inline]
    pub(crate) fn weight(&self, len: usize) -> u64 {
        if self.bytes {
            len as u64
        } else {
            1
        }
    }

    /// Whether these are the handles of `path` itself (not `_OTHER`).
    pub(crate) fn is_for(&self, path: &MethodPath) -> bool {
        self.path.as_ref() == Some(path)
    }

    /// The handles for calls of this method that end with `code`.
    pub(crate) fn finished(&self, code: Code) -> &Finished {
        let slot = &self.by_code[code.as_u32() as usize % Code::ALL.len()];
        slot.get_or_init(|| self.scheme.finished(self.side, &self.labels, code))
    }
}

/// FNV-1a: method paths are short and trusted to be few per process once capped, so a fast
/// hash beats SipHash's flood resistance here (a flood of distinct paths ends at the cap).
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

type Methods = HashMap<MethodPath, Arc<MethodMetrics>, BuildHasherDefault<Fnv>>;

/// Every method's handles for one layer (shared by its clones).
pub(crate) struct Registry {
    side: Side,
    scheme: Arc<Scheme>,
    max_methods: usize,
    max_unconfirmed: usize,
    methods: RwLock<Methods>,
    /// How many of `methods` are not confirmed yet.
    unconfirmed: Arc<AtomicUsize>,
    other: OnceLock<Arc<MethodMetrics>>,
}

/// What a call's path found: its handles, and whether it is a candidate, a path counted under
/// `_OTHER` only because the places of unconfirmed paths are taken: if the call ends `OK`,
/// [`Registry::confirm`] gives the path its own series.
pub(crate) struct Found {
    pub(crate) handles: Arc<MethodMetrics>,
    pub(crate) candidate: bool,
}

impl Registry {
    /// `side`'s handles under `scheme`, for at most `max_methods` paths.
    pub(crate) fn new(side: Side, max_methods: usize, scheme: Scheme) -> Registry {
        Registry {
            side,
            scheme: Arc::new(scheme),
            max_methods,
            max_unconfirmed: DEFAULT_MAX_UNCONFIRMED.min(max_methods),
            methods: RwLock::new(Methods::default()),
            unconfirmed: Arc::new(AtomicUsize::new(0)),
            other: OnceLock::new(),
        }
    }

    /// The side whose metrics these are.
    pub(crate) fn side(&self) -> Side {
        self.side
    }

    /// The handles for `path`, registering them on first sight while there is room (see the
    /// module docs for the two caps).
    pub(crate) fn get(&self, path: &MethodPath) -> Found {
        let other = |candidate| Found {
            handles: self.other(),
            candidate,
        };
        // Checked before any lookup: a long path is not even hashed.
        if path.service().len() > MAX_LABEL_LEN || path.method().len() > MAX_LABEL_LEN {
            return other(false);
        }
        {
            let methods = self.methods.read().unwrap_or_else(|p| p.into_inner());
            if let Some(found) = methods.get(path) {
                return Found {
                    handles: Arc::clone(found),
                    candidate: false,
                };
            }
        }
        let mut methods = self.methods.write().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = methods.get(path) {
            return Found {
                handles: Arc::clone(found),
                candidate: false,
            };
        }
        if methods.len() >= self.max_methods {
            return other(false);
        }
        if self.unconfirmed.load(Ordering::Relaxed) >= self.max_unconfirmed {
            return other(true);
        }
        self.unconfirmed.fetch_add(1, Ordering::Relaxed);
        self.insert(&mut methods, path, false)
    }

    /// A call of `path`, a candidate counted under `_OTHER`, ended confirmed: the path gets
    /// series of its own from its next call, if there is room.
    pub(crate) fn confirm(&self, path: &MethodPath) {
        let mut methods = self.methods.write().unwrap_or_else(|p| p.into_inner());
        if methods.len() < self.max_methods && !methods.contains_key(path) {
            self.insert(&mut methods, path, true);
        }
    }

    /// Registers `path`'s handles.
    fn insert(&self, methods: &mut Methods, path: &MethodPath, confirmed: bool) -> Found {
        if methods.is_empty() {
            // Descriptions go to the recorder installed now, which is the one the handles use.
            self.scheme.describe();
        }
        // Unshared: a path read off the wire is a slice of the connection's read buffer.
        let path = path.unshared();
        let registered = Arc::new(MethodMetrics::register(
            self,
            Some(path.clone()),
            &self.unconfirmed,
            confirmed,
        ));
        methods.insert(path, Arc::clone(&registered));
        Found {
            handles: registered,
            candidate: false,
        }
    }

    /// The handles of `_OTHER`, registered on first use.
    fn other(&self) -> Arc<MethodMetrics> {
        Arc::clone(self.other.get_or_init(|| {
            // It may be the first series (`max_methods(0)`, a long first path): described too.
            self.scheme.describe();
            Arc::new(MethodMetrics::register(self, None, &self.unconfirmed, true))
        }))
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let methods = self.methods.read().map_or(0, |methods| methods.len());
        f.debug_struct("Registry")
            .field("names", &self.scheme.duration_name())
            .field("methods", &methods)
            .field("max_methods", &self.max_methods)
            .finish()
    }
}
