//! A second real DNS server daemon for the real-DNS tests (`dns_knot.rs`): Knot DNS (Debian's
//! `knot`), an authoritative server, unlike dnsmasq (`dnsmasq_process.rs`), which is a forwarder
//! answering from its own tables. Knot serves the zone `scale.test.` from a zone file the test
//! writes, in the foreground, on one loopback port over UDP and TCP, at 127.0.0.1 and ::1, from
//! a temporary directory (configuration, zone file, its databases). [`Knot::set_records`]
//! rewrites the zone file and sends SIGHUP, on which Knot loads it again; [`Knot::stop`] and
//! [`Knot::restart`] stop it and start it again on the same port, serving the zone, a zone whose
//! file is missing (SERVFAIL), or no zone (REFUSED). Killed on drop.
//!
//! What Knot answers that dnsmasq does not: the records' own TTLs, negative answers with the
//! zone's SOA (a negative TTL), CNAME chains within the zone written out in one answer, SERVFAIL
//! for a zone it could not load, and over UDP an answer too long for the client's EDNS buffer
//! as TC with no records at all.

use super::dnsmasq_process::{free_port, probe};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where Debian installs Knot's server (`knot`).
const BINARY: &str = "/usr/sbin/knotd";

/// The zone Knot serves.
pub(super) const ZONE: &str = "scale.test.";

/// What a (re)started Knot serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Serving {
    /// The zone, from its file.
    Zone,
    /// The zone is configured but its file is missing: every name of it is SERVFAIL.
    Broken,
    /// No zone: every name is REFUSED.
    Nothing,
}

/// A knotd process, killed on drop.
pub(super) struct Knot {
    process: std::process::Child,
    dir: PathBuf,
    serial: u32,
    /// Where it answers over UDP and TCP, on IPv4.
    pub(super) addr: SocketAddr,
    /// The same port on ::1.
    pub(super) addr6: SocketAddr,
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Knot {
    /// Starts Knot serving `records` (zone-file lines, names relative to `scale.test.`; `$TTL`
    /// 1 s unless a line says otherwise; the SOA's negative TTL is 1 s). Panics when Knot is
    /// not installed: the `real-dns` feature asks for these tests.
    pub(super) async fn start(records: &str) -> Knot {
        assert!(
            std::path::Path::new(BINARY).exists(),
            "no {BINARY}: the real-dns tests need it (apt-get install -y knot)"
        );
        // Another test may take the port between `free_port` and Knot's bind: Knot then exits
        // ("cannot bind address"), and another port is tried.
        for attempt in 0..10 {
            let port = free_port(attempt);
            let dir = std::env::temp_dir().join(format!(
                "sockrpc-knot-{}-{port}-{attempt}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir).expect("knot dir");
            write_zone(&dir, 1, records);
            write_conf(&dir, port, Serving::Zone);
            let mut knot = Knot {
                process: spawn(&dir),
                dir,
                serial: 1,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                addr6: SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)),
            };
            if knot.wait_up().await {
                return knot;
            }
        }
        panic!("knotd did not start on any of 10 ports");
    }

    /// Replaces the zone's records (and bumps its serial), and has Knot load them (SIGHUP), or
    /// read them when it starts again. Knot loads in the background: the test waits for the
    /// change to show.
    pub(super) fn set_records(&mut self, records: &str) {
        self.serial += 1;
        write_zone(&self.dir, self.serial, records);
        if !matches!(self.process.try_wait(), Ok(None)) {
            // Stopped: read when it starts again.
            return;
        }
        let status = std::process::Command::new("kill")
            .args(["-HUP", &self.process.id().to_string()])
            .status()
            .expect("run kill -HUP");
        assert!(status.success(), "kill -HUP knotd: {status}");
    }

    /// SIGKILLs Knot: nothing answers on its port until [`restart`](Self::restart).
    pub(super) fn stop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }

    /// Starts Knot again on the same port, serving `what` (the zone file as it is now).
    pub(super) async fn restart(&mut self, what: Serving) {
        self.stop();
        write_conf(&self.dir, self.addr.port(), what);
        self.process = spawn(&self.dir);
        assert!(
            self.wait_up().await,
            "knotd did not start again on {}: the port was taken",
            self.addr
        );
    }

    /// Whether Knot answers a query (within 10 s); `false` when it exited (its port taken).
    async fn wait_up(&mut self) -> bool {
        let addr = self.addr;
        for _ in 0..100 {
            if let Ok(Some(_)) = self.process.try_wait() {
                return false;
            }
            if tokio::task::block_in_place(|| probe(addr)) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("knotd on {addr} did not answer within 10 s");
    }
}

/// Writes the zone file: `records` after the SOA (serial `serial`, negative TTL 1 s) and NS.
fn write_zone(dir: &Path, serial: u32, records: &str) {
    let text = format!(
        "$ORIGIN {ZONE}\n$TTL 1\n@ SOA ns admin {serial} 60 60 600 1\n@ NS ns\nns A 127.0.0.1\n\
         {records}\n"
    );
    std::fs::write(dir.join("scale.test.zone"), text).expect("zone file");
}

/// Writes `knot.conf`: listening on `port` at 127.0.0.1 and ::1, serving `what`.
fn write_conf(dir: &Path, port: u16, what: Serving) {
    let dir = dir.to_str().expect("utf-8 path");
    let zone = match what {
        Serving::Zone => format!("zone:\n  - domain: {ZONE}\n"),
        Serving::Broken => format!("zone:\n  - domain: {ZONE}\n    file: {dir}/missing.zone\n"),
        Serving::Nothing => String::new(),
    };
    // One worker of each kind: a test's server need not take a thread per core. Nothing is
    // kept between runs (no journal, the zone file is never written back).
    let conf = format!(
        "server:\n  listen: 127.0.0.1@{port}\n  listen: ::1@{port}\n  rundir: {dir}\n  \
         udp-workers: 1\n  tcp-workers: 1\n  background-workers: 1\n\
         database:\n  storage: {dir}\n\
         log:\n  - target: stderr\n    any: warning\n\
         template:\n  - id: default\n    storage: {dir}\n    file: \"%s.zone\"\n    \
         zonefile-sync: -1\n    journal-content: none\n    semantic-checks: off\n\
         {zone}"
    );
    std::fs::write(Path::new(dir).join("knot.conf"), conf).expect("knot.conf");
}

fn spawn(dir: &Path) -> std::process::Child {
    std::process::Command::new(BINARY)
        .arg("--config")
        .arg(dir.join("knot.conf"))
        .arg("--socket")
        .arg(dir.join("knot.sock"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn knotd")
}
