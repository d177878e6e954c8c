//! The idle connections of the sockrpc-tcp-idle row (and of sockrpc-uds-idle, its Unix socket
//! twin with a unix: --target).
//!
//! A server that does work per connection it holds (a timer per connection moved on every call,
//! a list walked per wake-up) slows its busy connections as idle ones pile up; this row measures
//! sockrpc-tcp (sockrpc-uds) again while thousands of connections sit open and silent on the
//! same server. Each idle connection is a plain socket that sent the sockrpc preface and then
//! nothing: to the server it is a client between calls, held until its idle timeout (5
//! minutes).

use super::plan::Plan;
use sockrpc::protocol::frame::PREFACE;
use sockrpc::Endpoint;
use std::io::ErrorKind;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::Instant;

/// How long one idle Unix connection may wait for room in the server's backlog.
const BACKLOG_WAIT: Duration = Duration::from_secs(10);

/// The longest pause between two connects to a Unix socket whose backlog is full.
const BACKLOG_PAUSE: Duration = Duration::from_millis(20);

/// One idle connection, TCP or Unix socket; closed when dropped.
type Idle = Box<dyn AsyncWrite + Send + Unpin>;

/// Where the idle connections go.
#[derive(Clone, Copy)]
enum Via<'a> {
    /// A Unix socket (a NUL first: an abstract name).
    Unix(&'a std::path::Path),
    /// The endpoint's first address.
    Tcp(std::net::SocketAddr),
}

/// Connections held open and idle; closed when dropped.
pub(super) struct IdleConnections {
    sockets: Vec<Idle>,
    asked: usize,
    /// The open-file limit that capped the count, when it did.
    capped_by: Option<u64>,
    /// This process's resident memory grew by this much while they opened (with the server
    /// embedded, that is the server's memory per idle connection, sockets' kernel memory apart).
    rss_growth: Option<u64>,
}

impl IdleConnections {
    /// The row's note: how many were open, and why fewer than asked.
    pub(super) fn describe(&self) -> String {
        let open = self.sockets.len();
        let memory = match self.rss_growth {
            Some(bytes) if open > 0 => format!(
                "; resident memory +{:.1} KiB per idle connection (server embedded)",
                bytes as f64 / open as f64 / 1024.0
            ),
            _ => String::new(),
        };
        let opened = match self.capped_by {
            Some(limit) => format!(
                "{open} idle connections open to the same server ({} asked; capped by the \
                 open-file limit, {limit})",
                self.asked
            ),
            None => format!("{open} idle connections open to the same server"),
        };
        format!("{opened}{memory}")
    }
}

/// Opens `plan.idle_connections` idle connections to `endpoint`, one after another, after
/// raising this process's open-file limit as far as it goes. With the server embedded, both
/// ends of every connection count against that one limit.
pub(super) async fn open(endpoint: &Endpoint, plan: &Plan) -> Result<IdleConnections, String> {
    let asked = plan.idle_connections;
    let limit = rlimit::increase_nofile_limit(u64::MAX)
        .map_err(|err| format!("cannot read the open-file limit: {err}"))?;
    let per_connection = if plan.embedded { 2 } else { 1 };
    let room = usize::try_from(limit.saturating_sub(crate::server::SPARE_FDS) / per_connection)
        .unwrap_or(0);
    let count = asked.min(room);
    let via = match &endpoint.unix_path {
        // A Unix socket's path, or its abstract name, as the endpoint carries it.
        Some(path) => Via::Unix(path),
        None => Via::Tcp(
            tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port))
                .await
                .map_err(|err| format!("cannot resolve {endpoint}: {err}"))?
                .next()
                .ok_or_else(|| format!("{endpoint} has no address"))?,
        ),
    };
    let before = resident_bytes();
    let mut sockets = Vec::with_capacity(count);
    for i in 0..count {
        let connected: std::io::Result<Idle> = match via {
            Via::Unix(path) => connect_unix_waiting(path)
                .await
                .map(|socket| Box::new(socket) as Idle),
            Via::Tcp(addr) => TcpStream::connect(addr)
                .await
                .map(|socket| Box::new(socket) as Idle),
        };
        let mut socket =
            connected.map_err(|err| format!("idle connection {i} of {count}: {err}"))?;
        socket
            .write_all(&PREFACE)
            .await
            .map_err(|err| format!("idle connection {i} of {count}: {err}"))?;
        sockets.push(socket);
    }
    // Let the server take in the last prefaces before reading its memory.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let rss_growth = match (plan.embedded, before, resident_bytes()) {
        (true, Some(before), Some(after)) => Some(after.saturating_sub(before)),
        _ => None,
    };
    Ok(IdleConnections {
        sockets,
        asked,
        capped_by: (count < asked).then_some(limit),
        rss_growth,
    })
}

