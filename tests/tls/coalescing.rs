use super::*;

// Write coalescing

/// Copies `from` to `to`, counting the TLS application-data records that pass (by their 5-byte
/// headers), until either side closes.
async fn count_records(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    records: Arc<AtomicU64>,
) {
    let mut pending = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        pending.extend_from_slice(&buf[..n]);
        while pending.len() >= 5 {
            let len = usize::from(u16::from_be_bytes([pending[3], pending[4]]));
            if pending.len() < 5 + len {
                break;
            }
            if pending[0] == 23 {
                records.fetch_add(1, Ordering::Relaxed);
            }
            pending.drain(..5 + len);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_calls_leaves_in_few_tls_records_not_one_per_frame() {
    let ca = Ca::new("test CA");
    let server = TestServer::start(server_tls(ServerTlsConfig::new(
        ca.leaf(SERVER_NAMES).identity(),
    )))
    .await;
    // A proxy between client and server that counts the records each way.
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let proxy_addr = proxy.local_addr().expect("addr");
    let upstream = Arc::new(AtomicU64::new(0));
    let downstream = Arc::new(AtomicU64::new(0));
    {
        let (upstream, downstream) = (upstream.clone(), downstream.clone());
        let target = server.addr;
        tokio::spawn(async move {
            let (client, _) = proxy.accept().await.expect("accept");
            let _ = client.set_nodelay(true);
            let server = TcpStream::connect(target).await.expect("connect");
            let _ = server.set_nodelay(true);
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::join!(
                count_records(client_read, server_write, upstream),
                count_records(server_read, client_write, downstream),
            );
        });
    }
    let endpoint = Endpoint::new("127.0.0.1", proxy_addr.port())
        .tls(ClientTlsConfig::new().ca_certificates(ca.certificates()))
        .timeout(Duration::from_secs(10));
    let channel = Channel::connect(endpoint).await.expect("connect");
    let (up_before, down_before) = (
        upstream.load(Ordering::Relaxed),
        downstream.load(Ordering::Relaxed),
    );
    // 256 calls started at once: 256 to 512 request frames (one OPEN with its request folded in,
    // or OPEN then MESSAGE for calls sent before the server's SETTINGS arrived) and about as
    // many answer frames.
    let calls: Vec<_> = (0..256).map(|_| call(&channel)).collect();
    for result in futures_util::future::join_all(calls).await {
        assert_eq!(result.expect("call"), "Hello tls!");
    }
    let up = upstream.load(Ordering::Relaxed) - up_before;
    let down = downstream.load(Ordering::Relaxed) - down_before;
    eprintln!("256 calls: {up} records to the server, {down} back");
    // The client's outbox writes up to 32 calls' frames at once, the server a read batch's
    // answers: each write is one record (up to 16 KiB), never one per frame.
    assert!(up <= 64, "{up} records for 256 calls' requests");
    assert!(down <= 128, "{down} records for 256 calls' answers");
    server.stop().await;
}
