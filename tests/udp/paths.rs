//! A hostile verified host naming a new method in every REQUEST: the reply cache keeps one
//! shared copy of each of the first 1,024 paths, and past that a copy per entry. Those copies
//! are memory the entry holds, so they count against the cache's byte bound: before, an entry
//! whose answer was short (here an authentication layer's fixed refusal; the router's own
//! `UNIMPLEMENTED` happens to quote the path) counted ~150 bytes while it held a path of up to a
//! whole datagram (1,232 bytes), and a host filled the cache's byte bound several times over with
//! path copies nobody counted.

use crate::in_flight_share::cookie_for;
use crate::support::{stop_server, BOUND};
use bytes::{Bytes, BytesMut};
use sockrpc::service::udp::datagram::{self, Header, Kind, COOKIE_LEN};
use sockrpc::service::udp::{ReplyCache, ReplyCacheConfig, UdpServer, UdpServerConfig};
use sockrpc::transport::dispatch::{Dispatch, DispatchFuture, IncomingCall};
use sockrpc::{Body, MetadataMap, MethodPath, Status};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;

/// What an authentication layer in front of every method answers a caller it does not know:
/// a short refusal that does not quote the path.
#[derive(Clone)]
struct Refusing;

impl Dispatch for Refusing {
    type Body = Body;

    fn dispatch(&mut self, _call: IncomingCall) -> DispatchFuture<Body> {
        Box::pin(std::future::ready(Err(Status::unauthenticated("who?"))))
    }
}

/// Distinct paths the cache shares before it copies one per entry (`cache/mod.rs`, MAX_PATHS).
const SHARED_PATHS: usize = 1024;

/// Length of each path past the shared ones: most of a datagram.
const LONG: usize = 1_100;

/// A REQUEST naming `path`, from a verified source (its `cookie`), without a watermark.
fn request_naming(path: &str, call_id: u32, cookie: [u8; COOKIE_LEN]) -> BytesMut {
    let header = Header {
        kind: Kind::Request,
        flags: 0,
        client_instance: 0x9A7B,
        call_id,
        cookie,
    };
    let path = MethodPath::try_from_bytes(Bytes::from(path.to_owned())).expect("valid path");
    let mut out = BytesMut::new();
    let metadata = MetadataMap::new();
    datagram::encode_request(&mut out, &header, None, None, &path, &metadata, &[]);
    out
}

/// Sends each REQUEST and waits for its answer (sent again if either is lost).
pub(crate) async fn call(socket: &UdpSocket, request: &[u8]) {
    let mut buf = vec![0u8; 65536];
    for _ in 0..20 {
        socket.send(request).await.expect("send");
        let wait = Duration::from_millis(500);
        if let Ok(Ok(n)) = tokio::time::timeout(wait, socket.recv(&mut buf)).await {
            let header = Header::parse(&buf[..n]).expect("server header");
            if header.call_id == u32::from_be_bytes(request[12..16].try_into().expect("id")) {
                return;
            }
        }
    }
    panic!("no answer within 20 attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_copies_count_against_the_cache_byte_bound() {
    const MAX_BYTES: usize = 512 * 1024;
    const LONG_CALLS: u32 = 3_000;
    let mut cache = ReplyCacheConfig::default();
    cache.max_bytes = MAX_BYTES;
    cache.max_bytes_per_source = MAX_BYTES;
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let cache = Arc::new(ReplyCache::new(cache));
    let config = UdpServerConfig::default();
    let server = UdpServer::new(socket, Refusing, config, Arc::clone(&cache)).expect("server");
    let addr = server.local_addr().expect("addr");
    let stats = server.stats();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async {
        let _ = stopped.await;
    }));
    let hostile = UdpSocket::bind("127.0.0.4:0")
        .await
        .expect("bind 127.0.0.4");
    hostile.connect(addr).await.expect("connect");
    let cookie = cookie_for(&hostile).await;
    let test = async {
        // The shared paths first: short ones, each kept once whatever the entries naming it.
        for n in 0..SHARED_PATHS as u32 {
            call(
                &hostile,
                &request_naming(&format!("/x.Y/s{n}"), n + 1, cookie),
            )
            .await;
        }
        let shared = cache.len();
        // Then a long new path per call: each entry holds a copy of its own.
        for n in 0..LONG_CALLS {
            let mut path = format!("/x.Y/l{n}_");
            path.extend(std::iter::repeat_n('m', LONG - path.len()));
            let id = SHARED_PATHS as u32 + 1 + n;
            call(&hostile, &request_naming(&path, id, cookie)).await;
        }
        let copies = cache.len() - shared;
        // Every entry is in the cache's count (a copy each), and the copies alone fit the
        // byte bound the cache was given.
        assert!(
            copies * LONG <= MAX_BYTES,
            "{copies} entries hold {} bytes of path copies, over the {MAX_BYTES}-byte bound \
             (cache counts {} bytes); {:?}",
            copies * LONG,
            cache.bytes(),
            stats.snapshot()
        );
        assert!(copies > 0, "some long-path calls were kept");
        let counters = stats.snapshot();
        assert!(
            counters.cache_full + counters.over_share > 0,
            "the bound refused calls: {counters:?}"
        );
    };
    tokio::time::timeout(BOUND * 6, test)
        .await
        .expect("bounded");
    stop_server(stop, task).await;
}
