//! A server in a child process (this test binary re-run on one ignored test), so a test can
//! SIGKILL it: no graceful GOAWAY, no deregistration, connections simply reset.

use super::support::Server;
use std::io::BufRead;
use std::net::SocketAddr;
use std::time::Duration;

const ENV_IP: &str = "SOCKRPC_SCALE_CHILD_IP";
const ENV_ETCD: &str = "SOCKRPC_SCALE_CHILD_ETCD";
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
        let exe = std::env::current_exe().expect("current exe");
        let mut command = std::process::Command::new(exe);
        command
            .args([
                "child::child_server",
                "--exact",
                "--nocapture",
                "--test-threads=1",
                "--include-ignored",
            ])
            .env(ENV_IP, ip)
            .stdout(std::process::Stdio::piped());
        if let Some((endpoint, prefix, ttl)) = etcd {
            command.env(ENV_ETCD, format!("{endpoint}|{prefix}|{ttl}"));
        }
        let mut process = command.spawn().expect("spawn child server");
        let stdout = process.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some((_, addr)) = line.split_once(ADDR_LINE) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr.to_owned());
                    }
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("child printed its address")
            .parse()
            .expect("address parses");
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

/// The child's body: serves until killed (or its parent is gone).
#[tokio::test]
#[ignore = "runs only as a child process of the kill and etcd tests"]
async fn child_server() {
    let Ok(ip) = std::env::var(ENV_IP) else {
        return;
    };
    let server = Server::start(&ip, Duration::ZERO).await;
    #[cfg(feature = "etcd")]
    let _registration = match std::env::var(ENV_ETCD) {
        Ok(spec) => Some(super::etcd::register_child(&spec, server.addr).await),
        Err(_) => None,
    };
    println!("{ADDR_LINE}{}", server.addr);
    let parent = sockrpc_tests::child::parent_pid();
    // Bounded: a child whose parent died stops within a second, and none outlives 10 minutes.
    for _ in 0..600 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if sockrpc_tests::child::parent_pid() != parent {
            return;
        }
    }
}
