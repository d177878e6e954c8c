//! Nothing large allocated. Measured on a server in a child process (this same test binary,
//! re-run with CHILD_ENV set), so the parallel tests of this binary cannot disturb the numbers,
//! and measured as both resident (RSS) and virtual size: an untouched `reserve` of what a peer
//! announced shows only in the latter.

use crate::raw::{
    concat, header, open, read_while_open, server_frames, ECHO_PATH, END_STREAM, MESSAGE, PREFACE,
};
use crate::support::{bounded, fresh_call, EchoImpl, Shutdown, Witness};
use sockrpc_tests::child::{memory_of, parent_pid, test_name, ChildServer};
use sockrpc_tests::echo::echo_server::EchoServer;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

pub(crate) const CHILD_ENV: &str = "SOCKRPC_HOSTILE_CHILD_SERVER";
pub(crate) const MIB: u64 = 1024 * 1024;

/// The child: an echo server on a current-thread runtime (no extra threads, so no allocator
/// arenas appear mid-measurement), printing its address, exiting when its parent is gone or after
/// two minutes. A panic anywhere aborts it, which the parent notices.
pub(crate) fn child_server() {
    child_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .add_service(EchoServer::new(EchoImpl::default()))
            .serve_with_listener_and_shutdown(listener, shutdown)
    })
}

/// [`child_server`] with the server `serve` builds on the child's listener, until the shutdown
/// it is handed (the parent gone, or two minutes).
pub(crate) fn child_serving<Fut>(serve: impl FnOnce(tokio::net::TcpListener, Shutdown) -> Fut)
where
    Fut: std::future::Future<Output = std::io::Result<()>>,
{
    std::panic::set_hook(Box::new(|info| {
        eprintln!("child server panicked: {info}");
        std::process::abort();
    }));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let listener = sockrpc::transport::bind_tcp(
            "127.0.0.1:0".parse().expect("address"),
            &Default::default(),
        )
        .expect("bind");
        println!(
            "{}{}",
            sockrpc_tests::child::ADDR_LINE,
            listener.local_addr().expect("address")
        );
        let parent = parent_pid();
        let orphaned = async move {
            for _ in 0..1200 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if parent_pid() != parent {
                    return;
                }
            }
        };
        let _ = serve(listener, Box::pin(orphaned)).await;
    });
    std::process::exit(0);
}

/// This module's child server: `test` of this module, re-run with `CHILD_ENV` set.
fn spawn_child(test: &str) -> ChildServer {
    ChildServer::spawn(&test_name(module_path!(), test), CHILD_ENV)
}

pub(crate) fn parent_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Warms the child up (connections, calls, buffers), lets it settle, and reads its memory.
pub(crate) async fn warm_baseline(child: &ChildServer) -> (u64, u64) {
    for i in 0..20 {
        fresh_call(child.addr, i).await;
        let mut raw = TcpStream::connect(child.addr).await.expect("connect");
        raw.write_all(&concat(&[
            PREFACE,
            &open(1, ECHO_PATH, &[]),
            &header(1 << 20, MESSAGE, END_STREAM, 0, 1),
            &[0; 1024],
        ]))
        .await
        .expect("write");
        drop(raw);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    memory_of(child.pid())
}

pub(crate) fn assert_growth(
    what: &str,
    before: (u64, u64),
    after: (u64, u64),
    rss: u64,
    virt: u64,
) {
    let grew_rss = after.0.saturating_sub(before.0);
    let grew_virt = after.1.saturating_sub(before.1);
    eprintln!(
        "{what}: RSS {} -> {} MiB, VmSize {} -> {} MiB",
        before.0 / MIB,
        after.0 / MIB,
        before.1 / MIB,
        after.1 / MIB
    );
    assert!(
        grew_rss < rss,
        "{what}: server RSS grew by {} MiB (bound {} MiB)",
        grew_rss / MIB,
        rss / MIB
    );
    assert!(
        grew_virt < virt,
        "{what}: server virtual size grew by {} MiB (bound {} MiB)",
        grew_virt / MIB,
        virt / MIB
    );
}

/// (peak RSS, VmSize) — VmHWM, so a brief spike counts too — of `pid`, in bytes.
pub(crate) fn peak_of(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .expect("VmHWM")
        * 1024;
    (hwm, memory_of(pid).1)
}

#[test]
fn announced_60_mib_message_is_never_allocated() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return child_server();
    }
    let child = spawn_child("announced_60_mib_message_is_never_allocated");
    parent_runtime().block_on(async {
        let before = warm_baseline(&child).await;
        let witness = Witness::start(child.addr).await;
        // 60 MiB is under the skip limit (4 MiB x SKIP_FACTOR 16), so the connection stays
        // open waiting for a body that never comes; 256 KiB of it arrive, to be skipped.
        let mut streams = Vec::new();
        for call_id in [1u32, 3] {
            let mut stream = TcpStream::connect(child.addr).await.expect("connect");
            stream
                .write_all(&concat(&[
                    PREFACE,
                    &open(call_id, ECHO_PATH, &[]),
                    &header(60 << 20, MESSAGE, END_STREAM, 0, call_id),
                    &vec![0xAB; 256 * 1024],
                ]))
                .await
                .expect("write");
            streams.push(stream);
        }
        for (i, stream) in streams.iter_mut().enumerate() {
            let got = read_while_open(stream, Duration::from_millis(300), "60 MiB").await;
            assert!(server_frames(&got).is_empty(), "stream {i}: early answer");
        }
        fresh_call(child.addr, 100).await;
        let after = memory_of(child.pid());
        assert_growth(
            "two 60 MiB announcements",
            before,
            after,
            32 * MIB,
            32 * MIB,
        );
        witness.finish().await;
        drop(streams);
        fresh_call(child.addr, 101).await;
    });
    child.finish();
}

#[test]
fn many_connections_announcing_4_mib_stay_bounded() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return child_server();
    }
    let child = spawn_child("many_connections_announcing_4_mib_stay_bounded");
    parent_runtime().block_on(async {
        let before = warm_baseline(&child).await;
        let witness = Witness::start(child.addr).await;
        let mut streams = Vec::new();
        for call_id in 1..=200u32 {
            let mut stream = bounded("connect", TcpStream::connect(child.addr))
                .await
                .expect("connect");
            stream
                .write_all(&concat(&[
                    PREFACE,
                    &open(call_id, ECHO_PATH, &[]),
                    // Exactly the message limit: buffered, not skipped, if it ever arrived.
                    &header(4 << 20, MESSAGE, END_STREAM, 0, call_id),
                ]))
                .await
                .expect("write");
            streams.push(stream);
        }
        // Every one of them is still open (the server waits) and the server still serves.
        let last = streams.last_mut().expect("streams");
        let got = read_while_open(last, Duration::from_millis(300), "4 MiB x 200").await;
        assert!(server_frames(&got).is_empty(), "early answer");
        fresh_call(child.addr, 200).await;
        let after = memory_of(child.pid());
        // 200 x 4 MiB = 800 MiB if the announcements were believed.
        assert_growth(
            "200 x 4 MiB announcements",
            before,
            after,
            32 * MIB,
            64 * MIB,
        );
        witness.finish().await;
        drop(streams);
        fresh_call(child.addr, 201).await;
    });
    child.finish();
}
