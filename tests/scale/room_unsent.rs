//! A balanced call that waited for room on a connection (the server's limit of calls in flight
//! reached) and lost that connection before any byte of it was written was never sent: it is
//! picked again without counting an attempt, as a call that found no connection is
//! (`never_sent.rs`), until its deadline. The transport said "not processed" only, so the
//! balanced channel counted each such failure against `BalanceBuilder::attempts` (3), and the
//! call failed `UNAVAILABLE` the third time, its deadline far, though no server had seen it.
//!
//! The one endpoint is a front of the test's: for [`ROUNDS`] rounds its connections announce a
//! limit of one call, take one call (a fail-fast blocker the test makes), and close when the
//! test says, once the call under test waits there for room; then connections are passed
//! through to a real server. A picker holds the call under test back until the blocker of the
//! round fills the connection, so it waits for room on each connection in turn.

use super::counted::until;
use super::support::Server;
use sockrpc::protocol::frame::{encode_settings, HEADER_LEN, PREFACE};
use sockrpc::service::balance::{BalanceBuilder, Balanced, Member, Members, Picker};
use sockrpc::service::discovery;
use sockrpc::transport::ClientConnection;
use sockrpc::Call;
use sockrpc_tests::helloworld::greeter_client::GreeterClient;
use sockrpc_tests::helloworld::HelloRequest;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// Connections that close with the call under test waiting for room: more than the 3 attempts
/// a call refused unprocessed may make.
const ROUNDS: usize = 5;

/// The metadata entry that marks the call under test.
const HELD: &str = "x-held";

/// The frame kind of an OPEN.
const OPEN: u8 = 1;

/// The test's endpoint: what its connections saw, and what closes them.
struct Front {
    addr: SocketAddr,
    /// Calls opened on the limited connections.
    opens: Arc<AtomicUsize>,
    /// Limited connections open.
    limited: Arc<AtomicUsize>,
    /// Closes the limited connection that took a call (or the next one, once it takes one).
    cut: Arc<Notify>,
    /// Set: new connections are passed through, and limited ones without a call close.
    pass: tokio::sync::watch::Sender<bool>,
}

/// Takes one off a count as its connection's task ends, however it ends.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Front {
    /// Listens on loopback: connections are limited until `pass` is set, then
    /// passed through to `server`.
    async fn start(server: SocketAddr) -> Front {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let front = Front {
            addr,
            opens: Arc::default(),
            limited: Arc::default(),
            cut: Arc::default(),
            pass: tokio::sync::watch::Sender::new(false),
        };
        let (opens, limited, cut) = (
            Arc::clone(&front.opens),
            Arc::clone(&front.limited),
            Arc::clone(&front.cut),
        );
        let pass = front.pass.subscribe();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                if *pass.borrow() {
                    tokio::spawn(pass_through(stream, server));
                    continue;
                }
                limited.fetch_add(1, Ordering::SeqCst);
                let open = Open(Arc::clone(&limited));
                let (opens, cut, mut pass) = (Arc::clone(&opens), Arc::clone(&cut), pass.clone());
                tokio::spawn(async move {
                    let _open = open;
                    let mut stream = stream;
                    let opened = tokio::select! {
                        opened = first_open(&mut stream) => opened.is_ok(),
                        _ = pass.wait_for(|pass| *pass) => false,
                    };
                    if opened {
                        opens.fetch_add(1, Ordering::SeqCst);
                        cut.notified().await;
                    }
                });
            }
        });
        front
    }

    fn opens(&self) -> usize {
        self.opens.load(Ordering::SeqCst)
    }

    fn limited(&self) -> usize {
        self.limited.load(Ordering::SeqCst)
    }
}

/// A server that takes one call in flight: announces it, then reads until the first OPEN.
async fn first_open(stream: &mut TcpStream) -> std::io::Result<()> {
    let mut hello = bytes::BytesMut::new();
    hello.extend_from_slice(&PREFACE);
    encode_settings(&mut hello, 0, 1);
    stream.write_all(&hello).await?;
    let mut preface = [0u8; PREFACE.len()];
    stream.read_exact(&mut preface).await?;
    loop {
        let mut head = [0u8; HEADER_LEN];
        stream.read_exact(&mut head).await?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await?;
        if head[4] == OPEN {
            return Ok(());
        }
    }
}

/// Relays a connection to `server` both ways until either side ends.
async fn pass_through(mut stream: TcpStream, server: SocketAddr) {
    if let Ok(mut upstream) = TcpStream::connect(server).await {
        let _ = tokio::io::copy_bidirectional(&mut stream, &mut upstream).await;
    }
}

