//! `UdpSide`: a channel's UDP client, made again on each runtime that uses the channel after
//! the runtime that made the last one ended.
//!
//! Why: a [`UdpClient`] belongs to the runtime it was made on. Its socket is registered with
//! that runtime's reactor (answers are read through it) and its send-coalescing task runs
//! there; once that runtime shuts down, its calls from any other runtime go out but their
//! answers are never read, and coalesced requests never leave. A channel kept in a static and
//! used by tests that each run their own runtime would find its UDP calls hanging after the
//! first test.
//!
//! ```text
//!  call ─▶ clients[current] ─ made? ─no─▶ make it (a new socket, on this runtime) ─┐
//!                              └─yes──────────────────────────────────────────────┴─▶ UDP call
//!  the runtime it was made on shuts down ─▶ its watcher task is dropped ─▶ current += 1
//! ```
//!
//! Each client is made with a watcher task on its runtime that does nothing but end when the
//! runtime shuts down (or the channel goes): dropped with the runtime, it moves `current` on,
//! so the next call, on whatever runtime it runs, makes a client of its own there. A call reads
//! `current` (one atomic load) and the cell it names, as it read the one cell before: no lock,
//! no allocation. Cells are never emptied while the channel lives, so a call still on an old
//! client (across the switch) is never left holding a freed one; the cost is that a channel
//! keeps each old client (its socket) until it is dropped, and after [`GENERATIONS`] runtimes
//! it stops using UDP (its calls go over the stream, as when UDP is not set up).

use sockrpc_transport::endpoint::Endpoint;
use sockrpc_transport::udp::UdpClient;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use tokio::sync::{watch, OnceCell};

/// The most UDP clients one channel makes: runtimes that end one after another past this many
/// leave the channel calling over the stream only.
pub(crate) const GENERATIONS: usize = 64;

/// The UDP clients of one channel, one per runtime that used it in turn.
#[derive(Debug)]
pub(crate) struct UdpSide {
    /// The generation calls use: the first whose runtime has not ended.
    current: AtomicUsize,
    clients: Box<[OnceCell<UdpClient>]>,
    /// Dropped with the channel: the watchers of clients whose runtime lives on end then.
    alive: watch::Sender<()>,
}

impl Default for UdpSide {
    fn default() -> Self {
        UdpSide {
            current: AtomicUsize::new(0),
            clients: (0..GENERATIONS).map(|_| OnceCell::new()).collect(),
            alive: watch::Sender::new(()),
        }
    }
}

impl UdpSide {
    /// The generation calls use now (one atomic load): [`GENERATIONS`] or more when the
    /// channel made its last client.
    pub(crate) fn generation(&self) -> usize {
        self.current.load(Ordering::Acquire)
    }

    /// The client of `generation`, once made.
    pub(crate) fn get_at(&self, generation: usize) -> Option<&UdpClient> {
        self.clients.get(generation)?.get()
    }

    /// The current client, once made; `None` before, or when the channel made its last.
    pub(crate) fn get(&self) -> Option<&UdpClient> {
        self.get_at(self.generation())
    }

    /// The current client, made now (on this runtime) if it is not yet; `None` when UDP cannot
    /// be set up (the endpoint has no UDP policy in force, the socket could not be made, the
    /// channel is [`spent`](Self::spent)).
    pub(crate) async fn client(self: &Arc<Self>, endpoint: &Endpoint) -> Option<&UdpClient> {
        let policy = endpoint.udp_in_effect()?;
        let generation = self.current.load(Ordering::Acquire);
        let cell = self.clients.get(generation)?;
        let client = cell
            .get_or_try_init(|| async {
                let client = UdpClient::connect(policy.addr, policy.config.clone()).await?;
                self.watch(generation);
                Ok::<_, std::io::Error>(client)
            })
            .await;
        match client {
            Ok(client) => Some(client),
            Err(err) => {
                tracing::debug!(error = %err, "UDP unavailable; using the stream");
                None
            }
        }
    }

    /// Starts the task that moves `current` past `generation` when this runtime shuts down.
    fn watch(self: &Arc<Self>, generation: usize) {
        let ended = RuntimeEnded {
            side: Arc::downgrade(self),
            generation,
        };
        let mut alive = self.alive.subscribe();
        tokio::spawn(async move {
            // Ends when the channel goes (the sender is dropped): nothing to move on then.
            while alive.changed().await.is_ok() {}
            ended.disarm();
        });
    }
}

/// Moves a channel's UDP side past `generation` when dropped armed: the watcher task was
/// dropped unfinished, which a runtime does to its tasks as it shuts down.
struct RuntimeEnded {
    side: Weak<UdpSide>,
    generation: usize,
}

impl RuntimeEnded {
    /// The watcher ended by itself (the channel is gone).
    fn disarm(mut self) {
        self.side = Weak::new();
    }
}

impl Drop for RuntimeEnded {
    fn drop(&mut self) {
        if let Some(side) = self.side.upgrade() {
            let next = self.generation + 1;
            // Only from this generation: a later one is already current.
            let _ = side.current.compare_exchange(
                self.generation,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            tracing::debug!(
                generation = next,
                "the runtime of the channel's UDP client ended; the next call makes another"
            );
        }
    }
}
