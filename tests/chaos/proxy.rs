//! A loopback TCP proxy that kills its connections at random.
//!
//! ```text
//!  client ──▶ proxy link ──▶ server        each link draws a plan from a seeded RNG:
//!             (both ways)                   die after B bytes (both directions together)
//!                                           or after T ms, whichever comes first;
//!                                           die with a reset (RST) or a plain close (FIN)
//! ```
//!
//! A byte budget can run out in the middle of a read, so a link forwards only part of what it
//! read before it dies: cuts land anywhere, mid-frame and mid-preface included. Each direction
//! runs a small frame tracker over the bytes it forwarded, so the proxy can tell how many cuts
//! fell inside a frame. Killing happens only while chaos is on; once it is switched off, no
//! link (old or new) is killed again. Dropping the proxy stops it and every link.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// xorshift64*: small, seeded, good enough to pick cut points.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        // Zero is xorshift's one fixed point.
        Rng(seed.max(1))
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant here).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the proxy has done, for the test's report.
#[derive(Debug, Default)]
pub(crate) struct ProxyStats {
    /// Connections accepted and linked to the server.
    pub(crate) links: AtomicU64,
    /// Links killed on purpose.
    pub(crate) kills: AtomicU64,
    /// Kills that left a frame (or a preface) half-forwarded in at least one direction.
    pub(crate) mid_frame: AtomicU64,
    /// Kills by reset (the rest closed with FIN).
    pub(crate) resets: AtomicU64,
}

struct Shared {
    upstream: SocketAddr,
    chaos: AtomicBool,
    stats: ProxyStats,
}

/// The proxy. Links are killed only while [`ChaosProxy::set_chaos`] is on.
pub(crate) struct ChaosProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        // The accept task owns the links' JoinSet: aborting it aborts every link.
        self.task.abort();
    }
}

impl ChaosProxy {
    /// Listens on 127.0.0.1 and forwards every connection to `upstream`; link plans come from
    /// an RNG seeded with `seed`.
    pub(crate) async fn start(upstream: SocketAddr, seed: u64) -> ChaosProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy on loopback");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            upstream,
            chaos: AtomicBool::new(false),
            stats: ProxyStats::default(),
        });
        let task = tokio::spawn(accept(listener, Arc::clone(&shared), Rng::new(seed)));
        ChaosProxy { addr, shared, task }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn set_chaos(&self, on: bool) {
        self.shared.chaos.store(on, Ordering::SeqCst);
    }

    pub(crate) fn stats(&self) -> &ProxyStats {
        &self.shared.stats
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>, mut rng: Rng) {
    let mut links = JoinSet::new();
    loop {
        while links.try_join_next().is_some() {}
        let Ok((client, _)) = listener.accept().await else {
            // Out of descriptors or similar: do not spin.
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        let Ok(server) = TcpStream::connect(shared.upstream).await else {
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        shared.stats.links.fetch_add(1, Ordering::Relaxed);
        let plan = Plan::draw(&mut rng);
        links.spawn(link(client, server, plan, Arc::clone(&shared)));
    }
}

/// The longest a link lives while chaos is on.
pub(crate) const MAX_LIFE: Duration = Duration::from_millis(80);

/// When and how one link dies (if chaos is on by then).
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Bytes forwarded, both directions together, before the cut.
    bytes: u64,
    /// Time before the cut.
    after: Duration,
    /// Reset (RST) rather than close (FIN).
    reset: bool,
}

impl Plan {
    fn draw(rng: &mut Rng) -> Plan {
        // Mostly lives long enough for some calls; sometimes dies in the handshake or the first
        // frames (which also exercises the pool's reconnect backoff).
        let bytes = match rng.below(8) {
            0 => rng.below(64),
            1 | 2 => rng.below(4 * 1024),
            3..=5 => rng.below(64 * 1024),
            _ => rng.below(512 * 1024),
        };
        Plan {
            bytes,
            after: Duration::from_micros(rng.below(MAX_LIFE.as_micros() as u64)),
            reset: rng.below(2) == 0,
        }
    }
}

/// The bytes a link may still forward before it dies.
struct Budget<'a> {
    left: AtomicU64,
    chaos: &'a AtomicBool,
}