/// The first usable endpoint, noted for the test; the call under test (marked [`HELD`]) only
/// while it has picks allowed, so that it waits until the round's blocker fills the connection.
struct Gated {
    allowed: Arc<AtomicUsize>,
    picks: Arc<AtomicUsize>,
    member: Arc<Mutex<Option<Arc<Member>>>>,
}

impl Picker for Gated {
    fn pick(
        &self,
        members: &Members,
        call: &Call,
        usable: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        let i = (0..members.list().len()).find(|&i| usable(i))?;
        *self.member.lock().expect("member") = Some(Arc::clone(&members.list()[i]));
        if call.request().metadata().get_str(HELD).is_some() {
            let picks = self.picks.load(Ordering::SeqCst);
            if picks >= self.allowed.load(Ordering::SeqCst) {
                return None;
            }
            self.picks.fetch_add(1, Ordering::SeqCst);
        }
        Some(i)
    }
}

/// The live connection `member` holds now, once the server's limit of one call arrived on it.
fn live_connection(member: &Mutex<Option<Arc<Member>>>) -> Option<ClientConnection> {
    let member = member.lock().expect("member").clone()?;
    let channel = member.channel()?;
    channel
        .connections()
        .into_iter()
        .find(|conn| !conn.is_closed() && conn.max_calls() == Some(1))
}

/// A fail-fast call that takes the connection's one place (its end does not matter: its
/// connection is closed under it).
fn blocker(channel: &Balanced) {
    let mut client = GreeterClient::new(channel.clone());
    tokio::spawn(async move {
        let mut request = sockrpc::Request::new(HelloRequest {
            name: "blocker".into(),
        });
        request.set_wait_for_ready(false);
        request.set_timeout(Duration::from_secs(30));
        let _ = client.say_hello(request).await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_connections_close_while_it_waits_for_room_is_picked_again_uncounted() {
    let server = Server::start("127.0.0.1", Duration::ZERO).await;
    let front = Front::start(server.addr).await;
    let allowed = Arc::new(AtomicUsize::new(0));
    let picks = Arc::new(AtomicUsize::new(0));
    let member = Arc::new(Mutex::new(None));
    let channel = BalanceBuilder::default()
        .picker(Gated {
            allowed: Arc::clone(&allowed),
            picks: Arc::clone(&picks),
            member: Arc::clone(&member),
        })
        .wait_for_ready(true)
        .build(discovery::fixed([format!("tcp://{}", front.addr)]).expect("endpoints"));
    channel
        .ready(1, Duration::from_secs(10))
        .await
        .expect("connected");

    let mut client = GreeterClient::new(channel.clone());
    let call = tokio::spawn(async move {
        let mut request = sockrpc::Request::new(HelloRequest { name: "x".into() });
        request
            .metadata_mut()
            .insert_str(HELD, "1")
            .expect("metadata");
        request.set_timeout(Duration::from_secs(60));
        client.say_hello(request).await
    });
    for round in 0..ROUNDS {
        // One limited connection, the member's (the one it lost may be replaced twice: by its
        // pool and by the balanced channel).
        until("one connection, the member's", || {
            front.limited() == 1 && live_connection(&member).is_some()
        })
        .await;
        blocker(&channel);
        let mut conn = None;
        until("the blocker took the connection's place", || {
            conn = live_connection(&member).filter(|conn| conn.in_flight() == 1);
            front.opens() > round && conn.is_some()
        })
        .await;
        let conn = conn.expect("the connection");
        allowed.store(round + 1, Ordering::SeqCst);
        // Or it failed: it says how below.
        until("the call waits for room", || {
            conn.waiting() == 1 || call.is_finished()
        })
        .await;
        if call.is_finished() {
            break;
        }
        if round + 1 == ROUNDS {
            // The next connection is the real server's.
            front.pass.send_replace(true);
        }
        front.cut.notify_one();
        until("the connection closed", || conn.is_closed()).await;
    }
    until("no limited connection left", || {
        front.limited() == 0 || call.is_finished()
    })
    .await;
    allowed.store(usize::MAX, Ordering::SeqCst);
    let reply = tokio::time::timeout(Duration::from_secs(60), call)
        .await
        .expect("the call ended")
        .expect("the call's task")
        .unwrap_or_else(|status| {
            panic!(
                "the call failed, its deadline far: {status:?}; {} picks; {:?}",
                picks.load(Ordering::SeqCst),
                channel.stats()
            )
        });
    let answered: SocketAddr = reply.into_inner().message.parse().expect("an address");
    assert_eq!(answered, server.addr);
    assert_eq!(front.opens(), ROUNDS, "only the blockers reached the front");
    assert_eq!(
        picks.load(Ordering::SeqCst),
        ROUNDS + 1,
        "picked again after each"
    );
    server.shutdown().await;
}
