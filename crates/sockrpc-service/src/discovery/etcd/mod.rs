//! etcd discovery and registration (feature `etcd`).
//!
//! ```text
//!  server ── lease (TTL) + put PREFIX/IP:PORT = {"Addr":"IP:PORT"} ──▶ etcd ◀── get + watch PREFIX ── client
//!     └── keep-alive every TTL/3, through etcd restarts; graceful stop: delete + revoke first, then drain
//! ```
//!
//! A server [`register`]s under a prefix with a lease it keeps alive (`register.rs`: through
//! etcd restarts, and with a new lease when the old one was lost); a server that dies stops
//! renewing, and etcd deletes its key when the lease expires, which every watcher sees. A
//! graceful shutdown calls [`Registration::deregister`] first, so clients stop sending before
//! the server drains. Clients [`discover`] the prefix (`follow.rs`): a read of what is there,
//! then a watch from the next revision; when the watch breaks, or etcd cancels it because the
//! revision it was at has been compacted, they read again and reconcile. The set is kept per
//! etcd key (`members.rs`), and the values are etcd naming's JSON, as grpc-go's etcd resolver
//! reads them, or plain `IP:PORT`.
//!
//! Every etcd request is bounded in time, the connection is probed with HTTP/2 pings, and
//! failures are logged at WARN; discovery's last failure also reaches the status of a call no
//! endpoint can take ([`Problem`](super::Problem)).

mod follow;
mod members;
mod register;

pub use follow::{discover, discover_at_most};
pub use members::DEFAULT_MAX_ENDPOINTS;
pub use register::{register, Registration};

use etcd_client::{Client, ConnectOptions};
use sockrpc_protocol::Status;
use std::time::Duration;

/// How long one etcd request (a read, a put, a lease call) may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The client both sides use: connects within [`TIMEOUT`], and pings an idle connection
/// (every 10 s, etcd's own clients' default is 30 s, and etcd's server accepts one every 5 s)
/// so that a watch on a dead connection is noticed.
async fn connect(endpoints: &[String]) -> Result<Client, Status> {
    let options = ConnectOptions::new()
        .with_connect_timeout(TIMEOUT)
        .with_keep_alive(Duration::from_secs(10), TIMEOUT)
        .with_keep_alive_while_idle(true);
    match tokio::time::timeout(TIMEOUT, Client::connect(endpoints, Some(options))).await {
        Ok(result) => result.map_err(|e| status("connect", e)),
        Err(_) => Err(Status::unavailable(format!(
            "etcd connect: no answer within {TIMEOUT:?}"
        ))),
    }
}

/// An etcd error as a status: a malformed endpoint is the caller's mistake
/// (`INVALID_ARGUMENT`), anything else means etcd could not do it now (`UNAVAILABLE`).
fn status(what: &str, err: etcd_client::Error) -> Status {
    match err {
        etcd_client::Error::InvalidUri(_)
        | etcd_client::Error::InvalidArgs(_)
        | etcd_client::Error::EndpointError(_) => {
            Status::invalid_argument(format!("etcd {what}: {err}"))
        }
        _ => Status::unavailable(format!("etcd {what}: {err}")),
    }
}
