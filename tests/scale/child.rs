//! A server in a child process (`tests/bin/scale_server.rs`), so a test can SIGKILL it: no
//! graceful GOAWAY, no deregistration, connections simply reset.

use std::net::SocketAddr;

const ADDR_LINE: &str = "SOCKRPC_SCALE_CHILD_ADDR=";

/// A child server process.
pub(crate) struct Child {
    process: std::process::Child,
    pub(crate) addr: SocketAddr,
}

impl Child {
    /// Starts a server on `ip` in a child process; with `etcd` = (endpoint, prefix, ttl secs)
    /// it also registers there. Waits (≤ 30 s) for its address.
    pub(crate) fn spawn(ip: &str, etcd: Option<(&str, &str, u64)>) -> Child {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_scale-server"));
        command.arg(ip).stdout(std::process::Stdio::piped());
        if let Some((endpoint, prefix, ttl)) = etcd {
            command.arg(format!("{endpoint}|{prefix}|{ttl}"));
        }
        let mut process = command.spawn().expect("spawn child server");
        let addr = sockrpc_tests::child::printed_addr(&mut process, ADDR_LINE);
        Child { process, addr }
    }

    /// SIGKILL, and reap.
    pub(crate) fn kill(mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
