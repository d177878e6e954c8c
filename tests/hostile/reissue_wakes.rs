//! TCP re-issues waiting for a UDP call that is still running (`udp/cache/reissue.rs`) are
//! woken when that call ends, not whenever any UDP call on the server ends.
//!
//! A re-issue of a UDP call that still runs waits in the reply cache until it ends. The waits
//! shared one notifier, and every UDP call that finished woke all of them: each took the cache's
//! lock (the one every UDP call takes, twice) to look at its own entry, found it still running
//! and waited again. A client that re-issues its own slow call a few hundred times (one
//! connection takes 4,096) made every other client's UDP call cost that many wake-ups and
//! acquisitions of that lock: here 200 waits and 40 calls of another client, 8,000 polls of
//! the waits (about 200 each call) before, none now. Counted as the enters of the re-issues'
//! `rpc` spans (`parked_wakes.rs`'s counter; UDP calls have no such span). When the slow call
//! ends, every re-issue gets its answer.

use crate::parked_wakes::{counted_runtime, PollCount};
use crate::support::{bounded, count_worker_panics, BOUND};
use bytes::{Bytes, BytesMut};
use prost::Message as _;
use sockrpc::service::udp::datagram::{self, Header, Kind, COOKIE_LEN};
use sockrpc::service::udp::{UdpClient, UdpClientConfig, UdpOutcome, UdpServerConfig};
use sockrpc::transport::ClientConnection;
use sockrpc::{Limits, MetadataMap, MethodPath, Request, Response, Server, Status};
use sockrpc_tests::echo::echo_server::{Echo, EchoServer};
use sockrpc_tests::echo::{EchoReply, EchoRequest, FailRequest, GrowRequest, SleepRequest};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::{oneshot, Notify};

static ECHO: MethodPath = MethodPath::from_static("/sockrpc.test.Echo/Echo");
static SLEEP: MethodPath = MethodPath::from_static("/sockrpc.test.Echo/Sleep");

/// Re-issues waiting at once for the one slow UDP call.
const WAITING: u64 = 200;
/// UDP calls of another client that end while they wait.
const OTHER_CALLS: u64 = 40;
/// Polls of the waiting re-issues those calls may cost, all told: none is due (their own call
/// has not ended). Waking every wait per call made it `WAITING` × `OTHER_CALLS`.
const POLLS_ALLOWED: u64 = WAITING / 2;
/// The attacker's client instance and the id of its slow UDP call.
const INSTANCE: u64 = 0x5eed_0fa7_7ac4;
const SLOW_CALL: u32 = 1;

/// `Sleep` waits until released (the slow call); `Echo` answers at once.
#[derive(Clone, Default)]
struct Held {
    release: Arc<Notify>,
    started: Arc<Notify>,
}

impl Echo for Held {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let request = request.into_inner();
        Ok(Response::new(EchoReply {
            payload: request.payload,
            id: request.id,
        }))
    }

    async fn sleep(&self, _: Request<SleepRequest>) -> Result<Response<EchoReply>, Status> {
        self.started.notify_one();
        self.release.notified().await;
        Ok(Response::new(EchoReply {
            payload: Bytes::from_static(b"slow"),
            id: 7,
        }))
    }

    async fn fail(&self, _: Request<FailRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::internal("unused"))
    }

    async fn grow(&self, _: Request<GrowRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::internal("unused"))
    }
}

/// A `Sleep` REQUEST datagram of client [`INSTANCE`], call [`SLOW_CALL`], without a cookie.
fn slow_request() -> BytesMut {
    let header = Header {
        kind: Kind::Request,
        flags: 0,
        client_instance: INSTANCE,
        call_id: SLOW_CALL,
        cookie: [0; COOKIE_LEN],
    };
    let mut out = BytesMut::new();
    let message = SleepRequest::default().encode_to_vec();
    datagram::encode_request(
        &mut out,
        &header,
        None,
        None,
        &SLEEP,
        &MetadataMap::new(),
        &message,
    );
    out
}

/// Polls of the server's TCP calls so far, once they stopped moving (10 ms without one).
async fn settled(counter: &PollCount) -> u64 {
    let mut last = counter.enters.load(Ordering::SeqCst);
    bounded("the server's calls settle", async {
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let now = counter.enters.load(Ordering::SeqCst);
            if now == last {
                return now;
            }
            last = now;
        }
    })
    .await
}

