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
//!  the runtime it was made on shuts down ─▶ its watcher task is dropped ─▶ current += 1,
//!                                                  the channel lets go of that client
//! ```
//!
//! Each client is made with a watcher task on its runtime that does nothing but end when the
//! runtime shuts down (or the channel goes): dropped with the runtime, it moves `current` on,
//! so the next call, on whatever runtime it runs, makes a client of its own there. A call reads
//! `current` (one atomic load) and the cell it names, and takes a strong handle of the client
//! there for its duration (in place of the handle of this side it took before: no new cost).
//!
//! A cell holds its client weakly; the channel keeps the clients of generations whose runtime
//! lives (`live`), and lets a client go when its runtime ends: the client (its socket, its
//! buffers) goes as the last call on it ends. Cells are never emptied while the channel lives
//! (a call may be reading one), but all a dead generation leaves is its cell and a weak
//! pointer, so the cells grow in chunks, each twice the one before: [`GENERATIONS`] is far more
//! runtimes than any process runs in turn (past it, the channel would call over the stream
//! only, as when UDP is not set up).

use sockrpc_transport::endpoint::Endpoint;
use sockrpc_transport::udp::{UdpClient, WeakUdpClient};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use tokio::sync::{watch, OnceCell};

/// Cells of the first chunk; chunk `k` has `FIRST << k`.
const FIRST: usize = 64;

/// Chunks of cells, each allocated when the first of its generations is reached.
const CHUNKS: usize = 24;

/// The most UDP clients one channel makes (about a billion): runtimes that end one after
/// another past this many would leave the channel calling over the stream only.
pub(crate) const GENERATIONS: usize = FIRST * ((1 << CHUNKS) - 1);

/// The chunk of `generation` and its place there.
fn place(generation: usize) -> (usize, usize) {
    // Chunk k holds generations FIRST·(2ᵏ − 1) up to FIRST·(2ᵏ⁺¹ − 1), exclusive.
    let n = generation / FIRST + 1;
    let chunk = n.ilog2() as usize;
    (chunk, generation - FIRST * ((1 << chunk) - 1))
}

/// One chunk of cells: one per generation, holding its client weakly once made.
type Chunk = Box<[OnceCell<WeakUdpClient>]>;

/// The UDP clients of one channel, one per runtime that used it in turn.
#[derive(Debug)]
pub(crate) struct UdpSide {
    /// The generation calls use: the first whose runtime has not ended.
    current: AtomicUsize,
    /// Each generation's client, held weakly, at its [`place`].
    chunks: Box<[OnceLock<Chunk>]>,
    /// The clients of the generations whose runtime has not ended, by generation: what keeps
    /// them alive between calls.
    live: Mutex<Vec<(usize, UdpClient)>>,
    /// Dropped with the channel, or taken when it closes: the watchers of clients whose
    /// runtime lives on end then.
    alive: Mutex<Option<watch::Sender<()>>>,
}

impl Default for UdpSide {
    fn default() -> Self {
        UdpSide {
            current: AtomicUsize::new(0),
            chunks: (0..CHUNKS).map(|_| OnceLock::new()).collect(),
            live: Mutex::new(Vec::new()),
            alive: Mutex::new(Some(watch::Sender::new(()))),
        }
    }
}

impl UdpSide {
    /// The generation calls use now (one atomic load): [`GENERATIONS`] or more when the
    /// channel made its last client.
    pub(crate) fn generation(&self) -> usize {
        self.current.load(Ordering::Acquire)
    }

    /// The cell of `generation`, if its chunk was allocated.
    fn cell(&self, generation: usize) -> Option<&OnceCell<WeakUdpClient>> {
        let (chunk, at) = place(generation);
        self.chunks.get(chunk)?.get()?.get(at)
    }

    /// The client of `generation`, once made and while it lives.
    pub(crate) fn get_at(&self, generation: usize) -> Option<UdpClient> {
        self.cell(generation)?.get()?.upgrade()
    }

