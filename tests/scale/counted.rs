//! A Greeter server that counts the connections it accepted and those still open: what tells
//! how many connections a client holds to it (pick first must hold one, to one server only).

use super::support::Named;
use sockrpc_tests::helloworld::greeter_server::GreeterServer;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::{AbortHandle, JoinHandle};

/// A server on `127.0.0.1` that counts its connections.
pub(crate) struct Counted {
    pub(crate) addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    accept: JoinHandle<()>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
}

/// Takes one off the open count as its connection's task ends, however it ends.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Counted {
    /// Serves on a fresh port.
    pub(crate) async fn start() -> Counted {
        Counted::on(TcpListener::bind("127.0.0.1:0").await.expect("bind"))
    }

    /// Serves on `listener`.
    pub(crate) fn on(listener: TcpListener) -> Counted {
        let addr = listener.local_addr().expect("addr");
        let named = Named {
            addr,
            delay: Duration::ZERO,
            sick: Default::default(),
        };
        let server = Arc::new(sockrpc::Server::builder().add_service(GreeterServer::new(named)));
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let conns: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accept = tokio::spawn({
            let (accepted, open, conns) = (accepted.clone(), open.clone(), conns.clone());
            async move {
                while let Ok((stream, peer)) = listener.accept().await {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    open.fetch_add(1, Ordering::SeqCst);
                    let guard = Open(Arc::clone(&open));
                    let server = Arc::clone(&server);
                    let task = tokio::spawn(async move {
                        let _guard = guard;
                        server.serve_connection(stream, Some(peer)).await;
                    });
                    conns.lock().expect("conns").push(task.abort_handle());
                }
            }
        });
        Counted {
            addr,
            accepted,
            open,
            accept,
            conns,
        }
    }

    /// Connections accepted so far.
    pub(crate) fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// What cuts the connections open at the time, the server going on accepting new ones.
    pub(crate) fn cutter(&self) -> Cutter {
        Cutter(Arc::clone(&self.conns))
    }

    /// Stops listening and cuts every connection, as a killed server: its port refuses.
    pub(crate) fn kill(self) -> SocketAddr {
        self.accept.abort();
        for conn in self.conns.lock().expect("conns").drain(..) {
            conn.abort();
        }
        self.addr
    }
}

/// Cuts a [`Counted`] server's open connections ([`Counted::cutter`]).
pub(crate) struct Cutter(Arc<Mutex<Vec<AbortHandle>>>);

impl Cutter {
    /// Cuts every connection open now, as a reset: the client sees it closed.
    pub(crate) fn cut(&self) {
        for conn in self.0.lock().expect("conns").drain(..) {
            conn.abort();
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.accept.abort();
        for conn in self.conns.lock().expect("conns").drain(..) {
            conn.abort();
        }
    }
}

/// Waits (bounded: 1,000 turns of 10 ms, on whatever clock runs) until `cond` holds.
pub(crate) async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never: {what}");
}
