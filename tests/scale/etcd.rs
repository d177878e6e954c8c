//! etcd discovery against a real etcd (Debian's `etcd-server`), started by the test on
//! loopback ports with a temporary data directory.

use super::child::Child;
use super::etcd_process::Etcd;
use super::support::{hello, Server};
use sockrpc::service::discovery::etcd;
use sockrpc::Channel;
use std::time::Duration;

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

    // Graceful: deregister first — gone at once: the key is out of etcd when `deregister`
    // returns (a registration that only stopped renewing would leave it there until its 2 s
    // lease expired), and the watcher follows. Not a bound of 1.5 s on how soon the channel
    // sees it: etcd and the watcher run on a loaded machine (this binary's tests in parallel
    // threads on CI's 2 cores), and the wrong end (the lease expiring, up to 2 s after the
    // last renewal) was not much later.
    let key = registration.key().to_owned();
    registration.deregister().await.expect("deregister");
    assert!(!present(&etcd, &key).await, "deregistered, the key stayed");
    wait_for(&channel, "deregistered server stayed", |k| !k.contains(&g)).await;
    graceful.shutdown().await;
    drop(etcd);
}

fn template(a: std::net::SocketAddr) -> sockrpc::Endpoint {
    sockrpc::Endpoint::new(a.ip().to_string(), a.port())
}

