//! The accept loop: one task per connection, a cap on how many, graceful shutdown.
//!
//! ```text
//!  loop ─▶ accept ─▶ permit free? ─yes─▶ spawn Connection (holds the permit until it ends)
//!            │                    └no──▶ one in its handshake, old enough? ─yes─▶ evict the
//!            │                           oldest (GOAWAY), its permit (≤ 100 ms) to this one
//!            │                                  └no──▶ refusal slot free? ─yes─▶ PREFACE +
//!            │                                         GOAWAY (RESOURCE_EXHAUSTED), close
//!            │                                                       └no──▶ close at once
//!            └ EMFILE / ENFILE / ENOMEM ─▶ log, pause 50 ms, keep listening
//!  signal ─▶ stop accepting, GOAWAY on every connection, wait ≤ grace period, abort the rest
//! ```
//!
//! A connection that has not finished its handshake (TLS, then the preface) is in the server's
//! [`Handshakes`] until it does; at the cap the oldest of those is evicted for a newcomer, so
//! stalled handshakes cannot keep real clients out (`handshakes.rs` says why and how; `evict.rs`
//! how the evicted one is told and its slot waited for, never past the shutdown signal).
//!
//! Telling a refused client why takes a task and its socket for up to [`REFUSAL_LINGER`], so at
//! most [`PLAIN_REFUSALS`] (and [`TLS_REFUSALS`] with TLS) are told at once: a flood of
//! connections past the cap costs a bounded number of tasks and descriptors, whatever its
//! size. Connections evicted at the cap linger on the same [`PLAIN_REFUSALS`] slots
//! (`linger.rs`). Its warnings (a client refused, an accept failed) go through the server's WARN
//! budget (`log_limit.rs`), as the connections' own do: one per kind every 10 s, the rest at
//! DEBUG.
//!
//! With TLS the listener hands over each stream whole ([`Accept::accept_io`]); the TLS
//! handshake runs on the connection's own task, bounded by the handshake timeout, so a slow or
//! silent client never holds up the accept loop. The stream is split only once the session is
//! up. At the connection cap a TLS client gets its GOAWAY after a handshake, on a task of its
//! own (see [`refuse_tls`]).

pub use super::accepted::{Accepted, AcceptedIo, BoxIo, Io};
use super::conn::{ConnConfig, Connection};
use super::evict::{make_room, Room};
use super::handshakes::{Handshakes, Ticket};
use super::ServerConfig;
use crate::dispatch::{Dispatch, TransportKind};
use crate::log_limit::{warn_limited, Kind};
use crate::socket::SocketConfig;
use crate::udp::ReplyCache;
use crate::UnixIo;
use bytes::BytesMut;
use sockrpc_protocol::frame::{self, PREFACE};
use sockrpc_protocol::Code;
use std::{future::Future, io, net::SocketAddr, sync::Arc, time::Duration};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::task::{AbortHandle, JoinSet};
use tokio_util::sync::CancellationToken;

/// A listener the accept loop can serve: TCP or Unix.
pub trait Accept: Send {
    /// Accepts one connection and applies `socket`'s options to it.
    fn accept(&self, socket: &SocketConfig) -> impl Future<Output = io::Result<Accepted>> + Send;

    /// Accepts one connection whole, for TLS to wrap before it is split. The default joins the
    /// halves [`accept`](Accept::accept) gives; TCP and Unix listeners hand over the socket
    /// itself.
    fn accept_io(
        &self,
        socket: &SocketConfig,
    ) -> impl Future<Output = io::Result<AcceptedIo>> + Send {
        let accepted = self.accept(socket);
        async move {
            let accepted = accepted.await?;
            Ok(AcceptedIo {
                io: Box::new(tokio::io::join(accepted.reader, accepted.writer)),
                peer: accepted.peer,
                local: accepted.local,
                transport: accepted.transport,
                peer_cred: accepted.peer_cred,
            })
        }
    }