impl Budget<'_> {
    /// How many of `n` bytes just read may pass, and whether the link dies after them (the
    /// budget ran out inside this read or exactly at its end).
    fn take(&self, n: usize) -> (usize, bool) {
        if !self.chaos.load(Ordering::SeqCst) {
            return (n, false);
        }
        let n = n as u64;
        let mut passed = 0;
        let mut cut = false;
        let _ = self
            .left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                passed = left.min(n);
                cut = left <= n;
                Some(left - passed)
            });
        (passed as usize, cut)
    }
}

/// Follows the sockrpc byte stream (8-byte preface, then 12-byte headers with a 4-byte body
/// length first) just far enough to know whether it stands between frames.
struct FrameTracker {
    preface_left: usize,
    header: [u8; 4],
    header_have: usize,
    body_left: u64,
}

impl FrameTracker {
    const PREFACE: usize = 8;
    const HEADER: usize = 12;

    fn new() -> FrameTracker {
        FrameTracker {
            preface_left: Self::PREFACE,
            header: [0; 4],
            header_have: 0,
            body_left: 0,
        }
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.preface_left > 0 {
                let k = self.preface_left.min(bytes.len());
                self.preface_left -= k;
                bytes = &bytes[k..];
            } else if self.body_left > 0 {
                let k = self.body_left.min(bytes.len() as u64) as usize;
                self.body_left -= k as u64;
                bytes = &bytes[k..];
            } else {
                if self.header_have < 4 {
                    self.header[self.header_have] = bytes[0];
                }
                self.header_have += 1;
                bytes = &bytes[1..];
                if self.header_have == Self::HEADER {
                    self.header_have = 0;
                    self.body_left = u64::from(u32::from_be_bytes(self.header));
                }
            }
        }
    }

    /// Nothing forwarded yet, or exactly up to the end of a frame.
    fn between_frames(&self) -> bool {
        (self.preface_left == 0 || self.preface_left == Self::PREFACE)
            && self.header_have == 0
            && self.body_left == 0
    }
}

/// Why a pump stopped.
enum Stop {
    /// The budget ran out: kill the link.
    Cut,
    /// A socket failed (the peer reset it): the link is over anyway.
    Broken,
}

async fn pump(
    from: &mut OwnedReadHalf,
    to: &mut OwnedWriteHalf,
    budget: &Budget<'_>,
    tracker: &mut FrameTracker,
) -> Result<(), Stop> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) => {
                // A clean close passes through as one; the other direction goes on.
                let _ = to.shutdown().await;
                return Ok(());
            }
            Ok(n) => n,
            Err(_) => return Err(Stop::Broken),
        };
        let (pass, cut) = budget.take(n);
        if pass > 0 {
            to.write_all(&buf[..pass]).await.map_err(|_| Stop::Broken)?;
            tracker.feed(&buf[..pass]);
        }
        if cut {
            return Err(Stop::Cut);
        }
    }
}

async fn link(client: TcpStream, server: TcpStream, plan: Plan, shared: Arc<Shared>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let budget = Budget {
        left: AtomicU64::new(plan.bytes),
        chaos: &shared.chaos,
    };
    let mut up = FrameTracker::new();
    let mut down = FrameTracker::new();
    let killed = {
        let pumps = async {
            tokio::try_join!(
                pump(&mut client_read, &mut server_write, &budget, &mut up),
                pump(&mut server_read, &mut client_write, &budget, &mut down),
            )
        };
        let timer = async {
            tokio::time::sleep(plan.after).await;
            // Past its time the link dies as soon as chaos is (or comes back) on.
            while !shared.chaos.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::select! {
            result = pumps => matches!(result, Err(Stop::Cut)),
            () = timer => true,
        }
    };
    if !killed {
        return;
    }
    let stats = &shared.stats;
    stats.kills.fetch_add(1, Ordering::Relaxed);
    if !up.between_frames() || !down.between_frames() {
        stats.mid_frame.fetch_add(1, Ordering::Relaxed);
    }
    // Put each socket back together so dropping it closes it at once (a dropped write half
    // alone would only half-close it).
    let (Ok(client), Ok(server)) = (
        client_read.reunite(client_write),
        server_read.reunite(server_write),
    ) else {
        return;
    };
    if plan.reset {
        stats.resets.fetch_add(1, Ordering::Relaxed);
        // Linger 0: close sends RST, discarding anything unsent.
        let _ = client.set_zero_linger();
        let _ = server.set_zero_linger();
    }
    drop(client);
    drop(server);
}
