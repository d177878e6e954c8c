//! The raw TCP echo (the floor of `sockrpc bench`, and under TLS the floor of `raw-tls`), with
//! the limits any server on a port needs.
//!
//! `sockrpc serve` always runs this echo beside the sockrpc service, in the same process, so a
//! peer of the echo must not be able to make that process hold what it merely announces:
//! - a frame is at most [`MAX_FRAME`] bytes, sockrpc's own 4 MiB message limit (the bench
//!   sends nothing larger); a larger announced length closes the connection at once;
//! - a connection reads into a [`BASE`] buffer, the size sockrpc's own reader uses. Only a
//!   frame larger than that grows it, to exactly that frame, and the growth is charged to a
//!   [`Budget`] shared by all of the echo's connections ([`BUDGET`]). A connection that finds
//!   the budget spent stops reading until another gives some back, so a flood of unfinished
//!   frames makes the echo wait, not grow;
//! - a frame must complete within [`FRAME_TIMEOUT`] of its first byte (a completed frame
//!   restarts the clock), as sockrpc's server asks: a peer that stops mid-frame is closed and
//!   gives its budget back;
//! - at most [`MAX_CONNECTIONS`] connections at once; one past it is closed on accept;
//! - a connection that reads nothing for [`IDLE_TIMEOUT`] (within a quarter more) is closed,
//!   whether idle or stuck
//!   writing an echo to a peer that does not read (which would hold its slot and its budget for
//!   ever). A watchdog task per connection checks, so the echo's own path pays one store per
//!   read and no timer: the floor stays the floor.
//!
//! Why each connection was closed is logged at DEBUG: the echo is a measuring tool, and a peer
//! flooding it must not flood the log of the service it runs beside.

use bytes::{Buf, BytesMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::{future::Future, io, sync::Arc, time::Duration};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Notify, Semaphore};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

/// Largest frame payload the echo accepts: sockrpc's default message limit, which bounds the
/// bench's payloads too.
pub(crate) const MAX_FRAME: usize = 4 * 1024 * 1024;

/// What a connection's read buffer holds without charging the budget.
pub(crate) const BASE: usize = 16 * 1024;

/// Bytes that all of an echo's connections together may hold beyond their [`BASE`] buffers.
pub(crate) const BUDGET: usize = 64 * 1024 * 1024;

/// How long a frame may take from its first byte to its last.
pub(crate) const FRAME_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections one echo serves at once.
pub(crate) const MAX_CONNECTIONS: usize = 4096;

/// How long a connection may read nothing (idle, or stuck writing to a peer that does not read)
/// before it is closed.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Reads one connection has made so far, for its watchdog ([`IDLE_TIMEOUT`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Activity(Arc<AtomicU64>);

impl Activity {
    /// Notes the `n`th read (one writer: a plain store, no locked instruction).
    fn note(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }

    fn reads(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Closes the connection `abort` names once it has read nothing for [`IDLE_TIMEOUT`] (looking
/// every quarter of it, so within 1.25 times it); ends when `ended` does (the connection's task
/// dropped its sender).
async fn watchdog(
    activity: Activity,
    abort: AbortHandle,
    mut ended: oneshot::Receiver<()>,
) -> bool {
    let mut seen = activity.reads();
    let mut quiet_since = Instant::now();
    loop {
        tokio::select! {
            _ = &mut ended => return false,
            () = tokio::time::sleep(IDLE_TIMEOUT / 4) => {}
        }
        let now = activity.reads();
        if now != seen {
            seen = now;
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= IDLE_TIMEOUT {
            abort.abort();
            return true;
        }
    }
}

/// Bytes an echo's connections may hold beyond their base buffers, shared among them.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: usize,
    held: std::sync::Mutex<usize>,
    freed: Notify,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub(crate) fn new(limit: usize) -> Arc<Budget> {
        Arc::new(Budget {
            limit,
            held: std::sync::Mutex::new(0),
            freed: Notify::new(),
        })
    }

    /// Takes `bytes` if they are free now.
    fn try_take(&self, bytes: usize) -> bool {
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if *held + bytes <= self.limit {
            *held += bytes;
            true
        } else {
            false
        }
    }

    /// Takes `bytes`, waiting until `deadline` for other connections to give some back.
    async fn take(&self, bytes: usize, deadline: Instant) -> io::Result<()> {
        if bytes > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "frame larger than the echo's whole budget",
            ));
        }
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before the check, so a release between the two is not missed.
            freed.as_mut().enable();
            if self.try_take(bytes) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no budget for the frame in progress within the frame timeout",
                ));
            }
        }
    }

    /// Gives `bytes` back and wakes the connections waiting for some.
    fn give(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        *held = held.saturating_sub(bytes);
        drop(held);
        self.freed.notify_waiters();
    }

    /// Bytes held right now.
    #[cfg(test)]
    fn held(&self) -> usize {
        *self
            .held
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// What one connection took from the budget; given back when the connection ends.
struct Charge {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.give(self.bytes);
    }
}