    /// Whether no connection will come any more: asked after an accept fails. A stream of
    /// connections that ended (tonic's `serve_with_incoming`) says so, and the loop then stops
    /// accepting and serves the connections it has until they end (or the signal). A socket
    /// listener never ends: `false`.
    fn is_exhausted(&self) -> bool {
        false
    }
}

impl Accept for TcpListener {
    async fn accept(&self, socket: &SocketConfig) -> io::Result<Accepted> {
        let (stream, peer) = TcpListener::accept(self).await?;
        if let Err(err) = socket.apply_accepted(&stream) {
            tracing::debug!(%peer, error = %err, "could not set socket options");
        }
        Ok(Accepted::tcp_from(stream, Some(peer)))
    }

    async fn accept_io(&self, socket: &SocketConfig) -> io::Result<AcceptedIo> {
        let (stream, peer) = TcpListener::accept(self).await?;
        if let Err(err) = socket.apply_accepted(&stream) {
            tracing::debug!(%peer, error = %err, "could not set socket options");
        }
        let local = stream.local_addr().ok();
        Ok(AcceptedIo {
            io: Box::new(stream),
            peer: Some(peer),
            local,
            transport: TransportKind::Tcp,
            peer_cred: None,
        })
    }
}

impl Accept for UnixListener {
    async fn accept(&self, _socket: &SocketConfig) -> io::Result<Accepted> {
        let (stream, _) = UnixListener::accept(self).await?;
        Accepted::unix(stream)
    }

    async fn accept_io(&self, _socket: &SocketConfig) -> io::Result<AcceptedIo> {
        let (stream, _) = UnixListener::accept(self).await?;
        let peer_cred = stream.peer_cred().ok();
        Ok(AcceptedIo {
            io: Box::new(UnixIo::from_tokio(stream)?),
            peer: None,
            local: None,
            transport: TransportKind::Unix,
            peer_cred,
        })
    }
}

/// A connection the accept loop took: split already, or whole for TLS.
enum Incoming {
    Plain(Accepted),
    Whole(AcceptedIo),
}

impl Incoming {
    fn peer(&self) -> Option<SocketAddr> {
        match self {
            Incoming::Plain(accepted) => accepted.peer,
            Incoming::Whole(accepted) => accepted.peer,
        }
    }
}

/// Whether `config` asks for TLS.
fn tls_on(config: &ServerConfig) -> bool {
    #[cfg(feature = "tls")]
    {
        config.tls.is_some()
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = config;
        false
    }
}

/// Runs the TLS handshake of a connection taken whole, on its own task, within `timeout`
/// (and gives up at once when the server shuts down). `None`: the connection is closed; why
/// is logged.
#[cfg(feature = "tls")]
async fn handshake(
    tls: &crate::tls::ServerTls,
    limit: &crate::log_limit::LogLimit,
    incoming: AcceptedIo,
    timeout: Duration,
    shutdown: &CancellationToken,
) -> Option<Accepted> {
    let AcceptedIo {
        io,
        peer,
        local,
        transport,
        peer_cred,
    } = incoming;
    let attempt = tokio::time::timeout(timeout, crate::tls::server::accept(tls, limit, io, peer));
    let done = tokio::select! {
        done = attempt => done,
        () = shutdown.cancelled() => return None,
    };
    match done {
        Err(_) => {
            crate::tls::refusals::log(
                limit,
                crate::tls::refusals::Refusal::Timeout,
                peer,
                &format!("the client did not finish its handshake within {timeout:?}"),
            );
            None
        }
        Ok(None) => None,
        Ok(Some(session)) => {
            let (reader, writer) = crate::tls::split::split(session.stream);
            Some(Accepted {
                reader: Box::pin(reader),
                writer: Box::pin(writer),
                peer,
                local,
                transport,
                tls: Some(session.peer),
                peer_cred,
            })
        }
    }
}

