//! Heap allocations per unary round trip, client and server together, over loopback TCP, and
//! over UDP (the endpoint's UDP path: every call a datagram each way).
//!
//! Counted with dhat's global allocator: a hand-written counting allocator needs `unsafe impl
//! GlobalAlloc`, which the workspace's `unsafe_code = "forbid"` refuses (and `forbid` cannot be
//! relaxed per file). A count, not a speed, so it is stable on any machine; the bound is loose
//! enough for noise and tight enough to catch a regression.
//!
//! A second test counts the same round trip through a typical middleware stack, the one the
//! `sockrpc-stack` bench row runs: client `TraceLayer` → `RetryLayer` → `MetricsLayer`, server
//! `TraceLayer` → `ConcurrencyLimitLayer` → `MetricsLayer`; spans at INFO (into the bare
//! registry, then into a `fmt` subscriber writing to a sink), metrics into a Prometheus recorder.
//!
//! `cargo test -p sockrpc-tests --test allocs -- --nocapture` prints the counts. With
//! `SOCKRPC_ALLOCS_PROFILE=/tmp/dhat-heap.json` the run also writes dhat's heap profile there:
//! every allocation site with its count (view it with dhat's `dh_view.html`).

use bytes::Bytes;
use sockrpc::service::udp::UdpServerConfig;
use sockrpc::{Channel, Request, Response, RpcService, Server, Status};
use sockrpc_middleware::limit::ConcurrencyLimitLayer;
use sockrpc_middleware::metrics::MetricsLayer;
use sockrpc_middleware::retry::RetryLayer;
use sockrpc_middleware::trace::TraceLayer;
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::{Echo, EchoServer};
use sockrpc_tests::echo::{EchoReply, EchoRequest, FailRequest, GrowRequest, SleepRequest};
use std::time::Duration;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const WARMUP: u64 = 1_000;
const CALLS: u64 = 10_000;
/// Issue 9 asks for at most 3; today a round trip takes about 1 (the handler's boxed future;
/// encoded messages are cut from shared chunks, see `sockrpc_protocol::codec::arena`).
const BOUND: f64 = 3.0;
/// Over UDP (about 3.02 today, from 5.1): the client's UDP call future, boxed (952 bytes, so
/// that TCP calls' futures stay small), the handler's boxed future, and the reply cache's own
/// copy of the answer (a copy, so that a cached answer never keeps a shared chunk alive). The
/// request buffer and the answer slot are reused (`sockrpc-transport/src/udp/slots.rs`).
const UDP_BOUND: f64 = 3.1;
/// Through the typical middleware stack on both sides (about 2 today); this catches a regression.
const STACK_BOUND: f64 = 6.0;
/// The same with a logging subscriber, which formats every span's fields into strings of its own.
const LOGGING_BOUND: f64 = 32.0;
/// dhat allows one profiler at a time, and counts every thread: the tests here take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
static PAYLOAD: [u8; 64] = [0xa5; 64];

/// Echoes the payload and id; the other methods are not called here.
struct Echoer;

