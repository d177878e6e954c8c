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
//! name for a value outside the known set).
//!
//! Why a length bound too: every series of a method repeats its service and method names, and
//! the recorder keeps them for as long as the process runs. A thousand made-up paths of 60 KB
//! each held 475 MB on a server and rendered a 1.6 GB page. A path whose service or method
//! name is longer than [`MAX_LABEL_LEN`] bytes is counted under `_OTHER`, so what a client can
//! make the recorder keep is at most about [`DEFAULT_MAX_METHODS`] times twice that, per series.

use super::names::{Names, OTHER, STATUS_CODE};
use crate::trace::RPC_SYSTEM;
use crate::Side;
use ::metrics::{Counter, Gauge, Histogram, Label};
use sockrpc_protocol::{Code, MethodPath};
use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hasher},
    sync::{Arc, OnceLock, RwLock},
};

/// How many distinct method paths a layer gives series of their own.
pub const DEFAULT_MAX_METHODS: usize = 1000;

/// The longest service or method name, in bytes, that gets series of its own: a longer one is
/// counted under `_OTHER`. Real names are far shorter (`grpc.reflection.v1.ServerReflection`
/// is 35 bytes).
pub const MAX_LABEL_LEN: usize = 256;

/// The handles of one method, on one side.
pub(crate) struct MethodMetrics {
    /// The path these are for (storage of its own); `None` for `_OTHER`, which stands for many.
    path: Option<MethodPath>,
    names: &'static Names,
    labels: [Label; 3],
    pub(crate) started: Counter,
    pub(crate) active: Gauge,
    pub(crate) request_bytes: Counter,
    pub(crate) response_bytes: Counter,
    by_code: [OnceLock<Finished>; Code::ALL.len()],
}

/// The handles of one method and status code, registered the first time a call ends with it
/// (so a scrape shows only the codes that happened).
pub(crate) struct Finished {
    pub(crate) count: Counter,
    pub(crate) duration: Histogram,
}

impl MethodMetrics {
    fn register(
        names: &'static Names,
        path: Option<MethodPath>,
        service: &str,
        method: &str,
    ) -> MethodMetrics {
        let labels = [
            Label::from_static_parts("rpc.system", RPC_SYSTEM),
            Label::new("rpc.service", service.to_owned()),
            Label::new("rpc.method", method.to_owned()),
        ];
        MethodMetrics {
            started: ::metrics::counter!(names.started, labels.to_vec()),
            active: ::metrics::gauge!(names.active, labels.to_vec()),
            request_bytes: ::metrics::counter!(names.request_bytes, labels.to_vec()),
            response_bytes: ::metrics::counter!(names.response_bytes, labels.to_vec()),
            path,
            names,
            labels,
            by_code: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// Whether these are the handles of `path` itself (not `_OTHER`).
    pub(crate) fn is_for(&self, path: &MethodPath) -> bool {
        self.path.as_ref() == Some(path)
    }

    /// The handles for calls of this method that end with `code`.
    pub(crate) fn finished(&self, code: Code) -> &Finished {
        let slot = &self.by_code[code.as_u32() as usize % Code::ALL.len()];
        slot.get_or_init(|| {
            let mut labels = self.labels.to_vec();
            labels.push(Label::from_static_parts(STATUS_CODE, code.as_str()));
            Finished {
                count: ::metrics::counter!(self.names.finished, labels.clone()),
                duration: ::metrics::histogram!(self.names.duration, labels),
            }
        })
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
    names: &'static Names,
    max_methods: usize,
    methods: RwLock<Methods>,
    other: OnceLock<Arc<MethodMetrics>>,
}

impl Registry {
    pub(crate) fn new(side: Side, max_methods: usize) -> Registry {
        Registry {
            side,
            names: Names::of(side),
            max_methods,
            methods: RwLock::new(Methods::default()),
            other: OnceLock::new(),
        }
    }

    /// The side whose metrics these are.
    pub(crate) fn side(&self) -> Side {
        self.side
    }

    /// The handles for `path`, registering them on first sight.
    pub(crate) fn get(&self, path: &MethodPath) -> Arc<MethodMetrics> {
        // Checked before any lookup: a long path is not even hashed.
        if path.service().len() > MAX_LABEL_LEN || path.method().len() > MAX_LABEL_LEN {
            return self.other();
        }
        {
            let methods = self.methods.read().unwrap_or_else(|p| p.into_inner());
            if let Some(found) = methods.get(path) {
                return Arc::clone(found);
            }
        }
        let mut methods = self.methods.write().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = methods.get(path) {
            return Arc::clone(found);
        }
        if methods.len() >= self.max_methods {
            drop(methods);
            return self.other();
        }
        if methods.is_empty() {
            // Descriptions go to the recorder installed now, which is the one the handles use.
            self.names.describe();
        }
        // Unshared: a path read off the wire is a slice of the connection's read buffer.
        let path = path.unshared();
        let registered = Arc::new(MethodMetrics::register(
            self.names,
            Some(path.clone()),
            path.service(),
            path.method(),
        ));
        methods.insert(path, Arc::clone(&registered));
        registered
    }

    /// The handles of `_OTHER`, registered on first use.
    fn other(&self) -> Arc<MethodMetrics> {
        Arc::clone(
            self.other
                .get_or_init(|| Arc::new(MethodMetrics::register(self.names, None, OTHER, OTHER))),
        )
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let methods = self.methods.read().map_or(0, |methods| methods.len());
        f.debug_struct("Registry")
            .field("names", &self.names.duration)
            .field("methods", &methods)
            .field("max_methods", &self.max_methods)
            .finish()
    }
}
