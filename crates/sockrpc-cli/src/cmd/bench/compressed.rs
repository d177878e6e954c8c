//! The `sockrpc-gzip` and `sockrpc-zstd` rows' server: the `Bench` service compressing its
//! answers and accepting compressed requests, one listener per encoding, on a runtime and
//! thread of its own (like the embedded server, so the client's runtime stays the client's).
//!
//! A server of its own rather than a setting of the embedded server's: the other rows measure
//! a service with no compression settings, whose calls cost nothing for it.

use crate::proto::{bench::bench_server::BenchServer, EchoService};
use sockrpc::{CompressionEncoding, Endpoint, Server};
use std::{io, net::SocketAddr, thread, time::Duration};

/// The encodings measured, in row order.
pub(super) const ENCODINGS: [CompressionEncoding; 2] =
    [CompressionEncoding::Gzip, CompressionEncoding::Zstd];

/// The running server; stops when dropped.
#[derive(Debug)]
pub(super) struct CompressedServer {
    addrs: Vec<SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl CompressedServer {
    /// Serves on `127.0.0.1`, free ports, one per encoding in [`ENCODINGS`].
    pub(super) fn start(workers: usize) -> io::Result<CompressedServer> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.max(1))
            .thread_name("sockrpc-bench-compressed")
            .enable_all()
            .build()?;
        let config = sockrpc::SocketConfig::default();
        let listeners = runtime.block_on(async {
            ENCODINGS
                .iter()
                .map(|_| sockrpc::transport::bind_tcp(([127, 0, 0, 1], 0).into(), &config))
                .collect::<io::Result<Vec<_>>>()
        })?;
        let addrs = listeners
            .iter()
            .map(tokio::net::TcpListener::local_addr)
            .collect::<io::Result<Vec<_>>>()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = thread::Builder::new()
            .name("sockrpc-bench-compressed".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let (done, _) = tokio::sync::watch::channel(());
                    let mut servers = Vec::new();
                    for (listener, encoding) in listeners.into_iter().zip(ENCODINGS) {
                        let mut until = done.subscribe();
                        servers.push(tokio::spawn(
                            Server::builder()
                                .add_service(
                                    BenchServer::new(EchoService::default())
                                        .accept_compressed(encoding)
                                        .send_compressed(encoding),
                                )
                                .serve_with_listener_and_shutdown(listener, async move {
                                    let _ = until.changed().await;
                                }),
                        ));
                    }
                    let _ = stopped.await;
                    drop(done);
                    for server in servers {
                        let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
                    }
                });
                runtime.shutdown_timeout(Duration::from_secs(1));
            })?;
        Ok(CompressedServer {
            addrs,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The endpoint serving `encoding`.
    pub(super) fn endpoint(&self, encoding: CompressionEncoding) -> Option<Endpoint> {
        let index = ENCODINGS.iter().position(|e| *e == encoding)?;
        let addr = self.addrs.get(index)?;
        Some(Endpoint::new(addr.ip().to_string(), addr.port()))
    }
}

impl Drop for CompressedServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