    /// The current client, once made; `None` before, or when the channel made its last.
    pub(crate) fn get(&self) -> Option<UdpClient> {
        self.get_at(self.generation())
    }

    /// The current client, made now (on this runtime) if it is not yet; `None` when UDP cannot
    /// be set up (the endpoint has no UDP policy in force, the socket could not be made, the
    /// channel made its last client).
    pub(crate) async fn client(self: &Arc<Self>, endpoint: &Endpoint) -> Option<UdpClient> {
        let policy = endpoint.udp_in_effect()?;
        if self.is_closed() {
            return None;
        }
        let generation = self.current.load(Ordering::Acquire);
        let (chunk, at) = place(generation);
        let cells = self
            .chunks
            .get(chunk)?
            .get_or_init(|| (0..FIRST << chunk).map(|_| OnceCell::new()).collect());
        let cell = cells.get(at)?;
        let client = cell
            .get_or_try_init(|| async {
                let client = UdpClient::connect(policy.addr, policy.config.clone()).await?;
                let weak = client.downgrade();
                // Not kept once the channel closed (it closed while this one was made).
                if self.watch(generation) {
                    lock(&self.live).push((generation, client));
                    if self.is_closed() {
                        // It closed between the two: `close` may have emptied `live` first.
                        lock(&self.live).clear();
                    }
                }
                Ok::<_, std::io::Error>(weak)
            })
            .await;
        match client {
            // `None` once its runtime ended (the next call makes another).
            Ok(weak) => weak.upgrade(),
            Err(err) => {
                tracing::debug!(error = %err, "UDP unavailable; using the stream");
                None
            }
        }
    }

    /// Whether the channel was closed ([`close`](Self::close)).
    fn is_closed(&self) -> bool {
        lock(&self.alive).is_none()
    }

    /// The channel closed: its clients are let go (each goes, its socket and its timer task
    /// with it, as the last call on it ends) and their watchers end; no other is made.
    pub(crate) fn close(&self) {
        let alive = lock(&self.alive).take();
        let clients = std::mem::take(&mut *lock(&self.live));
        drop((alive, clients));
    }

    /// Starts the task that moves `current` past `generation` when this runtime shuts down;
    /// false (none started) once the channel closed.
    fn watch(self: &Arc<Self>, generation: usize) -> bool {
        let ended = RuntimeEnded {
            side: Arc::downgrade(self),
            generation,
        };
        let Some(mut alive) = lock(&self.alive).as_ref().map(watch::Sender::subscribe) else {
            return false;
        };
        tokio::spawn(async move {
            // Ends when the channel goes (the sender is dropped): nothing to move on then.
            while alive.changed().await.is_ok() {}
            ended.disarm();
        });
        true
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
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
            // The channel lets the client go: it goes as the last call on it ends.
            let ended: Vec<(usize, UdpClient)> = {
                let mut live = lock(&side.live);
                let (ended, kept) = live
                    .drain(..)
                    .partition(|(generation, _)| *generation == self.generation);
                *live = kept;
                ended
            };
            drop(ended);
            tracing::debug!(
                generation = next,
                "the runtime of the channel's UDP client ended; the next call makes another"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_fill_each_chunk_then_the_next_twice_as_large() {
        assert_eq!(place(0), (0, 0));
        assert_eq!(place(FIRST - 1), (0, FIRST - 1));
        assert_eq!(place(FIRST), (1, 0));
        assert_eq!(place(3 * FIRST - 1), (1, 2 * FIRST - 1));
        assert_eq!(place(3 * FIRST), (2, 0));
        assert_eq!(
            place(GENERATIONS - 1),
            (CHUNKS - 1, (FIRST << (CHUNKS - 1)) - 1)
        );
        assert_eq!(place(GENERATIONS).0, CHUNKS);
    }
}