/// A connection's place in the server: its permit under the cap, held until it ends, and its
/// ticket among the connections still in their handshake, held until its preface is read.
struct Slot {
    permit: tokio::sync::OwnedSemaphorePermit,
    ticket: Ticket,
}

/// Starts the task of one connection (after its TLS handshake, when it has one), in `slot`.
/// The handle returned ends the task if it is evicted while still in its handshake.
fn spawn_connection<D: Dispatch>(
    conns: &mut JoinSet<()>,
    incoming: Incoming,
    dispatch: D,
    config: &ServerConfig,
    conn_config: &Arc<ConnConfig>,
    shutdown: CancellationToken,
    slot: Slot,
) -> Option<AbortHandle> {
    let conn_config = Arc::clone(conn_config);
    let Slot { permit, ticket } = slot;
    match incoming {
        Incoming::Plain(accepted) => {
            let conn = Connection::new(dispatch, accepted, conn_config, shutdown).awaiting(ticket);
            Some(conns.spawn(async move {
                conn.await;
                drop(permit);
            }))
        }
        #[cfg(feature = "tls")]
        Incoming::Whole(whole) => {
            let tls = config.tls.clone()?;
            let timeout = config.handshake_timeout;
            let evicted = ticket.evict_token();
            Some(conns.spawn(async move {
                let limit = &conn_config.log_limit;
                let shaken = tokio::select! {
                    shaken = handshake(&tls, limit, whole, timeout, &shutdown) => shaken,
                    // Evicted before its session is up: no GOAWAY can reach it; just close.
                    () = evicted.cancelled() => None,
                };
                if let Some(accepted) = shaken {
                    Connection::new(dispatch, accepted, conn_config, shutdown)
                        .awaiting(ticket)
                        .await;
                }
                drop(permit);
            }))
        }
        #[cfg(not(feature = "tls"))]
        Incoming::Whole(_) => {
            let _ = (config, permit, ticket);
            None
        }
    }
}

/// Serves `dispatch` on every connection `listener` accepts until `signal` completes; then
/// stops accepting, sends GOAWAY on every connection, lets in-flight calls finish within the
/// grace period, and returns. A listener that runs out of connections
/// ([`Accept::is_exhausted`]) is served until the connections it gave end, then this returns
/// (or, should `signal` come first, shuts down as above). `reply_cache` is the UDP side's,
/// when the server also serves UDP: TCP re-issues of truncated UDP calls are answered from it.
pub async fn serve<A, D>(
    listener: A,
    dispatch: D,
    config: ServerConfig,
    reply_cache: Option<Arc<ReplyCache>>,
    signal: impl Future<Output = ()>,
) -> io::Result<()>
where
    A: Accept,
    D: Dispatch,
{
    let shutdown = CancellationToken::new();
    let mut conns = JoinSet::new();
    let conn_config = Arc::new(ConnConfig::new(&config, reply_cache));
    let permits = Arc::new(tokio::sync::Semaphore::new(config.max_connections));
    let tls = tls_on(&config);
    let handshakes = Handshakes::default();
    // Shared with the connections evicted at the cap, which linger off their task too
    // (`linger.rs`).
    let refusals = Arc::clone(&conn_config.lingering);
    let tls_refusals = Arc::new(tokio::sync::Semaphore::new(TLS_REFUSALS));
    tokio::pin!(signal);
    let mut exhausted = false;
    loop {
        let accepted = tokio::select! {
            () = &mut signal => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            accepted = listener.accept(&config.socket), if !tls => accepted.map(Incoming::Plain),
            accepted = listener.accept_io(&config.socket), if tls => accepted.map(Incoming::Whole),
        };
        let accepted = match accepted {
            Ok(accepted) => accepted,
            Err(_) if listener.is_exhausted() => {
                exhausted = true;
                break;
            }
            Err(err) => {
                warn_limited!(config.log_limit, Kind::AcceptFailed, { error = %err, },
                    "accept failed; still listening");
                if is_resource_exhaustion(&err) {
                    // Out of descriptors or memory: give in-flight work a moment to free some
                    // instead of spinning on the same error.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                continue;
            }
        };
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => match make_room(&handshakes, &permits, &config, &mut signal).await {
                Room::Made(permit) => Some(permit),
                Room::Full => None,
                Room::Stopping => break,
            },
        };
        let Some(permit) = permit else {
            warn_limited!(
                config.log_limit,
                Kind::ConnectionLimit,
                { peer = ?accepted.peer(), limit = config.max_connections, },
                "refusing connection: at the connection limit"
            );
            match accepted {
                Incoming::Plain(accepted) => refuse_plain(&refusals, accepted),
                Incoming::Whole(accepted) => refuse_tls(&config, &tls_refusals, accepted),
            }
            continue;
        };
        let ticket = handshakes.admit(accepted.peer());
        let key = ticket.key();
        if let Some(task) = spawn_connection(
            &mut conns,
            accepted,
            dispatch.clone(),
            &config,
            &conn_config,
            shutdown.child_token(),
            Slot { permit, ticket },
        ) {
            handshakes.arm(key, task);
        }
    }
    drop(listener);
    if exhausted && !served_to_their_end(&mut conns, &mut signal).await {
        return Ok(());
    }
    shutdown.cancel();
    let drained = tokio::time::timeout(config.grace_period, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            remaining = conns.len(),
            "grace period over; closing connections"
        );
        conns.shutdown().await;
    }
    Ok(())
}

