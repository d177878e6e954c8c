//! A real etcd (Debian's `etcd-server`) for the etcd tests: started on loopback ports with a
//! temporary data directory, restartable on the same ports and data (as after a crash), killed
//! on drop.

use std::time::Duration;

/// An etcd process, killed on drop.
pub(super) struct Etcd {
    process: std::process::Child,
    binary: &'static str,
    args: Vec<String>,
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

/// A free loopback port below Linux's ephemeral range (32768–60999 by default). A port from
/// that range (`bind` to port 0) can be handed to another test's socket while etcd is down
/// between [`Etcd::kill`] and [`Etcd::restart`]; nothing hands out a port below it unasked.
fn free_port() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    let seed = RandomState::new().hash_one(std::process::id());
    for attempt in 0..200u64 {
        let port = 20_000 + (seed.wrapping_add(attempt.wrapping_mul(7919)) % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000..32000 after 200 tries");
}

fn spawn(binary: &str, args: &[String]) -> std::process::Child {
    std::process::Command::new(binary)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn etcd")
}

impl Etcd {
    /// Starts etcd, or `None` (with the reason printed) when the binary is not installed.
    pub(super) async fn start() -> Option<Etcd> {
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
        let peer_url = format!("http://127.0.0.1:{peer}");
        let args: Vec<String> = [
            "--name",
            "scale-test",
            "--data-dir",
            dir.to_str().expect("utf-8 temp dir"),
            "--listen-client-urls",
            &endpoint,
            "--advertise-client-urls",
            &endpoint,
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
            "--initial-cluster",
            &format!("scale-test={peer_url}"),
        ]
        .into_iter()
        .map(String::from)
        .collect();
        let process = spawn(binary, &args);
        let mut etcd = Etcd {
            process,
            binary,
            args,
            dir,
            endpoint,
        };
        etcd.wait_up().await;
        Some(etcd)
    }

    /// Up when a client can connect and read (≤ 60 s: etcd fsyncs its first writes, and a CI
    /// disk busy with a build has taken longer than 20 s).
    async fn wait_up(&mut self) {
        for _ in 0..600 {
            if let Ok(Some(status)) = self.process.try_wait() {
                panic!("etcd exited before it served ({status}): {:?}", self.args);
            }
            if let Ok(mut c) = etcd_client::Client::connect([self.endpoint.as_str()], None).await {
                if c.get("probe", None).await.is_ok() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("etcd did not come up within 60 s");
    }

    /// SIGKILLs etcd.
    pub(super) fn kill(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }

    /// Starts etcd again on the same ports and data directory (after [`kill`](Self::kill)).
    pub(super) async fn restart(&mut self) {
        self.process = spawn(self.binary, &self.args);
        self.wait_up().await;
    }

    /// A client of this etcd.
    pub(super) async fn client(&self) -> etcd_client::Client {
        etcd_client::Client::connect([self.endpoint.as_str()], None)
            .await
            .expect("connect to etcd")
    }
}