#[test]
fn reissues_waiting_for_a_running_call_sleep_through_other_calls() {
    count_worker_panics();
    let counter = Arc::new(PollCount::default());
    counted_runtime(&counter).block_on(async {
        let service = Held::default();
        let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let listener = sockrpc::transport::bind_tcp(any, &Default::default()).expect("bind tcp");
        let tcp = listener.local_addr().expect("address");
        let socket = UdpSocket::bind(any).await.expect("bind udp");
        let udp = socket.local_addr().expect("address");
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(
            Server::builder()
                .udp(socket, UdpServerConfig::default())
                .add_service(EchoServer::new(service.clone()))
                .serve_with_listener_and_shutdown(listener, async {
                    let _ = stopped.await;
                }),
        );

        // The slow UDP call, from 127.0.0.1: its entry runs until released.
        let attacker = UdpSocket::bind(any).await.expect("bind");
        attacker.connect(udp).await.expect("connect");
        let started = service.started.notified();
        attacker.send(&slow_request()).await.expect("send");
        bounded("the slow call starts", started).await;

        // Its re-issues over TCP, from the same address: each waits for it to end.
        let stream = bounded("connect", tokio::net::TcpStream::connect(tcp))
            .await
            .expect("connect");
        let conn = ClientConnection::spawn_tcp(stream, Limits::default());
        bounded("ready", conn.ready()).await.expect("ready");
        let message = Bytes::from(SleepRequest::default().encode_to_vec());
        let waits: Vec<_> = (0..WAITING)
            .map(|_| {
                let mut request = Request::new(message.clone());
                request.set_timeout(BOUND * 3);
                tokio::spawn(conn.reissue(SLEEP.clone(), request, (INSTANCE, SLOW_CALL)))
            })
            .collect();
        bounded("every re-issue reaches the server", async {
            while counter.spans.load(Ordering::SeqCst) < WAITING {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        let before = settled(&counter).await;

        // Another client's calls come and go.
        let other = UdpClient::connect(udp, UdpClientConfig::default())
            .await
            .expect("udp client");
        let echo = Request::new(Bytes::from(EchoRequest::default().encode_to_vec()));
        for i in 0..OTHER_CALLS {
            let deadline = Some(tokio::time::Instant::now() + BOUND);
            match other.call(&ECHO, &echo, deadline).await {
                UdpOutcome::Reply(Ok(_)) => {}
                outcome => panic!("the other client's call {i}: {outcome:?}"),
            }
        }
        let polls = settled(&counter).await - before;
        eprintln!("{OTHER_CALLS} UDP calls cost {polls} polls of {WAITING} waiting re-issues");
        assert!(
            polls <= POLLS_ALLOWED,
            "{OTHER_CALLS} other UDP calls woke the {WAITING} waiting re-issues {polls} times"
        );
        assert_eq!(
            counter.spans.load(Ordering::SeqCst),
            WAITING,
            "no other TCP call was made"
        );

        // The slow call ends: every re-issue gets its answer.
        service.release.notify_one();
        for (i, wait) in waits.into_iter().enumerate() {
            let answer = bounded("a re-issue's answer", wait)
                .await
                .expect("the re-issue's task");
            let reply = answer
                .map(|response| EchoReply::decode(response.into_inner()).expect("EchoReply"))
                .unwrap_or_else(|status| panic!("re-issue {i}: {status:?}"));
            assert_eq!(
                (reply.id, &reply.payload[..]),
                (7, &b"slow"[..]),
                "re-issue {i}"
            );
        }
        // The attacker's datagram socket is answered too (unverified: no larger than it).
        let mut buf = vec![0u8; 2048];
        let n = bounded("the slow call's own answer", attacker.recv(&mut buf))
            .await
            .expect("recv");
        let header = Header::parse(&buf[..n]).expect("a server datagram");
        assert_eq!(header.call_id, SLOW_CALL);
        assert!(
            matches!(header.kind, Kind::Reply | Kind::Truncated),
            "{header:?}"
        );

        drop(conn);
        let _ = stop.send(());
        bounded("the server stops", server)
            .await
            .expect("server task")
            .expect("serve");
    });
    crate::support::assert_no_worker_panics();
}