/// Accepts connections and echoes frames on each until the task is dropped, which also drops
/// every connection (they live in this task's `JoinSet`).
pub(crate) async fn serve_tcp(listener: TcpListener) {
    serve_each(listener, "raw echo", echo_tcp).await;
}

/// Accepts connections, at most [`MAX_CONNECTIONS`] at once, and runs `conn` on each with the
/// budget they share, until the task is dropped; `what` names the echo in the log.
pub(crate) async fn serve_each<F, Fut>(listener: TcpListener, what: &'static str, conn: F)
where
    F: Fn(TcpStream, Arc<Budget>, Activity) -> Fut,
    Fut: Future<Output = io::Result<()>> + Send + 'static,
{
    let budget = Budget::new(BUDGET);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                        tracing::debug!(%peer, "{what}: at its connection limit, closing");
                        continue;
                    };
                    // Nagle would hold back every echo behind the peer's delayed ACK.
                    let _ = stream.set_nodelay(true);
                    let activity = Activity::default();
                    let served = conn(stream, Arc::clone(&budget), activity.clone());
                    let (done, ended) = oneshot::channel::<()>();
                    let abort = conns.spawn(async move {
                        let _done = done;
                        if let Err(err) = served.await {
                            tracing::debug!(%peer, error = %err, "{what}: connection closed");
                        }
                        drop(slot);
                    });
                    conns.spawn(async move {
                        if watchdog(activity, abort, ended).await {
                            tracing::debug!(%peer, "{what}: nothing read for {IDLE_TIMEOUT:?}, closed");
                        }
                    });
                }
                // Out of descriptors, usually: back off instead of spinning on the same error.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Length of the complete frames at the start of `buf`, and the whole length (header
/// included) of the unfinished frame after them when its header has arrived; an error for an
/// oversized one.
fn complete_frames(buf: &[u8]) -> io::Result<(usize, Option<usize>)> {
    let mut end = 0;
    while let Some(head) = buf.get(end..end + 4) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        if len > MAX_FRAME {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("frame of {len} bytes exceeds {MAX_FRAME}"),
            ));
        }
        if buf.len() - end - 4 < len {
            return Ok((end, Some(4 + len)));
        }
        end += 4 + len;
    }
    Ok((end, None))
}

