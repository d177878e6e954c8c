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
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

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
            Via::Unix(path) => sockrpc::transport::connect_unix(path)
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

/// This process's resident set size, from `/proc/self/statm` (Linux; `None` elsewhere).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
