//! A service config in DNS (gRFC A2): the TXT record `_grpc_config.svc.scale.test.` of the
//! in-process DNS server (`dns_server.rs`), changed while the channel runs, applied to the
//! next calls by `DynamicServiceConfigLayer`.

use super::dns_server::{name, Dns};
use hickory_server::proto::rr::rdata::TXT;
use hickory_server::proto::rr::{RData, RecordType};
use sockrpc::middleware::service_config::{DynamicServiceConfigLayer, ServiceConfig};
use sockrpc::service::balance::BalanceBuilder;
use sockrpc::service::discovery::dns::DnsDiscovery;
use sockrpc::service::discovery::ServiceConfigFeed;
use sockrpc::{Code, Request, Status};
use sockrpc_tests::helloworld::greeter_client::GreeterClient;
use sockrpc_tests::helloworld::greeter_server::{Greeter, GreeterServer};
use sockrpc_tests::helloworld::{HelloReply, HelloRequest};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tower::Layer;

/// Fails its next `fail` calls `UNAVAILABLE`, answers after `delay_ms`; counts every call.
#[derive(Clone, Default)]
struct Flaky {
    fail: Arc<AtomicU32>,
    calls: Arc<AtomicU32>,
    delay_ms: Arc<AtomicU64>,
}

impl Greeter for Flaky {
    async fn say_hello(
        &self,
        _request: Request<HelloRequest>,
    ) -> Result<sockrpc::Response<HelloReply>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let failing = self
            .fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(Status::unavailable("failing on purpose"));
        }
        Ok(sockrpc::Response::new(HelloReply {
            message: "hi".into(),
        }))
    }
}