/// Echoes every complete frame of `stream` back, in one write per read, within the limits the
/// module describes; `budget` is shared by the connections of one echo.
pub(crate) async fn echo_tcp<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    budget: Arc<Budget>,
    activity: Activity,
) -> io::Result<()> {
    let mut reads = 0u64;
    let mut buf = BytesMut::with_capacity(BASE);
    let mut charge = Charge { budget, bytes: 0 };
    // When the frame in progress must be complete; `None` while the buffer is empty.
    let mut due: Option<Instant> = None;
    loop {
        let n = match due {
            None => stream.read_buf(&mut buf).await?,
            Some(due) => match tokio::time::timeout_at(due, stream.read_buf(&mut buf)).await {
                Ok(read) => read?,
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "frame not completed within the frame timeout",
                    ))
                }
            },
        };
        if n == 0 {
            return Ok(());
        }
        reads += 1;
        activity.note(reads);
        let (end, unfinished) = complete_frames(&buf)?;
        if end > 0 {
            stream.write_all(&buf[..end]).await?;
            // A no-op on TCP; on TLS, writes out whatever the session still holds.
            stream.flush().await?;
            buf.advance(end);
        }
        if buf.is_empty() {
            due = None;
        } else if end > 0 || due.is_none() {
            due = Some(Instant::now() + FRAME_TIMEOUT);
        }
        // A buffer grown for a large frame is given up once that frame is out.
        if charge.bytes > 0 && buf.len() <= BASE && unfinished.is_none_or(|len| len <= BASE) {
            let mut fresh = BytesMut::with_capacity(BASE);
            fresh.extend_from_slice(&buf);
            buf = fresh;
            charge.budget.give(std::mem::take(&mut charge.bytes));
        }
        let want = unfinished.unwrap_or(0).max(BASE);
        if want > BASE && buf.capacity() < want {
            // Exactly the frame in progress, charged before it is allocated.
            let extra = want - BASE;
            let deadline = due.unwrap_or_else(|| Instant::now() + FRAME_TIMEOUT);
            if extra > charge.bytes {
                charge.budget.take(extra - charge.bytes, deadline).await?;
                charge.bytes = extra;
            }
            let mut bigger = BytesMut::with_capacity(want);
            bigger.extend_from_slice(&buf);
            buf = bigger;
        } else if buf.capacity() - buf.len() < BASE / 4 && want <= BASE {
            // Room for the next read of small frames: reclaims the space already echoed.
            buf.reserve(BASE - buf.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_frames_finds_the_unfinished_one() {
        let mut buf = vec![0, 0, 0, 2, b'a', b'b'];
        buf.extend_from_slice(&[0, 0, 0, 5, b'x']);
        assert_eq!(complete_frames(&buf).expect("frames"), (6, Some(9)));
        assert_eq!(complete_frames(&buf[..6]).expect("frames"), (6, None));
        assert_eq!(complete_frames(&buf[..8]).expect("frames"), (6, None));
        let over = ((MAX_FRAME + 1) as u32).to_be_bytes();
        assert!(complete_frames(&over).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_waits_for_budget_and_gets_it_when_another_gives_back() {
        let budget = Budget::new(100);
        let deadline = Instant::now() + Duration::from_secs(30);
        budget.take(80, deadline).await.expect("first");
        let waiting = {
            let budget = Arc::clone(&budget);
            tokio::spawn(async move { budget.take(50, deadline).await })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiting.is_finished(), "over budget: it waits");
        budget.give(80);
        waiting.await.expect("task").expect("budget given back");
        assert_eq!(budget.held(), 50);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_budget_ends_at_the_deadline() {
        let budget = Budget::new(100);
        let deadline = Instant::now() + FRAME_TIMEOUT;
        budget.take(100, deadline).await.expect("all of it");
        let err = budget.take(1, deadline).await.expect_err("none left");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(budget.take(101, deadline).await.is_err(), "over the whole");
    }

    #[tokio::test(start_paused = true)]
    async fn an_unfinished_frame_is_closed_at_the_frame_timeout_and_its_budget_given_back() {
        let budget = Budget::new(BUDGET);
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let echo = tokio::spawn(echo_tcp(server, Arc::clone(&budget), Activity::default()));
        // A 1 MiB frame, of which 100 KiB arrive.
        client
            .write_all(&(1u32 << 20).to_be_bytes())
            .await
            .expect("head");
        client.write_all(&vec![7; 100 * 1024]).await.expect("part");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(budget.held(), (1 << 20) + 4 - BASE, "the frame is charged");
        tokio::time::sleep(FRAME_TIMEOUT).await;
        let err = echo.await.expect("task").expect_err("timed out");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(budget.held(), 0, "given back");
    }

    /// Reads `stream` to its end, keeping at most 64 MiB: whether it ended (closed or reset).
    async fn ends(stream: &mut TcpStream) -> bool {
        let mut buf = vec![0; 1 << 20];
        for _ in 0..64 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
        false
    }

    #[tokio::test(start_paused = true)]
    async fn silent_peers_and_peers_that_never_read_are_closed_after_the_idle_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(serve_tcp(listener));
        let started = Instant::now();
        let mut silent = TcpStream::connect(addr).await.expect("connect");
        // Another sends 16 MiB of frames and reads none of their echoes: the echo's write
        // blocks, and with it its reads.
        let mut stuck = TcpStream::connect(addr).await.expect("connect");
        let (mut stuck_read, mut stuck_write) = stuck.split();
        let frame = [&(1u32 << 22).to_be_bytes()[..], &vec![9u8; 1 << 22]].concat();
        let flood = async {
            for _ in 0..4 {
                let wrote = tokio::time::timeout(IDLE_TIMEOUT * 2, stuck_write.write_all(&frame));
                if !matches!(wrote.await, Ok(Ok(()))) {
                    break;
                }
            }
        };
        let ((), closed) = tokio::join!(flood, async {
            tokio::time::sleep(IDLE_TIMEOUT / 2).await;
            tokio::time::timeout(IDLE_TIMEOUT * 2, ends(&mut silent))
                .await
                .unwrap_or(false)
        });
        assert!(closed, "the silent connection was closed");
        assert!(
            started.elapsed() >= IDLE_TIMEOUT,
            "not before the idle timeout"
        );
        let mut rest = Vec::new();
        let drained =
            tokio::time::timeout(Duration::from_secs(5), stuck_read.read_to_end(&mut rest)).await;
        assert!(drained.is_ok(), "the stuck connection ended");
        server.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn large_and_small_frames_are_echoed_and_the_large_buffer_given_up() {
        let budget = Budget::new(BUDGET);
        let (mut client, server) = tokio::io::duplex(8 << 20);
        let echo = tokio::spawn(echo_tcp(server, Arc::clone(&budget), Activity::default()));
        for len in [3usize, 200_000, 5, MAX_FRAME, 0] {
            let mut frame = (len as u32).to_be_bytes().to_vec();
            frame.extend((0..len).map(|i| i as u8));
            client.write_all(&frame).await.expect("frame");
            let mut back = vec![0; frame.len()];
            client.read_exact(&mut back).await.expect("echo");
            assert_eq!(back, frame, "frame of {len} bytes");
        }
        assert_eq!(budget.held(), 0, "nothing held between frames");
        drop(client);
        echo.await.expect("task").expect("clean end");
    }
}
