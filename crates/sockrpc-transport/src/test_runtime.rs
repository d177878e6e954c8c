//! Runtimes built by hand, for the unit tests of code that must work across runtimes (a UDP
//! client's tasks: its coalescer's flush task and its timer task): one definition instead of
//! one per test module.

/// A runtime with `threads` workers, or a current-thread one for 0; every driver enabled.
pub(crate) fn runtime(threads: usize) -> tokio::runtime::Runtime {
    let mut builder = match threads {
        0 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(n);
            builder
        }
    };
    builder.enable_all().build().expect("runtime")
}