impl Echo for Echoer {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let EchoRequest { payload, id } = request.into_inner();
        Ok(Response::new(EchoReply { payload, id }))
    }

    async fn sleep(&self, _: Request<SleepRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn fail(&self, _: Request<FailRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn grow(&self, _: Request<GrowRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

fn profiler() -> dhat::Profiler {
    match std::env::var_os("SOCKRPC_ALLOCS_PROFILE") {
        Some(path) => dhat::Profiler::builder()
            .file_name(path)
            .trim_backtraces(Some(40))
            .build(),
        None => dhat::Profiler::builder().testing().build(),
    }
}

async fn call<T>(client: &mut EchoClient<T>, id: u64, timeout: Option<Duration>)
where
    T: RpcService,
{
    let mut request = Request::new(EchoRequest {
        payload: Bytes::from_static(&PAYLOAD),
        id,
    });
    if let Some(timeout) = timeout {
        request.set_timeout(timeout);
    }
    let reply = client.echo(request).await.expect("echo").into_inner();
    assert_eq!(reply.id, id);
    assert_eq!(reply.payload.len(), PAYLOAD.len());
}

/// Warms up, then returns the allocations per call over `CALLS` calls, and prints it.
fn measure<T: RpcService>(
    rt: &tokio::runtime::Runtime,
    client: &mut EchoClient<T>,
    timeout: Option<Duration>,
    what: &str,
) -> f64 {
    let (blocks, bytes) = rt.block_on(async {
        for id in 0..WARMUP {
            call(client, id, timeout).await;
        }
        let before = dhat::HeapStats::get();
        for id in 0..CALLS {
            call(client, id, timeout).await;
        }
        let after = dhat::HeapStats::get();
        (
            after.total_blocks - before.total_blocks,
            after.total_bytes - before.total_bytes,
        )
    });
    let per_call = blocks as f64 / CALLS as f64;
    let bytes = bytes as f64 / CALLS as f64;
    println!("allocations per unary round trip (client + server){what}: {per_call:.2}");
    println!("bytes allocated per unary round trip (client + server){what}: {bytes:.0}");
    per_call
}

/// The server's runtime: two workers, as in the bench (the method of issue 3).
fn server_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("server runtime")
}

/// The client's runtime: one thread, as in the bench.
fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime")
}

#[test]
fn allocations_per_unary_round_trip() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let _profiler = profiler();

    // Server on a 2-worker runtime, client on a current-thread one: the method of issue 3.
    let server_rt = server_runtime();
    let listener = server_rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = server_rt.spawn(
        Server::builder()
            .add_service(EchoServer::new(Echoer))
            .serve_with_listener_and_shutdown(listener, async {
                let _ = stopped.await;
            }),
    );

    let rt = client_runtime();
    let mut client = rt.block_on(EchoClient::connect(addr)).expect("connect");
    // Without a deadline (the figure issue 3 asks for), then with one, which costs the server
    // a timer future per call.
    let per_call = measure(&rt, &mut client, None, "");
    let with_deadline = measure(
        &rt,
        &mut client,
        Some(Duration::from_secs(10)),
        ", with a 10 s deadline",
    );
    drop(client);

    let _ = stop.send(());
    server_rt
        .block_on(server)
        .expect("server task")
        .expect("server");
    for count in [per_call, with_deadline] {
        assert!(
            count <= BOUND,
            "{count:.2} allocations per unary round trip, over the bound of {BOUND}"
        );
    }
}

#[test]
fn allocations_per_unary_round_trip_over_udp() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let _profiler = profiler();

    let server_rt = server_runtime();
    let (listener, udp_socket) = server_rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await;
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await;
        (listener.expect("bind tcp"), udp.expect("bind udp"))
    });
    let tcp_addr = listener.local_addr().expect("tcp addr");
    let udp_addr = udp_socket.local_addr().expect("udp addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = server_rt.spawn(
        Server::builder()
            .udp(udp_socket, UdpServerConfig::default())
            .add_service(EchoServer::new(Echoer))
            .serve_with_listener_and_shutdown(listener, async {
                let _ = stopped.await;
            }),
    );

    let rt = client_runtime();
    let endpoint = sockrpc::Endpoint::from_uri(&format!("tcp://{tcp_addr}"))
        .expect("endpoint")
        .udp(udp_addr);
    let channel = rt
        .block_on(sockrpc::Channel::connect(endpoint))
        .expect("connect");
    let mut client = EchoClient::new(channel.clone());
    let per_call = measure(&rt, &mut client, None, " over UDP");
    let stats = channel.udp_stats().expect("UDP set up");
    assert!(
        stats.replies >= WARMUP + CALLS,
        "every call went over UDP: {stats:?}"
    );
    drop((client, channel));

    let _ = stop.send(());
    server_rt
        .block_on(server)
        .expect("server task")
        .expect("server");
    assert!(
        per_call <= UDP_BOUND,
        "{per_call:.2} allocations per unary round trip over UDP, over the bound of {UDP_BOUND}"
    );
}

/// Allocations per call with the stack on both sides, `subscriber` on this test's threads.
fn stack_round_trip(subscriber: tracing::Dispatch, what: &str) -> f64 {
    let on_server = subscriber.clone();
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || {
            // The runtime's threads keep this default for their whole life.
            std::mem::forget(tracing::dispatcher::set_default(&on_server));
        })
        .build()
        .expect("server runtime");
    let listener = server_rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = server_rt.spawn(
        Server::builder()
            .layer(TraceLayer::server())
            .layer(ConcurrencyLimitLayer::new().others(1024))
            .layer(MetricsLayer::server())
            .add_service(EchoServer::new(Echoer))
            .serve_with_listener_and_shutdown(listener, async {
                let _ = stopped.await;
            }),
    );
    let rt = client_runtime();
    let per_call = tracing::dispatcher::with_default(&subscriber, || {
        let channel = rt.block_on(Channel::connect(addr)).expect("connect");
        let stack = tower::ServiceBuilder::new()
            .layer(TraceLayer::for_channel(&channel))
            // With the channel's close signal: it must cost nothing per call.
            .layer(RetryLayer::new().close_signal(channel.close_signal()))
            .layer(MetricsLayer::client())
            .service(channel);
        let mut client = EchoClient::new(stack);
        measure(&rt, &mut client, None, what)
    });
    let _ = stop.send(());
    server_rt
        .block_on(server)
        .expect("server task")
        .expect("server");
    per_call
}

