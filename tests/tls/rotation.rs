use super::*;

// Rotation

/// Calls on `channel` back to back until `stop`; counts successes and failures.
fn call_loop(
    channel: Channel,
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<Mutex<Vec<Status>>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            match call(&channel).await {
                Ok(_) => {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
                Err(status) => failed.lock().expect("failed").push(status),
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_a_continuous_stream_of_calls_drops_nothing() {
    let ca = Ca::new("server CA");
    let clients = Ca::new("client CA");
    let tls = server_tls(
        ServerTlsConfig::new(ca.leaf(SERVER_NAMES).identity()).client_ca(clients.certificates()),
    );
    let server = TestServer::start(tls.clone()).await;
    let me = clients.leaf(&["client.example.test"]);
    let client = ClientTlsConfig::new()
        .ca_certificates(ca.certificates())
        .identity(me.identity());

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(Mutex::new(Vec::new()));
    // Live connections (a pool of 2, 4 callers) and, beside them, a new connection (a new
    // handshake) per call.
    let live = Channel::connect(server.endpoint(client.clone()).pool_size(2))
        .await
        .expect("connect");
    let mut loops: Vec<JoinHandle<()>> = (0..4)
        .map(|_| call_loop(live.clone(), stop.clone(), ok.clone(), failed.clone()))
        .collect();
    let fresh = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let endpoint = server.endpoint(client.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match greet(endpoint.clone()).await {
                    Ok(_) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(status) => failed.lock().expect("failed").push(status),
                }
            }
        })
    };
    loops.push(fresh);

    // Ten rotations of the server's certificate (a new key each time, same CA), and the client
    // CA bundle grown by a second CA, while the calls go on.
    let second_clients = Ca::new("second client CA");
    for round in 0..10 {
        tokio::time::sleep(Duration::from_millis(60)).await;
        tls.reload_identity(ca.leaf(SERVER_NAMES).identity())
            .expect("reload identity");
        if round == 5 {
            let both = Certificates::from_pem(format!("{}{}", clients.pem(), second_clients.pem()))
                .expect("bundle");
            tls.reload_client_ca(Some(both)).expect("reload client CA");
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    for task in loops {
        task.await.expect("call loop");
    }
    let failed = failed.lock().expect("failed").clone();
    assert!(
        failed.is_empty(),
        "calls failed during rotation: {failed:?}"
    );
    assert!(ok.load(Ordering::Relaxed) > 100, "too few calls: {ok:?}");
    assert_eq!(tls.reloads(), 11);

    // New handshakes use the new configuration; live connections keep theirs.
    let other_ca = Ca::new("new server CA");
    tls.reload_identity(other_ca.leaf(SERVER_NAMES).identity())
        .expect("reload to another CA");
    let started = Instant::now();
    expect_unavailable(
        greet(server.endpoint(client.clone())).await,
        started,
        "not signed by a CA this client trusts",
    );
    let new_trust = ClientTlsConfig::new()
        .ca_certificates(other_ca.certificates())
        .identity(me.identity());
    assert_eq!(
        greet(server.endpoint(new_trust.clone()))
            .await
            .expect("new CA"),
        "Hello tls!"
    );
    assert_eq!(
        call(&live)
            .await
            .expect("a live connection keeps its session"),
        "Hello tls!"
    );

    // The client CAs rotated to the second CA only: a client of the first is refused on a new
    // connection, while its live connections go on.
    tls.reload_client_ca(Some(second_clients.certificates()))
        .expect("reload client CA");
    let started = Instant::now();
    expect_unavailable(
        greet(server.endpoint(new_trust)).await,
        started,
        "refused this client's certificate",
    );
    assert_eq!(call(&live).await.expect("live connection"), "Hello tls!");
    let second = ClientTlsConfig::new()
        .ca_certificates(other_ca.certificates())
        .identity(second_clients.leaf(&["c2.test"]).identity());
    assert_eq!(
        greet(server.endpoint(second))
            .await
            .expect("second CA client"),
        "Hello tls!"
    );
    // A configuration that does not hold together is refused, and the one in force stays.
    let mismatched = Identity::from_pem(
        &ca.leaf(SERVER_NAMES).cert_pem,
        &ca.leaf(SERVER_NAMES).key_pem,
    )
    .expect("parses");
    assert!(tls.reload_identity(mismatched).is_err());
    assert_eq!(call(&live).await.expect("still serving"), "Hello tls!");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watched_files_rotate_the_certificate() {
    let dir = std::env::temp_dir().join(format!("sockrpc-tls-watch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    let first_ca = Ca::new("first CA");
    let first = first_ca.leaf(SERVER_NAMES);
    std::fs::write(&cert, &first.cert_pem).expect("write");
    std::fs::write(&key, &first.key_pem).expect("write");
    let tls = server_tls(ServerTlsConfig::new(
        Identity::from_pem_files(&cert, &key).expect("files"),
    ));
    let _watch = tls.watch(TlsFiles::new(&cert, &key), Duration::from_millis(20));
    let server = TestServer::start(tls.clone()).await;
    let first_trust = ClientTlsConfig::new().ca_certificates(first_ca.certificates());
    let live = Channel::connect(server.endpoint(first_trust.clone()))
        .await
        .expect("connect");

    // Rotate the files the way a renewal does, one file at a time: the half-rotated state (a
    // new key beside the old certificate) is not taken.
    let second_ca = Ca::new("second CA");
    let second = second_ca.leaf(SERVER_NAMES);
    std::fs::write(&key, &second.key_pem).expect("write key");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(tls.reloads(), 0, "a half-rotated pair must not be loaded");
    assert_eq!(
        greet(server.endpoint(first_trust.clone()))
            .await
            .expect("old pair still"),
        "Hello tls!"
    );
    std::fs::write(&cert, &second.cert_pem).expect("write cert");
    reloaded(&tls).await;
    let second_trust = ClientTlsConfig::new().ca_certificates(second_ca.certificates());
    assert_eq!(
        greet(server.endpoint(second_trust))
            .await
            .expect("new pair"),
        "Hello tls!"
    );
    assert_eq!(call(&live).await.expect("live connection"), "Hello tls!");
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------

/// A change made right after `watch` returns is seen, however late the watch's task first
/// runs: on a current-thread runtime it cannot run before this test yields, and it used to take
/// the files as it then found them (the new pair) for the ones in force.
#[tokio::test]
async fn a_change_right_after_watch_returns_is_reloaded() {
    let dir = std::env::temp_dir().join(format!("sockrpc-tls-watch-now-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    let first = Ca::new("first CA").leaf(SERVER_NAMES);
    std::fs::write(&cert, &first.cert_pem).expect("write");
    std::fs::write(&key, &first.key_pem).expect("write");
    let tls = server_tls(ServerTlsConfig::new(
        Identity::from_pem_files(&cert, &key).expect("files"),
    ));
    let _watch = tls.watch(TlsFiles::new(&cert, &key), Duration::from_millis(10));
    let second = Ca::new("second CA").leaf(SERVER_NAMES);
    std::fs::write(&cert, &second.cert_pem).expect("write cert");
    std::fs::write(&key, &second.key_pem).expect("write key");
    reloaded(&tls).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits (at most 5 s) for the watch to have reloaded `tls` once.
async fn reloaded(tls: &ServerTls) {
    let waited = Instant::now();
    while tls.reloads() == 0 {
        assert!(
            waited.elapsed() < Duration::from_secs(5),
            "the watch did not reload"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A watched file that goes missing is warned of once, naming it, not on every tick; the
/// configuration in force stays, and the watch takes the files again once they are back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_watched_file_is_named_and_warned_of_once() {
    let _ = warnings();
    let dir = std::env::temp_dir().join(format!("sockrpc-tls-missing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let (cert, key) = (dir.join("missing-test.pem"), dir.join("missing-test.key"));
    let ca = Ca::new("watch CA");
    let leaf = ca.leaf(SERVER_NAMES);
    std::fs::write(&cert, &leaf.cert_pem).expect("write");
    std::fs::write(&key, &leaf.key_pem).expect("write");
    let tls = server_tls(ServerTlsConfig::new(leaf.identity()));
    let _watch = tls.watch(TlsFiles::new(&cert, &key), Duration::from_millis(10));
    std::fs::remove_file(&cert).expect("remove");
    let named = cert.display().to_string();
    let first = warned(&["cannot read the files", &named]).await;
    assert_eq!(first.len(), 1, "{first:?}");
    // Thirty more ticks with the file still missing: no more lines.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines = warned(&["cannot read the files", &named]).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    // Back, changed: taken.
    let next = ca.leaf(SERVER_NAMES);
    std::fs::write(&key, &next.key_pem).expect("write");
    std::fs::write(&cert, &next.cert_pem).expect("write");
    reloaded(&tls).await;
    let _ = std::fs::remove_dir_all(&dir);
}
