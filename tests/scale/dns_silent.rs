//! A DNS server that never answers, and one that only fails: a call with a deadline ends at its
//! deadline and says the DNS answer is still awaited (not only "0 known"), the resolver's
//! timeout is the caller's to set, and a failing server is not asked in a loop. A DNS server
//! that is not running (nothing on its port: the kernel answers "port unreachable") is not a
//! silent one: the lookup fails at once, and so do fail-fast calls, saying so.

use super::dns_server::Dns;
use sockrpc::service::balance::Balanced;
use sockrpc::service::discovery::dns::DnsDiscovery;
use sockrpc::{Channel, Code, Request, Status};
use sockrpc_tests::helloworld::greeter_client::GreeterClient;
use sockrpc_tests::helloworld::HelloRequest;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// A UDP "DNS server" on loopback that reads every query and answers none; how many it read.
pub(crate) async fn silent() -> (SocketAddr, Arc<AtomicU32>, tokio::task::JoinHandle<()>) {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind silent dns");
    let addr = socket.local_addr().expect("silent addr");
    let asked = Arc::new(AtomicU32::new(0));
    let count = Arc::clone(&asked);
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while socket.recv_from(&mut buf).await.is_ok() {
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    (addr, asked, task)
}

/// One call with `timeout`, bounded at 15 s on top (a call outliving that is a hang).
async fn call(channel: &Balanced, timeout: Duration) -> Result<(), Status> {
    let mut client = GreeterClient::new(channel.clone());
    let mut request = Request::new(HelloRequest { name: "x".into() });
    request.set_timeout(timeout);
    tokio::time::timeout(Duration::from_secs(15), client.say_hello(request))
        .await
        .map_err(|_| Status::internal("HANG: the call outlived its deadline"))??;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_dns_server_fails_a_call_at_its_deadline_saying_so() {
    let (dns, _asked, _task) = silent().await;
    // The lookup alone outlasts the call's deadline by far: 20 s (UDP, then TCP: up to 40 s),
    // where the defaults' 2 s × 2 attempts (4 s) are too close to the bound below.
    let channel = Channel::balance(
        DnsDiscovery::ip("svc.scale.test.", 50051)
            .server(dns)
            .timeout(Duration::from_secs(20))
            .attempts(1)
            .start()
            .expect("dns discovery"),
    );
    let deadline = Duration::from_millis(700);
    let started = Instant::now();
    let status = call(&channel, deadline).await.expect_err("nothing answers");
    let took = started.elapsed();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        status
            .message()
            .contains("waiting for the first DNS answer")
            && status.message().contains(&dns.to_string()),
        "the status says what was awaited: {status:?}"
    );
    // At its deadline, not when the lookup gives up (20 s later). 10 s, not less: `cargo test`
    // runs this binary's tests at once on CI's 2 cores, where a stall of seconds happens.
    assert!(
        took >= deadline && took < Duration::from_secs(10),
        "took {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_server_that_is_not_running_fails_calls_at_once_saying_so() {
    // A loopback port nothing listens on, over UDP or TCP (taken, then let go).
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let dns = udp.local_addr().expect("addr");
    let tcp = std::net::TcpListener::bind(dns);
    drop((udp, tcp));
    // A resolver timeout far longer than the call's deadline: only an error seen at once
    // (ICMP port unreachable, as a connected UDP socket reports it) ends the lookup in time.
    let channel = Channel::balance(
        DnsDiscovery::ip("svc.scale.test.", 50051)
            .server(dns)
            .timeout(Duration::from_secs(20))
            .attempts(1)
            .start()
            .expect("dns discovery"),
    );
    let started = Instant::now();
    let status = call(&channel, Duration::from_secs(8))
        .await
        .expect_err("no DNS server");
    let took = started.elapsed();
    assert_eq!(
        status.code(),
        Code::Unavailable,
        "{status:?} after {took:?}"
    );
    assert!(
        status
            .message()
            .contains("the DNS server refused the connection (nothing listens on its port)"),
        "the status says the DNS server refused: {status:?}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

/// A discovery asking `dns` with a resolver timeout of `timeout`, one attempt.
fn asking(dns: SocketAddr, timeout: Duration) -> Balanced {
    Channel::balance(
        DnsDiscovery::ip("svc.scale.test.", 50051)
            .server(dns)
            .timeout(timeout)
            .attempts(1)
            .start()
            .expect("dns discovery"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resolver_timeout_is_configurable() {
    let (dns, asked, _task) = silent().await;
    // Two lookups of the same silent server, under the same load: one gives up after 150 ms,
    // the other after 30 s. Compared with each other, not with a wall-clock bound: the
    // defaults (2 s × 2 attempts) are too close to any bound a loaded CI machine (`cargo
    // test` runs this binary's tests at once on 2 cores) keeps.
    let patient = asking(dns, Duration::from_secs(30));
    let waiting = tokio::spawn(async move { call(&patient, Duration::from_secs(60)).await });
    let channel = asking(dns, Duration::from_millis(150));
    // The lookup gives up long before the call's deadline: the call fails then, UNAVAILABLE,
    // with the lookup's error.
    let status = call(&channel, Duration::from_secs(10))
        .await
        .expect_err("nothing answers");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("DNS lookup failed"), "{status:?}");
    // The patient lookup still waits a second later (had the setting been ignored, both would
    // have given up together, at the defaults' 4 s).
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !waiting.is_finished(),
        "the lookup with a 30 s timeout gave up with the 150 ms one: {:?}",
        waiting.await
    );
    waiting.abort();
    assert!(asked.load(Ordering::SeqCst) >= 1, "the server was asked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_or_silent_dns_server_is_not_asked_in_a_loop() {
    // SERVFAIL to everything, at once: the quickest failure there is.
    let failing = Dns::start().await;
    failing.fail_a.store(true, Ordering::SeqCst);
    failing.fail_aaaa.store(true, Ordering::SeqCst);
    let (silent, silent_asked, _task) = silent().await;
    let channels: Vec<Balanced> = [
        (failing.addr, None),
        (silent, Some(Duration::from_millis(20))),
    ]
    .into_iter()
    .map(|(server, timeout)| {
        let mut discovery = DnsDiscovery::ip("svc.scale.test.", 50051)
            .server(server)
            .min_ttl(Duration::from_millis(100));
        if let Some(timeout) = timeout {
            discovery = discovery.timeout(timeout).attempts(1);
        }
        Channel::balance(discovery.start().expect("dns discovery"))
    })
    .collect();
    // Calls keep coming (each a reason to look again, were that the rule).
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        for channel in &channels {
            let _ = call(channel, Duration::from_millis(50)).await;
        }
    }
    // Backing off from 100 ms by 1.6× (± 20 %): about 8 lookups in 3 s, each an A and an AAAA
    // query, perhaps retried over TCP (14 and 28 here); asking every `min_ttl` would be 60 and
    // more, a loop thousands.
    for (what, asked) in [
        ("SERVFAIL", failing.asked.load(Ordering::SeqCst)),
        ("silent", silent_asked.load(Ordering::SeqCst)),
    ] {
        assert!((1..=40).contains(&asked), "{what}: {asked} queries in 3 s");
    }
}

/// A UDP "DNS server" that answers every query with a reply no resolver can use (another
/// query's id, then a header cut short).
async fn junk() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind junk dns");
    let addr = socket.local_addr().expect("junk addr");
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            if n < 12 {
                continue;
            }
            // The query's header as an answer, its id changed: not the query's answer.
            let mut reply = buf[..n].to_vec();
            reply[0] ^= 0xff;
            reply[2] |= 0x80;
            let _ = socket.send_to(&reply, from).await;
            let _ = socket.send_to(&buf[..5], from).await;
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_that_do_not_parse_or_match_are_named_as_such() {
    let (dns, _task) = junk().await;
    let channel = asking(dns, Duration::from_millis(150));
    let status = call(&channel, Duration::from_secs(10))
        .await
        .expect_err("no usable answer");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("no usable answer in time"),
        "{status:?}"
    );
}