/// Whether `key` is in etcd now.
async fn present(etcd: &Etcd, key: &str) -> bool {
    let mut client = etcd.client().await;
    let resp = client.get(key, None).await.expect("read etcd");
    !resp.kvs().is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_and_watch_survive_an_etcd_restart() {
    let Some(mut etcd) = Etcd::start().await else {
        return;
    };
    let endpoints = [etcd.endpoint.clone()];
    let prefix = "/sockrpc/restart/";
    let channel = Channel::balance(
        etcd::discover(&endpoints, prefix, template)
            .await
            .expect("watch etcd"),
    );
    let server = Server::start("127.0.0.1", Duration::ZERO).await;
    let registration = etcd::register(&endpoints, prefix, server.addr, Duration::from_secs(2))
        .await
        .expect("register");
    let s = server.addr.to_string();
    wait_for(&channel, "registration never appeared", |k| k.contains(&s)).await;

    // etcd crashes and comes back on the same ports and data: it restores the lease with a
    // fresh TTL, and the registration must go on renewing it.
    etcd.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    etcd.restart().await;
    // Three TTLs after the restart, the key is still there...
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        present(&etcd, registration.key()).await,
        "the key expired after the restart: the keep-alive stopped"
    );
    // ...and the watcher, which lost its watch, follows the prefix again: a second server
    // registered after the restart appears.
    let other = Server::start("127.0.0.2", Duration::ZERO).await;
    let _second = etcd::register(&endpoints, prefix, other.addr, Duration::from_secs(2))
        .await
        .expect("register after the restart");
    let o = other.addr.to_string();
    wait_for(&channel, "the watch never resumed", |k| {
        k.contains(&o) && k.contains(&s)
    })
    .await;
    other.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_lease_is_replaced_and_the_key_written_again() {
    let Some(etcd) = Etcd::start().await else {
        return;
    };
    let endpoints = [etcd.endpoint.clone()];
    let prefix = "/sockrpc/revoked/";
    let channel = Channel::balance(
        etcd::discover(&endpoints, prefix, template)
            .await
            .expect("watch etcd"),
    );
    let server = Server::start("127.0.0.1", Duration::ZERO).await;
    let registration = etcd::register(&endpoints, prefix, server.addr, Duration::from_secs(3))
        .await
        .expect("register");
    let s = server.addr.to_string();
    wait_for(&channel, "registration never appeared", |k| k.contains(&s)).await;

    // An operator revokes the lease: etcd deletes the key at once, and watchers see it go.
    let old = registration.lease();
    etcd.client().await.lease_revoke(old).await.expect("revoke");
    assert!(!present(&etcd, registration.key()).await);
    // The next renewal (within a third of the TTL) finds the lease gone: a new lease and the
    // key again (waited for in etcd itself: the channel may not have seen the key go yet, and
    // a wait on the channel alone returned at once, before the renewal, on a loaded machine),
    // then the server back in the set.
    for _ in 0..200 {
        if registration.lease() != old && present(&etcd, registration.key()).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_ne!(registration.lease(), old, "a new lease");
    assert!(present(&etcd, registration.key()).await, "the key again");
    wait_for(&channel, "never registered again", |k| k.contains(&s)).await;
    let value = etcd
        .client()
        .await
        .get(registration.key(), None)
        .await
        .expect("read")
        .kvs()[0]
        .value()
        .to_vec();
    assert_eq!(
        String::from_utf8_lossy(&value),
        format!("{{\"Op\":0,\"Addr\":\"{s}\",\"Metadata\":null}}"),
        "etcd naming's JSON, as grpc-go's etcd resolver reads it"
    );
    // Deregistering after the lease changed revokes the new one.
    registration.deregister().await.expect("deregister");
    wait_for(&channel, "deregistered server stayed", |k| !k.contains(&s)).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_set_follows_keys_whose_values_change_repeat_or_are_malformed() {
    let Some(etcd) = Etcd::start().await else {
        return;
    };
    let endpoints = [etcd.endpoint.clone()];
    let prefix = "/sockrpc/values/";
    let mut client = etcd.client().await;
    // Before the watch: one key in grpc-go's JSON, one plain, one malformed.
    client
        .put(
            format!("{prefix}a"),
            r#"{"Op":0,"Addr":"127.0.0.1:7001"}"#,
            None,
        )
        .await
        .expect("put");
    client
        .put(format!("{prefix}b"), "127.0.0.1:7001", None)
        .await
        .expect("put");
    client
        .put(format!("{prefix}junk"), "not an address", None)
        .await
        .expect("put");
    let channel = Channel::balance(
        etcd::discover(&endpoints, prefix, template)
            .await
            .expect("watch etcd"),
    );
    let only = |want: &'static [&'static str]| {
        move |k: &[String]| {
            let mut k = k.to_vec();
            k.sort();
            k == want
        }
    };
    wait_for(&channel, "initial read", only(&["127.0.0.1:7001"])).await;

    // A value changes: its old address goes (no phantom), its new one comes.
    client
        .put(format!("{prefix}c"), "127.0.0.1:7002", None)
        .await
        .expect("put");
    wait_for(
        &channel,
        "c appears",
        only(&["127.0.0.1:7001", "127.0.0.1:7002"]),
    )
    .await;
    client
        .put(format!("{prefix}c"), "127.0.0.1:7003", None)
        .await
        .expect("put");
    wait_for(
        &channel,
        "c moves",
        only(&["127.0.0.1:7001", "127.0.0.1:7003"]),
    )
    .await;

    // Two keys name 7001: deleting one keeps it, deleting both removes it.
    client
        .delete(format!("{prefix}a"), None)
        .await
        .expect("delete");
    client
        .put(format!("{prefix}marker"), "127.0.0.1:7004", None)
        .await
        .expect("put");
    wait_for(
        &channel,
        "7001 kept while b names it",
        only(&["127.0.0.1:7001", "127.0.0.1:7003", "127.0.0.1:7004"]),
    )
    .await;
    client
        .delete(format!("{prefix}b"), None)
        .await
        .expect("delete");
    wait_for(
        &channel,
        "7001 gone with its last key",
        only(&["127.0.0.1:7003", "127.0.0.1:7004"]),
    )
    .await;

    // A key rewritten to garbage counts as absent.
    client
        .put(format!("{prefix}c"), "{\"Addr\": 7}", None)
        .await
        .expect("put");
    wait_for(&channel, "malformed c", only(&["127.0.0.1:7004"])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_etcd_is_named_in_the_status_and_a_bad_uri_is_invalid() {
    // Nothing listens on this port (held, never listening, until the test ends): calls say why
    // no endpoint is known.
    let unreachable = sockrpc_tests::refused::Refused::loopback();
    let endpoints = [format!("http://{}", unreachable.addr())];
    let channel = Channel::balance(
        etcd::discover(&endpoints, "/sockrpc/none/", template)
            .await
            .expect("discovery starts and retries in the background"),
    );
    let err = channel
        .ready(1, Duration::from_secs(2))
        .await
        .expect_err("nothing to find");
    assert_eq!(err.code(), sockrpc::Code::Unavailable);
    assert!(err.message().contains("etcd read"), "{err:?}");

    let err = etcd::discover(&["http://[::1".to_owned()], "/p/", template)
        .await
        .expect_err("not a URI");
    assert_eq!(err.code(), sockrpc::Code::InvalidArgument, "{err:?}");
    let err = etcd::register(
        &["http://[::1".to_owned()],
        "/p/",
        "127.0.0.1:1".parse().expect("addr"),
        Duration::from_secs(1),
    )
    .await
    .expect_err("not a URI");
    assert_eq!(err.code(), sockrpc::Code::InvalidArgument, "{err:?}");
}
