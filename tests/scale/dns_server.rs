//! The DNS server the DNS discovery tests ask: hickory-server, in process, UDP on port 0, with
//! one zone (`scale.test.`) whose records a test changes while it runs, and which can be made
//! to fail A queries (SERVFAIL).

use hickory_server::authority::{AuthorityObject, Catalog, MessageResponseBuilder, ZoneType};
use hickory_server::proto::op::{Header, ResponseCode};
use hickory_server::proto::rr::rdata::{A, SOA};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordSet, RecordType, RrKey};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryAuthority;
use hickory_server::ServerFuture;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

/// The zone's catalog, except that A (AAAA) queries are answered SERVFAIL while `fail_a`
/// (`fail_aaaa`) is set.
struct Flaky {
    catalog: Catalog,
    fail_a: Arc<AtomicBool>,
    fail_aaaa: Arc<AtomicBool>,
    /// Queries answered SERVFAIL.
    failed: Arc<AtomicU32>,
    /// Every query asked.
    asked: Arc<AtomicU32>,
}

// `RequestHandler` is an `async_trait`: its method written out as that macro would.
impl RequestHandler for Flaky {
    fn handle_request<'life0, 'life1, 'async_trait, R>(
        &'life0 self,
        request: &'life1 Request,
        mut response: R,
    ) -> Pin<Box<dyn Future<Output = ResponseInfo> + Send + 'async_trait>>
    where
        R: ResponseHandler + 'async_trait,
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            self.asked.fetch_add(1, Ordering::SeqCst);
            let asks = request.request_info().map(|info| info.query.query_type());
            let fails = match asks {
                Ok(RecordType::A) => self.fail_a.load(Ordering::SeqCst),
                Ok(RecordType::AAAA) => self.fail_aaaa.load(Ordering::SeqCst),
                _ => false,
            };
            if !fails {
                return self.catalog.handle_request(request, response).await;
            }
            self.failed.fetch_add(1, Ordering::SeqCst);
            let message = MessageResponseBuilder::from_message_request(request)
                .error_msg(request.header(), ResponseCode::ServFail);
            match response.send_response(message).await {
                Ok(info) => info,
                Err(_) => {
                    let mut header = Header::response_from_request(request.header());
                    header.set_response_code(ResponseCode::ServFail);
                    header.into()
                }
            }
        })
    }
}

/// A one-zone DNS server (`scale.test.`) whose `svc.scale.test.` A records the test sets.
pub(crate) struct Dns {
    pub(crate) addr: SocketAddr,
    zone: Arc<InMemoryAuthority>,
    pub(crate) name: Name,
    pub(crate) fail_a: Arc<AtomicBool>,
    pub(crate) fail_aaaa: Arc<AtomicBool>,
    pub(crate) failed: Arc<AtomicU32>,
    /// Every query the server was asked.
    pub(crate) asked: Arc<AtomicU32>,
    _server: ServerFuture<Flaky>,
}

/// A UDP socket on a free port, and with `tcp` a listener on the same port number, as a DNS
/// server answers on both. The port the kernel picks for UDP may be taken for TCP (another
/// test's connection): then another port, a bounded number of times.
async fn bind_both(tcp: bool) -> (tokio::net::UdpSocket, Option<tokio::net::TcpListener>) {
    for _ in 0..50 {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind dns");
        if !tcp {
            return (socket, None);
        }
        let addr = socket.local_addr().expect("dns addr");
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => return (socket, Some(listener)),
            Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(err) => panic!("bind dns over TCP on the UDP port: {err}"),
        }
    }
    panic!("no port free for DNS over both UDP and TCP in 50 tries")
}

impl Dns {
    /// A server whose answers of "no such records" stand for 1 s (its SOA's TTL and minimum).
    pub(crate) async fn start() -> Dns {
        Dns::with_negative_ttl(1).await
    }

    /// A server whose answers of "no such records" stand for `negative` seconds (RFC 2308: the
    /// smaller of its SOA's TTL and minimum, both `negative` here).
    pub(crate) async fn with_negative_ttl(negative: u32) -> Dns {
        Dns::serve(negative, false).await
    }

    /// [`Dns::start`], answering over TCP too, on the same port: an answer too long for UDP
    /// comes back truncated, and the resolver must ask again over TCP.
    pub(crate) async fn with_tcp() -> Dns {
        Dns::serve(1, true).await
    }

    async fn serve(negative: u32, tcp: bool) -> Dns {
        let origin = Name::from_str("scale.test.").expect("origin");
        let mut zone = InMemoryAuthority::empty(origin.clone(), ZoneType::Primary, false);
        let soa = SOA::new(
            Name::from_str("ns.scale.test.").expect("ns"),
            Name::from_str("admin.scale.test.").expect("admin"),
            1,
            60,
            60,
            60,
            negative,
        );
        let soa = Record::from_rdata(origin.clone(), negative, RData::SOA(soa));
        zone.upsert_mut(soa, 1);
        let zone = Arc::new(zone);
        let mut catalog = Catalog::new();
        let object: Arc<dyn AuthorityObject> = zone.clone();
        catalog.upsert(LowerName::from(&origin), vec![object]);
        let (socket, listener) = bind_both(tcp).await;
        let addr = socket.local_addr().expect("dns addr");
        let (fail_a, fail_aaaa) = (Arc::default(), Arc::default());
        let (failed, asked) = (Arc::default(), Arc::default());
        let mut server = ServerFuture::new(Flaky {
            catalog,
            fail_a: Arc::clone(&fail_a),
            fail_aaaa: Arc::clone(&fail_aaaa),
            failed: Arc::clone(&failed),
            asked: Arc::clone(&asked),
        });
        server.register_socket(socket);
        if let Some(listener) = listener {
            server.register_listener(listener, std::time::Duration::from_secs(5));
        }
        Dns {
            addr,
            zone,
            name: Name::from_str("svc.scale.test.").expect("name"),
            fail_a,
            fail_aaaa,
            failed,
            asked,
            _server: server,
        }
    }

    /// Sets the A records of `svc.scale.test.`, TTL 1 s.
    pub(crate) async fn set(&self, ips: &[Ipv4Addr]) {
        let data = ips.iter().map(|ip| RData::A(A(*ip))).collect();
        self.set_records(&self.name.clone(), RecordType::A, 1, data)
            .await;
    }

    /// Replaces the `kind` records of `name` (an empty list removes them).
    pub(crate) async fn set_records(
        &self,
        name: &Name,
        kind: RecordType,
        ttl: u32,
        data: Vec<RData>,
    ) {
        let key = RrKey::new(LowerName::from(name), kind);
        let mut records = self.zone.records_mut().await;
        if data.is_empty() {
            records.remove(&key);
            return;
        }
        let mut set = RecordSet::with_ttl(name.clone(), kind, ttl);
        for rdata in data {
            set.add_rdata(rdata);
        }
        records.insert(key, Arc::new(set));
    }
}

/// `text` as a DNS name.
pub(crate) fn name(text: &str) -> Name {
    Name::from_str(text).expect("a DNS name")
}