/// Serves the connections of a listener that gave its last until they all end (`false`), or
/// until `signal` comes (`true`: then they are shut down as the signal asks).
async fn served_to_their_end(
    conns: &mut JoinSet<()>,
    signal: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) -> bool {
    loop {
        tokio::select! {
            () = signal.as_mut() => return true,
            joined = conns.join_next() => if joined.is_none() {
                return false;
            },
        }
    }
}

/// Refuses a plain client past the connection cap: told why by [`refuse`], on a task of its
/// own, while one of [`PLAIN_REFUSALS`] slots is free; past those the socket is closed at once,
/// without a word (its client sees the connection end before the server's preface, and fails
/// `UNAVAILABLE`).
fn refuse_plain(refusals: &Arc<tokio::sync::Semaphore>, accepted: Accepted) {
    let Ok(slot) = Arc::clone(refusals).try_acquire_owned() else {
        // Dropped here: closed.
        return;
    };
    tokio::spawn(async move {
        refuse(accepted).await;
        drop(slot);
    });
}

/// Plain clients past the connection cap told why at once. Each [`refuse`] holds a task and the
/// socket until the client closes (a sockrpc client does as soon as it reads the GOAWAY: one
/// round trip), at most [`REFUSAL_LINGER`]; without a bound, a flood of connections past the cap
/// would hold one task and one descriptor each for that long. 64 tell every client that comes
/// past the cap at any ordinary rate, and together with [`TLS_REFUSALS`] stay well inside the
/// 256 descriptors `sockrpc serve` keeps free above its cap. Connections evicted at the cap
/// linger on the same slots (`linger.rs`): together they stay within this bound.
pub(super) const PLAIN_REFUSALS: usize = super::linger::LINGERING;

/// Refuses a TLS client past the connection cap the way [`refuse`] refuses a plain one: the
/// GOAWAY can only travel inside a TLS session, so the handshake runs first, on a task of its
/// own, within the handshake timeout. Handshakes cost CPU, so at most [`TLS_REFUSALS`] run at
/// once; a client past those is closed without a word (its connect then fails `UNAVAILABLE`).
fn refuse_tls(config: &ServerConfig, refusals: &Arc<tokio::sync::Semaphore>, whole: AcceptedIo) {
    #[cfg(feature = "tls")]
    {
        let (Some(tls), Ok(slot)) = (config.tls.clone(), Arc::clone(refusals).try_acquire_owned())
        else {
            return;
        };
        let timeout = config.handshake_timeout.min(REFUSAL_LINGER);
        let log_limit = Arc::clone(&config.log_limit);
        tokio::spawn(async move {
            let limit = &log_limit;
            let token = CancellationToken::new();
            if let Some(accepted) = handshake(&tls, limit, whole, timeout, &token).await {
                refuse(accepted).await;
            }
            drop(slot);
        });
    }
    #[cfg(not(feature = "tls"))]
    let _ = (config, refusals, whole);
}

