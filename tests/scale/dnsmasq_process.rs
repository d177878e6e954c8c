//! A real DNS server daemon for the real-DNS tests (`dns_daemon.rs`): dnsmasq (Debian's
//! `dnsmasq-base`), in the foreground on a loopback port (UDP and TCP), with a temporary
//! directory holding its configuration file and a hosts file ([`Dnsmasq::set_hosts`] rewrites
//! it and sends SIGHUP, on which dnsmasq reads it again). Stopped and started again on the same
//! port ([`Dnsmasq::stop`], [`Dnsmasq::restart`]), killed on drop.
//!
//! dnsmasq answers the names of the zone `scale.test` (`--local`: a name it does not know there
//! is NXDOMAIN) from `host-record`, `srv-host` and `txt-record` lines and the hosts file, with
//! TTL 0 (its default for local data), without an SOA in its negative answers; a name outside
//! the zone is REFUSED (`--no-resolv`: it has no upstream to forward to).

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

/// Where Debian installs dnsmasq (`dnsmasq-base`).
const BINARY: &str = "/usr/sbin/dnsmasq";

/// A dnsmasq process, killed on drop.
pub(super) struct Dnsmasq {
    process: std::process::Child,
    args: Vec<String>,
    dir: PathBuf,
    /// Where it answers, over UDP and TCP.
    pub(super) addr: SocketAddr,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port below Linux's ephemeral range (32768–60999 by default) free for UDP and
/// TCP at the time asked: nothing hands out a port there unasked, so it stays free until
/// dnsmasq binds it, unless another test picked the same one (then [`Dnsmasq::start`] sees
/// dnsmasq exit and tries another).
pub(super) fn free_port(attempt: u64) -> u16 {
    use std::hash::{BuildHasher, RandomState};
    let seed = RandomState::new().hash_one((std::process::id(), attempt));
    for step in 0..200u64 {
        let port = 20_000 + (seed.wrapping_add(step.wrapping_mul(7919)) % 12_000) as u16;
        let udp = UdpSocket::bind(("127.0.0.1", port));
        let tcp = std::net::TcpListener::bind(("127.0.0.1", port));
        if udp.is_ok() && tcp.is_ok() {
            return port;
        }
    }
    panic!("no port free for UDP and TCP in 20000..32000 after 200 tries");
}

impl Dnsmasq {
    /// Starts dnsmasq with these configuration-file lines (`host-record=…`, `srv-host=…`,
    /// `txt-record=…`; see `man dnsmasq`) and this hosts file. Panics when dnsmasq is not
    /// installed: the `real-dns` feature asks for these tests, and a test that passes without
    /// a DNS server to ask checks nothing.
    pub(super) async fn start(conf: &[&str], hosts: &str) -> Dnsmasq {
        assert!(
            std::path::Path::new(BINARY).exists(),
            "no {BINARY}: the real-dns tests need it (apt-get install -y dnsmasq-base)"
        );
        // Another test may take the port between `free_port` and dnsmasq's bind: dnsmasq then
        // exits at once ("Address already in use"), and another port is tried.
        for attempt in 0..10 {
            let port = free_port(attempt);
            let dir = std::env::temp_dir().join(format!(
                "sockrpc-dnsmasq-{}-{port}-{attempt}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir).expect("dnsmasq dir");
            let mut text = conf.join("\n");
            text.push('\n');
            std::fs::write(dir.join("dnsmasq.conf"), text).expect("dnsmasq.conf");
            std::fs::write(dir.join("hosts"), hosts).expect("hosts file");
            let path = |file: &str| dir.join(file).to_str().expect("utf-8 path").to_owned();
            let args: Vec<String> = [
                "--keep-in-foreground".to_owned(),
                "--no-resolv".to_owned(),
                "--no-hosts".to_owned(),
                format!("--port={port}"),
                "--listen-address=127.0.0.1".to_owned(),
                "--bind-interfaces".to_owned(),
                "--local=/scale.test/".to_owned(),
                format!("--conf-file={}", path("dnsmasq.conf")),
                format!("--addn-hosts={}", path("hosts")),
                format!("--pid-file={}", path("pid")),
            ]
            .into();
            let process = spawn(&args);
            let mut dnsmasq = Dnsmasq {
                process,
                args,
                dir,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
            };
            if dnsmasq.wait_up().await {
                return dnsmasq;
            }
        }
        panic!("dnsmasq did not start on any of 10 ports");
    }

    /// Whether dnsmasq answers a query (within 10 s); `false` when it exited (its port taken).
    async fn wait_up(&mut self) -> bool {
        let addr = self.addr;
        for _ in 0..100 {
            if let Ok(Some(_)) = self.process.try_wait() {
                return false;
            }
            let answered = tokio::task::block_in_place(|| probe(addr));
            if answered {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("dnsmasq on {addr} did not answer within 10 s");
    }

    /// Replaces the hosts file and has dnsmasq read it again (SIGHUP, which also empties its
    /// cache).
    pub(super) fn set_hosts(&self, hosts: &str) {
        self.write_hosts(hosts);
        let status = std::process::Command::new("kill")
            .args(["-HUP", &self.process.id().to_string()])
            .status()
            .expect("run kill -HUP");
        assert!(status.success(), "kill -HUP dnsmasq: {status}");
    }
}

impl Dnsmasq {
    /// Replaces the hosts file, which dnsmasq reads when it starts or on SIGHUP.
    pub(super) fn write_hosts(&self, hosts: &str) {
        std::fs::write(self.dir.join("hosts"), hosts).expect("hosts file");
    }

    /// SIGKILLs dnsmasq: nothing answers on its port until [`restart`](Self::restart).
    pub(super) fn stop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }

    /// Starts dnsmasq again on the same port, with the same configuration (and the hosts file
    /// as it is now).
    pub(super) async fn restart(&mut self) {
        self.process = spawn(&self.args);
        assert!(
            self.wait_up().await,
            "dnsmasq did not start again on {}: the port was taken",
            self.addr
        );
    }
}

fn spawn(args: &[String]) -> std::process::Child {
    std::process::Command::new(BINARY)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn dnsmasq")
}

/// Sends one A query for `probe.scale.test.` over UDP: whether any answer with its id came
/// within 100 ms.
pub(super) fn probe(addr: SocketAddr) -> bool {
    let Ok(socket) = UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(Duration::from_millis(100)));
    // Header: id 0x5eed, RD, one question; then the name, type A, class IN.
    let mut query = vec![0x5e, 0xed, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["probe", "scale", "test"] {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    if socket.send_to(&query, addr).is_err() {
        return false;
    }
    let mut answer = [0u8; 512];
    matches!(socket.recv_from(&mut answer), Ok((n, _)) if n >= 12 && answer[..2] == [0x5e, 0xed])
}