/// Connects to a Unix socket, waiting while its listener's backlog is full. A Unix connect
/// then fails at once (`WouldBlock`, "Resource temporarily unavailable") where a TCP connect
/// waits for the server to accept, and thousands of connects in a row fill the backlog of a
/// server that accepts a little slower than they come (a debug build, a busy host) within
/// milliseconds: the row failed "not measured" where its TCP twin ran.
async fn connect_unix_waiting(path: &Path) -> std::io::Result<UnixStream> {
    let give_up = Instant::now() + BACKLOG_WAIT;
    let mut pause = Duration::from_millis(1);
    loop {
        match sockrpc::transport::connect_unix(path).await {
            Err(err) if err.kind() == ErrorKind::WouldBlock && Instant::now() < give_up => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(BACKLOG_PAUSE);
            }
            done => return done,
        }
    }
}

/// This process's resident set size, from `/proc/self/statm` (Linux; `None` elsewhere).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::connect_unix_waiting;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::net::UnixSocket;
    use tokio::time::Instant;

    /// How many connects the test makes: well past a backlog of 1.
    const CONNECTS: usize = 16;

    /// Connects a server has not accepted yet fill its Unix backlog; the next one waits for
    /// room instead of failing, as a TCP connect would. The server starts accepting only once
    /// the connects stop getting through, so the backlog is full whatever the kernel makes of
    /// the one asked for.
    #[tokio::test]
    async fn a_full_unix_backlog_is_waited_out() {
        let dir = std::env::temp_dir().join(format!("sockrpc-idle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("backlog.sock");
        let _ = std::fs::remove_file(&path);
        let socket = UnixSocket::new_stream().expect("socket");
        socket.bind(&path).expect("bind");
        let listener = socket.listen(1).expect("listen");
        let connected = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&connected);
        let acceptor = tokio::spawn(async move {
            // Wait until the connects stall (the backlog is full), at most 10 s.
            let give_up = Instant::now() + Duration::from_secs(10);
            let mut last = usize::MAX;
            while Instant::now() < give_up {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let now = seen.load(Ordering::SeqCst);
                if now == last {
                    break;
                }
                last = now;
            }
            let stalled_at = seen.load(Ordering::SeqCst);
            let mut held = Vec::new();
            while held.len() < CONNECTS {
                match tokio::time::timeout_at(give_up, listener.accept()).await {
                    Ok(Ok((socket, _))) => held.push(socket),
                    _ => break,
                }
            }
            (stalled_at, held.len())
        });
        let mut sockets = Vec::new();
        let mut failure = None;
        for _ in 0..CONNECTS {
            match connect_unix_waiting(&path).await {
                Ok(socket) => sockets.push(socket),
                Err(err) => {
                    failure = Some(err);
                    break;
                }
            }
            connected.fetch_add(1, Ordering::SeqCst);
        }
        let (stalled_at, accepted) = acceptor.await.expect("acceptor");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(failure.is_none(), "a connect failed: {failure:?}");
        assert!(stalled_at < CONNECTS, "the backlog never filled");
        assert_eq!((sockets.len(), accepted), (CONNECTS, CONNECTS));
    }
}