/// TLS handshakes run at once to refuse clients past the connection cap with a GOAWAY.
const TLS_REFUSALS: usize = 16;

/// Tells a client past the connection cap why it is refused: PREFACE and GOAWAY, then an
/// orderly close. Closing at once would reset the connection while the client's own preface
/// and first call are still unread, and a reset can destroy the GOAWAY before the client reads
/// it; so the write side is shut (FIN) and what the client sends is read and dropped until it
/// closes too, for at most [`REFUSAL_LINGER`] and [`REFUSAL_DRAIN`] bytes. The caller spawns it
/// on a task that holds no connection permit but one of [`PLAIN_REFUSALS`] (or
/// [`TLS_REFUSALS`]): a flood of refused clients costs a bounded number of small tasks.
async fn refuse(accepted: Accepted) {
    let Accepted {
        mut reader,
        mut writer,
        ..
    } = accepted;
    let mut buf = BytesMut::with_capacity(64);
    buf.extend_from_slice(&PREFACE);
    frame::encode_goaway(
        &mut buf,
        0,
        Code::ResourceExhausted,
        "server is at its connection limit",
    );
    let _ = tokio::time::timeout(REFUSAL_LINGER, async {
        writer.write_all(&buf).await?;
        writer.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut drained = 0;
        while drained < REFUSAL_DRAIN {
            match reader.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        io::Result::Ok(())
    })
    .await;
}

/// How long a refused connection is kept to deliver its GOAWAY (as an evicted one).
const REFUSAL_LINGER: Duration = super::linger::HANDED_OFF_LINGER;

/// Bytes read (and dropped) from a refused client while its GOAWAY is delivered.
const REFUSAL_DRAIN: usize = super::linger::HANDED_OFF_DRAIN;

/// Serves one already-connected stream (a Unix socket, an in-memory duplex) until it closes;
/// with `config.tls`, after a TLS handshake on it.
pub async fn serve_connection<T, D>(
    io: T,
    peer: Option<SocketAddr>,
    dispatch: D,
    config: ServerConfig,
) where
    T: AsyncRead + AsyncWrite + Send + Sync + 'static,
    D: Dispatch,
{
    #[cfg(feature = "tls")]
    if let Some(tls) = &config.tls {
        let whole = AcceptedIo {
            io: Box::new(Box::pin(io)),
            peer,
            local: None,
            transport: TransportKind::Other,
            peer_cred: None,
        };
        let token = CancellationToken::new();
        let limit = &config.log_limit;
        let timeout = config.handshake_timeout;
        if let Some(accepted) = handshake(tls, limit, whole, timeout, &token).await {
            let conn_config = Arc::new(ConnConfig::new(&config, None));
            Connection::new(dispatch, accepted, conn_config, token).await;
        }
        return;
    }
    let (reader, writer) = tokio::io::split(io);
    let accepted = Accepted {
        reader: Box::pin(reader),
        writer: Box::pin(writer),
        peer,
        local: None,
        transport: TransportKind::Other,
        tls: None,
        peer_cred: None,
    };
    let config = Arc::new(ConnConfig::new(&config, None));
    Connection::new(dispatch, accepted, config, CancellationToken::new()).await;
}

fn is_resource_exhaustion(err: &io::Error) -> bool {
    // EMFILE, ENFILE, ENOBUFS, ENOMEM on Linux.
    matches!(err.raw_os_error(), Some(24 | 23 | 105 | 12))
}
