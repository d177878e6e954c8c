//! etcd discovery against a real etcd (Debian's `etcd-server`), started by the test on
//! loopback ports with a temporary data directory.

use super::child::Child;
use super::support::{hello, Server};
use sockrpc::service::discovery::etcd;
use sockrpc::Channel;
use std::time::Duration;

/// An etcd process, killed on drop.
pub(super) struct Etcd {
    process: std::process::Child,
    dir: std::path::PathBuf,
    pub(super) endpoint: String,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Etcd {
    /// Starts etcd, or `None` (with the reason printed) when the binary is not installed.
    async fn start() -> Option<Etcd> {
        let binary = ["/usr/bin/etcd", "/usr/local/bin/etcd"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        let Some(binary) = binary else {
            println!("SKIPPED: no etcd binary (apt-get install -y etcd-server)");
            return None;
        };
        let dir = std::env::temp_dir().join(format!(
            "sockrpc-etcd-{}-{}",
            std::process::id(),
            free_port()
        ));
        let (client, peer) = (free_port(), free_port());
        let endpoint = format!("http://127.0.0.1:{client}");
        let process = std::process::Command::new(binary)
            .args([
                "--name",
                "scale-test",
                "--data-dir",
                dir.to_str().expect("utf-8 temp dir"),
                "--listen-client-urls",
                &endpoint,
                "--advertise-client-urls",
                &endpoint,
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
                "--initial-cluster",
                &format!("scale-test=http://127.0.0.1:{peer}"),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn etcd");
        let etcd = Etcd {
            process,
            dir,
            endpoint,
        };
        // Up when a client can connect and read (≤ 60 s: etcd fsyncs its first writes, and a CI
        // disk busy with a build has taken longer than 20 s).
        for _ in 0..600 {
            if let Ok(mut c) = etcd_client::Client::connect([etcd.endpoint.as_str()], None).await {
                if c.get("probe", None).await.is_ok() {
                    return Some(etcd);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("etcd did not come up within 60 s");
    }
}

async fn wait_for(
    channel: &sockrpc::service::balance::Balanced,
    what: &str,
    f: impl Fn(&[String]) -> bool,
) {
    for _ in 0..200 {
        let keys: Vec<String> = channel.stats().into_iter().map(|s| s.key).collect();
        if f(&keys) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: {:?}", channel.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_appears_sigkill_expires_graceful_leaves_at_once() {
    let Some(etcd) = Etcd::start().await else {
        return;
    };
    let endpoints = [etcd.endpoint.clone()];
    let prefix = "/sockrpc/scale/greeter/";
    let discovery = etcd::discover(&endpoints, prefix, |a| {
        sockrpc::Endpoint::new(a.ip().to_string(), a.port())
    })
    .await
    .expect("watch etcd");
    let channel = Channel::balance(discovery);

    // An in-process server registers: the watcher sees it and calls reach it.
    let graceful = Server::start("127.0.0.1", Duration::ZERO).await;
    let registration = etcd::register(&endpoints, prefix, graceful.addr, Duration::from_secs(2))
        .await
        .expect("register");
    let g = graceful.addr.to_string();
    wait_for(&channel, "registration never appeared", |k| k.contains(&g)).await;
    channel
        .ready(1, Duration::from_secs(10))
        .await
        .expect("usable");
    assert_eq!(hello(&channel, None).await.expect("call"), graceful.addr);

    // A child server registers with a 2 s lease, then is SIGKILLed: gone after the TTL.
    let child = Child::spawn("127.0.0.2", Some((&etcd.endpoint, prefix, 2)));
    let c = child.addr.to_string();
    wait_for(&channel, "child never appeared", |k| k.contains(&c)).await;
    // Longer than a TTL with keep-alives running: still there.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(channel.stats().iter().any(|s| s.key == c), "kept alive");
    let killed = tokio::time::Instant::now();
    child.kill();
    wait_for(&channel, "killed server never expired", |k| !k.contains(&c)).await;
    let took = killed.elapsed();
    assert!(
        took >= Duration::from_millis(500),
        "removed before the lease could expire: {took:?}"
    );
    println!("SIGKILLed server left the set after {took:?}");

    // Graceful: deregister first — gone at once (well before the 2 s lease would expire).
    let leaving = tokio::time::Instant::now();
    registration.deregister().await.expect("deregister");
    wait_for(&channel, "deregistered server stayed", |k| !k.contains(&g)).await;
    assert!(
        leaving.elapsed() < Duration::from_millis(1500),
        "{:?}",
        leaving.elapsed()
    );
    graceful.shutdown().await;
    drop(etcd);
}