/// Retries `UNAVAILABLE` up to 4 attempts, with a `timeout` on each call.
fn retrying(timeout: &str) -> String {
    format!(
        r#"{{"methodConfig": [{{"name": [{{"service": "helloworld.Greeter"}}], "timeout": "{timeout}",
            "retryPolicy": {{"maxAttempts": 4, "initialBackoff": "0.01s", "maxBackoff": "0.05s",
                             "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}}}]}}"#
    )
}

/// A service config with no policy for the Greeter (one attempt).
const NO_RETRY: &str = r#"{"methodConfig": [{"name": [{"service": "helloworld.Greeter"}]}]}"#;

/// Sets the TXT record to `text`, split into strings of at most 200 bytes (a TXT string holds
/// 255: a config of any size spans several, joined again by the reader). `None` removes it.
async fn set_txt(dns: &Dns, text: Option<&str>) {
    let strings: Vec<String> = text
        .map(|t| {
            t.as_bytes()
                .chunks(200)
                .map(|c| String::from_utf8(c.to_vec()).expect("ASCII config"))
                .collect()
        })
        .unwrap_or_default();
    let data = if strings.is_empty() {
        Vec::new()
    } else {
        vec![RData::TXT(TXT::new(strings))]
    };
    dns.set_records(
        &name("_grpc_config.svc.scale.test."),
        RecordType::TXT,
        1,
        data,
    )
    .await;
}

struct Setup {
    dns: Dns,
    flaky: Flaky,
    feed: ServiceConfigFeed,
    client: GreeterClient<
        sockrpc::middleware::service_config::DynamicServiceConfig<
            sockrpc::service::balance::Balanced,
        >,
    >,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// A Flaky server at 127.0.0.1 found through DNS, its channel under the DNS service config
/// (over `default`).
async fn setup(default: &ServiceConfig) -> Setup {
    let dns = Dns::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let flaky = Flaky::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        sockrpc::Server::builder()
            .add_service(GreeterServer::new(flaky.clone()))
            .serve_with_listener_and_shutdown(listener, async move {
                let _ = stopped.await;
            }),
    );
    dns.set(&[Ipv4Addr::LOCALHOST]).await;
    let feed = ServiceConfigFeed::new();
    let discovery = DnsDiscovery::ip("svc.scale.test.", addr.port())
        .server(dns.addr)
        .min_ttl(Duration::from_millis(200))
        .max_ttl(Duration::from_secs(5))
        .service_config(&feed)
        .start()
        .expect("dns discovery");
    let channel = BalanceBuilder::default().build(discovery);
    channel
        .ready(1, Duration::from_secs(10))
        .await
        .expect("the server from DNS");
    let client = GreeterClient::new(
        DynamicServiceConfigLayer::new(feed.clone(), default).layer(channel.clone()),
    );
    Setup {
        dns,
        flaky,
        feed,
        client,
        _stop: stop,
    }
}

impl Setup {
    /// One call, failing its server's first `fail` attempts.
    async fn call(&mut self, fail: u32) -> Result<(), Status> {
        self.flaky.fail.store(fail, Ordering::SeqCst);
        let request = Request::new(HelloRequest { name: "x".into() });
        tokio::time::timeout(Duration::from_secs(15), self.client.say_hello(request))
            .await
            .map_err(|_| Status::internal("HANG"))?
            .map(|_| ())
    }

    /// Waits (bounded) for the feed to move past `generation`.
    async fn changed_from(&self, generation: u64) {
        for _ in 0..200 {
            if self.feed.generation() != generation {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the DNS service config did not change from generation {generation}");
    }

    /// Waits (bounded) for the discovery to have asked the DNS server twice more (A, AAAA and
    /// TXT each time): a record set before this is seen.
    async fn looked_again(&self) {
        let start = self.dns.asked.load(Ordering::SeqCst);
        for _ in 0..200 {
            if self.dns.asked.load(Ordering::SeqCst) >= start + 6 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the discovery did not ask DNS again");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_txt_config_retries_changes_its_timeout_and_survives_a_malformed_record() {
    let mut setup = setup(&ServiceConfig::default()).await;
    // Another language's choice comes first: skipped, ours (for "rust") is taken.
    let choices = format!(
        r#"grpc_config=[{{"clientLanguage": ["go"], "serviceConfig": {NO_RETRY}}},
                        {{"clientLanguage": ["rust"], "serviceConfig": {}}}]"#,
        retrying("5s")
    );
    set_txt(&setup.dns, Some(&choices)).await;
    setup.changed_from(0).await;
    // Two failures, then an answer: the config's retry policy makes the call succeed.
    setup.call(2).await.expect("answered on the third attempt");
    assert_eq!(setup.flaky.calls.load(Ordering::SeqCst), 3);

    // A malformed record: the last good config stays (the retries still happen).
    let generation = setup.feed.generation();
    set_txt(&setup.dns, Some("grpc_config=[{\"serviceConfig\": ")).await;
    setup.looked_again().await;
    assert_eq!(setup.feed.generation(), generation, "nothing published");
    setup.call(2).await.expect("still retried");
    // A well-formed choice list whose config gRPC refuses: the layer keeps the last good one.
    set_txt(
        &setup.dns,
        Some(r#"grpc_config=[{"serviceConfig": {"methodConfig": [{"name": [{}], "timeout": "soon"}]}}]"#),
    )
    .await;
    setup.changed_from(generation).await;
    setup
        .call(2)
        .await
        .expect("the refused config left the last good one");

    // The record's timeout changes: a call slower than the new one fails at its deadline.
    setup.flaky.delay_ms.store(600, Ordering::SeqCst);
    setup.call(0).await.expect("600 ms is within 5 s");
    let generation = setup.feed.generation();
    let short = format!("grpc_config=[{{\"serviceConfig\": {}}}]", retrying("0.1s"));
    set_txt(&setup.dns, Some(&short)).await;
    setup.changed_from(generation).await;
    // DEADLINE_EXCEEDED alone proves the new timeout: under the old 5 s one the call succeeds
    // at 600 ms. The time only has to show it was the config's 0.1 s, with room (10 s) for a
    // stall of a loaded CI machine (`cargo test` runs this binary's tests at once on 2 cores).
    let started = tokio::time::Instant::now();
    let error = setup.call(0).await.expect_err("over the new 0.1 s timeout");
    assert_eq!(error.code(), Code::DeadlineExceeded, "{error:?}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(100) && took < Duration::from_secs(10),
        "{took:?}"
    );
    setup.flaky.delay_ms.store(0, Ordering::SeqCst);

    // The record goes: the user's default (none here) applies, with no retries.
    let generation = setup.feed.generation();
    set_txt(&setup.dns, None).await;
    setup.changed_from(generation).await;
    let error = setup.call(1).await.expect_err("no retry without a config");
    assert_eq!(error.code(), Code::Unavailable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_txt_record_leaves_the_users_default() {
    let default = ServiceConfig::from_json(&retrying("5s")).expect("valid");
    let mut setup = setup(&default).await;
    setup.looked_again().await;
    assert_eq!(setup.feed.generation(), 0, "no record: nothing published");
    setup.call(2).await.expect("the default's retries");
    // Only another language's choice: none for this client, the default stays.
    let other = format!(
        r#"grpc_config=[{{"clientLanguage": ["go", "java"], "serviceConfig": {NO_RETRY}}}]"#
    );
    set_txt(&setup.dns, Some(&other)).await;
    setup.looked_again().await;
    setup.call(2).await.expect("still the default's retries");
}

/// The choices read as grpc-go's `canaryingSC` reads them: an empty `clientLanguage` list
/// matches no client, a `percentage` under 1 never matches and one over 100 always does, and a
/// key given twice in two cases takes the value written last (`null`: every host). Each was
/// refused or read otherwise before: the empty list matched (no retries), and the other two
/// made the record malformed (nothing published).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn choices_are_read_as_grpc_go_reads_them() {
    let mut setup = setup(&ServiceConfig::default()).await;
    let choices = format!(
        r#"grpc_config=[{{"clientLanguage": [], "serviceConfig": {NO_RETRY}}},
                        {{"percentage": -5, "serviceConfig": {NO_RETRY}}},
                        {{"clientHostname": ["nowhere.invalid"], "ClientHostName": null,
                          "percentage": 150, "serviceConfig": {}}}]"#,
        retrying("5s")
    );
    set_txt(&setup.dns, Some(&choices)).await;
    setup.changed_from(0).await;
    // The last choice's retry policy: two failures, then an answer.
    setup.call(2).await.expect("answered on the third attempt");
    assert_eq!(setup.flaky.calls.load(Ordering::SeqCst), 3);
}