#[test]
fn allocations_per_unary_round_trip_through_the_typical_stack() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    // Subscribers are scoped to this test's threads, so the other test runs without one; the
    // recorder is global, but only this test's layers record.
    let recorder = sockrpc_middleware::metrics::prometheus::builder().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).expect("the only recorder");
    let _profiler = profiler();

    // What the layers cost with spans enabled: a registry at INFO, which keeps span data in
    // pooled slots and formats nothing.
    let registry = tracing::Dispatch::new(tracing_subscriber::layer::SubscriberExt::with(
        tracing_subscriber::registry(),
        tracing_subscriber::filter::LevelFilter::INFO,
    ));
    let layers = stack_round_trip(registry, " with the typical stack (registry at INFO)");
    // A logging subscriber whose output goes nowhere: it also formats each span's fields.
    let fmt = tracing::Dispatch::new(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(std::io::sink)
            .finish(),
    );
    let logging = stack_round_trip(fmt, " with the typical stack (fmt subscriber into a sink)");
    // The recorder holds what it counted; a scrape would show it.
    handle.run_upkeep();
    assert!(handle.render().contains("rpc_server_call_finished_total"));
    for (count, bound) in [(layers, STACK_BOUND), (logging, LOGGING_BOUND)] {
        assert!(
            count <= bound,
            "{count:.2} allocations per unary round trip with the stack, over {bound}"
        );
    }
}

/// What a server counts for a parsed metadata block against its budgets
/// (`frame::metadata_held`: waiting and running calls, unary and streaming) covers what the
/// parsed map holds as the allocator sees it; the count its limit uses (`metadata_charge`,
/// 36 bytes for an entry of a one-byte key and no value), which running unary calls used to
/// be charged, does not.
#[test]
fn a_parsed_metadata_block_holds_no_more_than_it_is_counted() {
    use sockrpc::protocol::frame::{self, Frame, FrameHeader, HEADER_LEN};
    use sockrpc::protocol::{Limits, MetadataMap, MethodPath};
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let _profiler = profiler();
    let limits = Limits::default();
    let path = MethodPath::from_static("/sockrpc.test.Echo/Echo");
    // 455 entries is the most of this kind under the default 16 KiB limit; 257 leaves the
    // table's capacity (grown by doubling) nearly half unused.
    for entries in [1usize, 100, 257, 455] {
        let mut metadata = MetadataMap::new();
        for _ in 0..entries {
            metadata
                .append("a", "".parse().expect("value"))
                .expect("key");
        }
        let mut wire = bytes::BytesMut::new();
        frame::encode_open(&mut wire, 1, None, &path, &metadata, false);
        drop(metadata);
        let wire = wire.freeze();
        let head: [u8; HEADER_LEN] = wire[..HEADER_LEN].try_into().expect("header");
        let header = FrameHeader::parse(&head, &limits).expect("header");
        // The least of a few parses: the other tests' threads may still be winding down, and
        // dhat counts every thread's allocations.
        let mut least = None;
        for _ in 0..5 {
            let body = wire.slice(HEADER_LEN..);
            let before = dhat::HeapStats::get().curr_bytes;
            let parsed = match Frame::parse(&header, body, &limits).expect("parse") {
                Frame::Open { metadata, .. } => metadata,
                other => panic!("not an OPEN: {other:?}"),
            };
            let held = dhat::HeapStats::get().curr_bytes.saturating_sub(before);
            if least.as_ref().is_none_or(|(least, _)| held < *least) {
                least = Some((held, parsed));
            }
        }
        let (held, parsed) = least.expect("parsed");
        let counted = frame::metadata_held(&parsed);
        let charged = frame::metadata_charge(&parsed);
        println!(
            "{entries} entries: {held} bytes held, {counted} counted, {charged} as its limit \
             counts"
        );
        assert_eq!(parsed.len(), entries);
        assert!(
            counted >= held,
            "{entries} entries hold {held} bytes, counted {counted}"
        );
        assert!(
            counted <= 2 * held + 64,
            "{entries} entries hold {held} bytes, counted far more: {counted}"
        );
        if entries >= 100 {
            assert!(
                charged < held,
                "the limit's count, {charged}, is short of {held}"
            );
        }
    }
}
