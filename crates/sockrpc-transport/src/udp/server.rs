//! `UdpServer`: serve a router over UDP, one datagram per call.
//!
//! ```text
//!  recv_from ─▶ header ok? ─no─▶ drop, count malformed
//!               │ a server kind (REPLY, TRUNCATED, COOKIE, PENDING)? ─▶ drop, never answered
//!               │ cookie valid? ─no─▶ rate limit per source ─over─▶ drop
//!               ├─ COOKIE_REQUEST ─▶ COOKIE (header only, never larger than the request)
//!               └─ REQUEST ─▶ cache.begin ─Done──────▶ resend the cached answer
//!                                          ├InProgress─▶ PENDING (the answer leaves when done)
//!                                          └New───────▶ handler, polled once here;
//!                                                       still pending: its own task
//!  (unverified sources' calls draw on one small pool of cache entries and call slots, all told)
//!  answer ─▶ fits max_datagram, and (cookie or ≤ request size)? ─yes─▶ REPLY
//!                                                               └no──▶ TRUNCATED
//! ```
//!
//! Every server datagram carries, in its header, a fresh cookie for its receiver: a client that
//! gets any answer can prove its address from then on, and a client whose cookie went stale is
//! told so (flag `STALE_COOKIE`) together with the new one, with no extra round trip.

use super::answer::{
    is_unicast, one_message, reply_header, settle_handler, ReplyTo, CACHE_FULL, OVER_CACHE_SHARE,
};
use super::bump;
use super::cache::{Begin, CompletionGuard, ReplyCache, Source};
use super::cookie::{CookieJar, LastCookie};
use super::datagram::{
    self, Header, Kind, FLAG_ACKS, FLAG_DONE_BELOW, FLAG_STALE_COOKIE, HEADER_LEN,
};
use super::in_flight::{self, InFlight, Refusal};
use super::limiter::Limiter;
use super::outbox::Outbox;
pub use super::server_config::UdpServerConfig;
pub use super::server_stats::{UdpServerCounters, UdpServerStats};
use super::socket::{BatchSocket, RecvBatch};
use crate::dispatch::{Dispatch, IncomingCall, RequestBody, TransportKind};
use crate::notice::Notice;
use crate::panic::{panicked, poll_caught};
use bytes::Bytes;
use sockrpc_protocol::{Code, ConnInfo, PathCache, Request, Status};
use std::{
    future::Future,
    io,
    net::{IpAddr, SocketAddr},
    panic::AssertUnwindSafe,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};
use tokio::net::UdpSocket;
use tokio::task::JoinSet;

pub(super) struct Shared {
    pub(super) socket: BatchSocket,
    /// The socket's own address, for every call's connection info.
    local: Option<SocketAddr>,
    /// Whether that address is a wildcard: answers then name their source address.
    wildcard: bool,
    pub(super) config: UdpServerConfig,
    cache: Arc<ReplyCache>,
    cookies: CookieJar,
    /// Calls running on tasks of their own, per source (`in_flight.rs`).
    in_flight: Arc<InFlight>,
    pub(super) stats: Arc<UdpServerStats>,
}

/// A UDP server over a bound socket: build it, read [`stats`](UdpServer::stats), then
/// [`serve`](UdpServer::serve).
pub struct UdpServer<S> {
    service: S,
    shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for UdpServer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpServer")
            .field("local_addr", &self.shared.local)
            .finish()
    }
}

/// Serves `service` on `socket` until `shutdown` completes; see [`UdpServer`]. `cache` is the
/// one the TCP server consults for re-issued calls.
pub async fn serve_udp<S>(
    socket: UdpSocket,
    service: S,
    config: UdpServerConfig,
    cache: Arc<ReplyCache>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()>
where
    S: Dispatch,
{
    UdpServer::new(socket, service, config, cache)?
        .serve(shutdown)
        .await
}

/// Datagrams the receive loop reads back to back before it lets the runtime run other tasks
/// (and looks at shutdown): reads that never wait never yield on their own.
const MAX_BURST: usize = 64;

/// Longest answers wait in the outbox for the rest of their batch, counted from the first look
/// after one was queued (every 4 datagrams): far below the client's RTO floor, so slow inline
/// handlers in a large batch cannot hold answers until it fires.
const MAX_HOLD: std::time::Duration = std::time::Duration::from_micros(200);

/// Messages one read may return (each a datagram, or a GRO bundle of several): 32 buffers of
/// 64 KiB, 2 MiB per server, touched only as far as datagrams fill them.
const RECV_SLOTS: usize = 32;

impl<S> UdpServer<S>
where
    S: Dispatch,
{
    /// A server for `service` (the router the TCP server runs) on a bound `socket`. Fails
    /// only if the platform's UDP capabilities cannot be read, or, on a wildcard address, the
    /// socket's options for destination addresses cannot be set.
    pub fn new(
        socket: UdpSocket,
        service: S,
        config: UdpServerConfig,
        cache: Arc<ReplyCache>,
    ) -> io::Result<UdpServer<S>> {
        super::raise_buffer(&socket, config.recv_buffer_size);
        let local = socket.local_addr().ok();
        let wildcard = local.is_some_and(|local| local.ip().is_unspecified());
        Ok(UdpServer {
            service,
            shared: Arc::new(Shared {
                local,
                wildcard,
                socket: if wildcard {
                    BatchSocket::with_destinations(socket)?
                } else {
                    BatchSocket::new(socket)?
                },
                cookies: CookieJar::new(config.cookie_lifetime),
                in_flight: Arc::new(InFlight::new(
                    config.max_in_flight_per_source,
                    config.max_unverified_in_flight,
                )),
                config,
                cache,
                stats: Arc::new(UdpServerStats::default()),
            }),
        })
    }

    /// The live counters (keep the `Arc` to read them while the server runs).
    pub fn stats(&self) -> Arc<UdpServerStats> {
        Arc::clone(&self.shared.stats)
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.shared.socket.get_ref().local_addr()
    }

    /// Serves until `shutdown` completes; then stops reading, lets running calls finish (and
    /// answer) within the grace period, and aborts the rest.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let UdpServer {
            mut service,
            shared,
        } = self;
        let mut limiter = Limiter::new(shared.config.rate_limit);
        let mut last_cookie = LastCookie::default();
        let mut recent = Recent::default();
        let mut tasks = JoinSet::new();
        // Each buffer holds any UDP datagram, so an oversized one is read whole and refused,
        // never cut and misread.
        let mut batch = RecvBatch::new(RECV_SLOTS);
        // The answers to one batch, sent together after it.
        let mut outbox = Outbox::default();
        tokio::pin!(shutdown);
        // What the wait for a datagram polls `shutdown` through: polled again only once it
        // woke this task, not at every wait (a poll of a cancellation token's future takes
        // its locks). Forgotten where `shutdown` is polled directly.
        let mut shutdown_notice = Notice::new();
        // Datagrams read since the last wait; see MAX_BURST.
        let mut burst = 0;
        loop {
            while tasks.try_join_next().is_some() {}
            if burst >= MAX_BURST {
                burst = 0;
                shutdown_notice.forget();
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = tokio::task::yield_now() => {}
                }
            }
            // Read what is there, or wait for it. Shutdown is looked at only when the socket
            // is empty (and between bursts, above): datagrams already there cost no shutdown
            // poll. A read that comes back short clears readiness (`BatchSocket::poll_recv`),
            // so the wait after the last datagram goes to the runtime without another read.
            let mut waited = false;
            let read = std::future::poll_fn(|cx| match shared.socket.poll_recv(cx, &mut batch) {
                Poll::Ready(read) => Poll::Ready(Some(read)),
                Poll::Pending => {
                    waited = true;
                    if !shutdown_notice.needs_poll(cx) {
                        return Poll::Pending;
                    }
                    shutdown_notice.poll(shutdown.as_mut(), cx).map(|()| None)
                }
            })
            .await;
            if waited {
                burst = 0;
            }
            match read {
                None => break,
                Some(Ok(_)) => {}
                Some(Err(err)) => {
                    // Transient (an ICMP error for an earlier send, a signal): keep serving.
                    // Shutdown is looked at here too: a socket whose runtime is gone fails
                    // every read at once.
                    tracing::debug!(error = %err, "udp recv failed");
                    shutdown_notice.forget();
                    tokio::select! {
                        biased;
                        () = &mut shutdown => break,
                        () = tokio::task::yield_now() => {}
                    }
                    continue;
                }
            }
            // The task's waker, for the handlers polled once as their requests are read (their
            // answers go out with the batch); a Context is made for each, since one may not be
            // held across the flushes below.
            let waker = std::future::poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
            for (datagram, src, dst_ip) in batch.datagrams() {
                burst += 1;
                bump(&shared.stats.received);
                // Out of the reused buffer into a piece of a shared chunk (no allocation per
                // datagram: `sockrpc_protocol::codec::arena`); nothing kept past the call holds
                // it (the reply cache keeps its own copy of the path).
                let datagram = sockrpc_protocol::codec::arena::copy(datagram);
                // Answer from the address the request reached, when that is one address (a
                // broadcast or multicast destination is no source: the kernel picks one).
                let from = (src, dst_ip.filter(|ip| shared.wildcard && is_unicast(ip)));
                shared.on_datagram(
                    &mut Context::from_waker(&waker),
                    &mut service,
                    (&mut limiter, &mut last_cookie, &mut recent),
                    (&mut tasks, &mut outbox),
                    datagram,
                    from,
                );
                // A batch can hold thousands of datagrams (GRO bundles on a wildcard server):
                // answers do not wait for all of them, and the loop lets other tasks run.
                if burst % 4 == 0 && outbox.waited() >= MAX_HOLD {
                    outbox.flush(&shared.socket).await;
                }
                if burst % MAX_BURST == 0 {
                    // Shutdown is looked at between batches (above), once this one is done.
                    outbox.flush(&shared.socket).await;
                    tokio::task::yield_now().await;
                }
            }
            outbox.flush(&shared.socket).await;
        }
        let grace = shared.config.grace_period;
        let _ =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        tasks.abort_all();
        Ok(())
    }
}

/// What the receive loop remembers from the datagrams before: the last source's connection
/// record (reused while calls keep coming from it) and the last method paths, checked once.
#[derive(Default)]
struct Recent {
    conn: Option<Arc<ConnInfo>>,
    paths: PathCache,
}

impl Shared {
    /// One datagram: a COOKIE_REQUEST answered, a REQUEST run (`on_request`), the rest
    /// counted and dropped. Synchronous, so that no future is built and moved per datagram.
    fn on_datagram<S>(
        self: &Arc<Self>,
        cx: &mut Context<'_>,
        service: &mut S,
        (limiter, last_cookie, recent): (&mut Limiter, &mut LastCookie, &mut Recent),
        (tasks, outbox): (&mut JoinSet<()>, &mut Outbox),
        datagram: Bytes,
        (src, src_ip): (SocketAddr, Option<IpAddr>),
    ) where
        S: Dispatch,
    {
        let header = match Header::parse(&datagram) {
            Ok(header) => header,
            Err(err) => {
                bump(&self.stats.malformed);
                tracing::trace!(%src, error = %err, "udp datagram dropped");
                return;
            }
        };
        if header.kind.is_from_server() {
            // Answering an answer is how two servers (or a spoofed pair) loop forever.
            bump(&self.stats.ignored_answers);
            return;
        }
        let allowed = match header.kind {
            Kind::Request => FLAG_DONE_BELOW,
            _ => 0,
        };
        if header.flags & !allowed != 0 || src.port() == 0 {
            bump(&self.stats.malformed);
            return;
        }
        let now = Instant::now();
        let (verified, cookie) = self.cookies.verify(last_cookie, src, &header.cookie, now);
        if !verified && !limiter.allow(src.ip(), now) {
            bump(&self.stats.rate_limited);
            return;
        }
        let reply_to = ReplyTo {
            addr: src,
            src_ip,
            size_limit: (!verified).then_some(datagram.len()),
            // Every datagram says this server reads watermarks (FLAG_DONE_BELOW).
            flags: FLAG_ACKS | if verified { 0 } else { FLAG_STALE_COOKIE },
            cookie,
            instance: header.client_instance,
            call_id: header.call_id,
        };
        match header.kind {
            Kind::CookieRequest => {
                let padding_ok = datagram[HEADER_LEN..].iter().all(|&b| b == 0);
                if header.call_id != 0 || !padding_ok {
                    bump(&self.stats.malformed);
                    return;
                }
                // A COOKIE is a bare header and a request at least one: never larger.
                if HEADER_LEN <= datagram.len() {
                    bump(&self.stats.cookies);
                    outbox.push(src, src_ip, |out| {
                        datagram::encode_header_only(out, &reply_header(Kind::Cookie, &reply_to));
                    });
                }
            }
            Kind::Request => {
                self.on_request(
                    service,
                    (cx, tasks, outbox),
                    (datagram, recent),
                    header,
                    reply_to,
                    verified,
                );
            }
            Kind::Reply | Kind::Truncated | Kind::Cookie | Kind::Pending => {}
        }
    }

    /// A REQUEST: refused, answered from the reply cache, or run: polled once here with the
    /// receive loop's waker (`cx`), and moved to a task of its own only if it waits.
    fn on_request<S>(
        self: &Arc<Self>,
        service: &mut S,
        (cx, tasks, outbox): (&mut Context<'_>, &mut JoinSet<()>, &mut Outbox),
        (datagram, recent): (Bytes, &mut Recent),
        header: Header,
        reply_to: ReplyTo,
        verified: bool,
    ) where
        S: Dispatch,
    {
        // Neither is ever 0 from a client (docs/UDP.md): call id 0 is the cookie exchange's.
        if header.call_id == 0 || header.client_instance == 0 {
            bump(&self.stats.malformed);
            return;
        }
        if datagram.len() > self.config.max_datagram {
            // The client's own rule sends only what fits; a larger request is refused unrun.
            bump(&self.stats.oversized);
            let status = Status::resource_exhausted(format!(
                "UDP request of {} bytes exceeds this server's datagram limit of {}",
                datagram.len(),
                self.config.max_datagram
            ));
            self.queue_answer(outbox, &reply_to, &Err(status));
            return;
        }
        let body = match datagram::parse_request_with(
            datagram.slice(HEADER_LEN..),
            header.flags,
            &self.config.limits,
            Some(&mut recent.paths),
        ) {
            Ok(body) => body,
            Err(err) => {
                bump(&self.stats.malformed);
                tracing::trace!(src = %reply_to.addr, error = %err, "udp request dropped");
                return;
            }
        };
        bump(&self.stats.requests);
        let key = (header.client_instance, header.call_id);
        // Only a source that proved its address moves a client's watermark.
        let done_below = body.done_below.filter(|_| verified);
        let cached = self.config.idempotent_methods.is_empty()
            || !self.config.is_idempotent(body.path.as_str());
        if !cached {
            if let Some(below) = done_below {
                self.cache.ack(reply_to.addr.ip(), key.0, below);
            }
        }
        if cached {
            match self.cache.begin(
                Source::new(reply_to.addr.ip(), verified),
                key.0,
                key.1,
                body.path.as_bytes(),
                done_below,
            ) {
                Begin::New => {}
                Begin::Stale => {
                    // A late duplicate of a call the client is done with: never run again.
                    bump(&self.stats.stale);
                    return;
                }
                Begin::OtherSource => {
                    // A call another address made: its answer is that address's alone, and
                    // the call is never run again (a client that moved retransmits in vain,
                    // then its TCP re-issue learns the call is not cached: docs/UDP.md).
                    bump(&self.stats.other_source);
                    return;
                }
                Begin::Foreign => {
                    // Another address owns this client instance: refused unrun (nothing
                    // recorded), so a client that moved carries the call over TCP at once.
                    bump(&self.stats.other_source);
                    self.queue_foreign(outbox, &reply_to);
                    return;
                }
                Begin::OtherMethod => {
                    // Same identity, another method: not a retransmission; never answered
                    // with another call's reply.
                    bump(&self.stats.malformed);
                    return;
                }
                why @ (Begin::Full | Begin::OverShare | Begin::UnverifiedFull) => {
                    // Running it could not be made at-most-once: say so (`queue_not_processed`).
                    let (count, why) = match why {
                        Begin::Full => (&self.stats.cache_full, CACHE_FULL),
                        Begin::OverShare => (&self.stats.over_share, OVER_CACHE_SHARE),
                        _ => (&self.stats.unverified_refused, in_flight::UNVERIFIED_FULL),
                    };
                    bump(count);
                    self.queue_not_processed(outbox, &reply_to, why);
                    return;
                }
                Begin::InProgress => {
                    bump(&self.stats.in_progress_duplicates);
                    // A bare header, never larger than the request that caused it.
                    outbox.push(reply_to.addr, reply_to.src_ip, |out| {
                        datagram::encode_header_only(out, &reply_header(Kind::Pending, &reply_to));
                    });
                    return;
                }
                Begin::Done(answer) => {
                    bump(&self.stats.resent);
                    self.queue_answer(outbox, &reply_to, &answer);
                    return;
                }
            }
        }
        // An unverified source's calls count in the pool all such sources share (`in_flight.rs`).
        let source = verified.then_some(reply_to.addr.ip());
        let max = self.config.max_in_flight;
        if let Some(refusal) = self.in_flight.refusal(tasks.len(), source, max) {
            if cached {
                self.cache.abandon(key.0, key.1);
            }
            // Refused, not dropped: its client may carry it over TCP at once (not retransmit).
            let (counter, why) = match refusal {
                Refusal::Share => (&self.stats.over_in_flight_share, in_flight::REFUSED),
                Refusal::Unverified => (&self.stats.unverified_refused, in_flight::UNVERIFIED_FULL),
                Refusal::Full => (&self.stats.overloaded, in_flight::FULL),
            };
            bump(counter);
            self.queue_not_processed(outbox, &reply_to, why);
            return;
        }
        bump(&self.stats.executed);
        let guard = CompletionGuard {
            cache: Arc::clone(&self.cache),
            key: cached.then_some(key),
        };
        let timeout = crate::server::config::cap_timeout(body.timeout, self.config.timeout);
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut request =
            Request::from_parts(body.metadata, RequestBody::Once(body.message), timeout);
        // Made only for a call that runs (not for a duplicate answered from the cache).
        request.set_shared_conn_info(Some(self.conn_info(&mut recent.conn, reply_to.addr)));
        let call = IncomingCall {
            path: body.path,
            request,
            transport: TransportKind::Udp,
            replay: None,
            call_id: reply_to.call_id,
        };
        let mut future = match std::panic::catch_unwind(AssertUnwindSafe(|| service.dispatch(call)))
        {
            Ok(future) => future,
            Err(_) => Box::pin(std::future::ready(Err(self.panicked()))),
        };
        // Poll once here, as the TCP connection does: most handlers answer without waiting,
        // and then the answer leaves with no task hop, no timer and no box of ours. A panic
        // fails this call, not the server.
        match poll_caught(future.as_mut(), cx) {
            Poll::Ready(routed) => {
                let (answer, future) = match routed {
                    Ok(routed) => (one_message(routed), Some(future)),
                    Err(_) => {
                        let status = self.panicked();
                        // As ended `INTERNAL`, not cancelled (`ending.rs`).
                        crate::ending::drop_as(Code::Internal, future);
                        (Err(status), None)
                    }
                };
                // Encoded into the outbox (sent at its flush, after this), then kept: the cache
                // takes the answer itself, not a copy. The handler's future goes once its answer
                // is checked: as ended with the code the client gets if it was refused.
                let encoded = self.queue_answer(outbox, &reply_to, &answer);
                let held = settle_handler(future, encoded, &answer);
                guard.complete(answer, held);
            }
            Poll::Pending => {
                let shared = Arc::clone(self);
                // Counted against its source's share until the task ends, however it ends.
                let slot = self.in_flight.take(source);
                tasks.spawn(async move {
                    let _slot = slot;
                    // Within the deadline; a panic later on, in this task, fails the call the
                    // same way.
                    // A panic or the deadline drops the handler's future as ended with what
                    // the client is told (`ending.rs`), not as cancelled.
                    let caught = std::future::poll_fn(|cx| poll_caught(future.as_mut(), cx));
                    let polled = match deadline {
                        None => Some(caught.await),
                        Some(deadline) => tokio::time::timeout_at(deadline, caught).await.ok(),
                    };
                    let (answer, future) = match polled {
                        Some(Ok(routed)) => (one_message(routed), Some(future)),
                        Some(Err(_)) => {
                            let status = shared.panicked();
                            crate::ending::drop_as(Code::Internal, future);
                            (Err(status), None)
                        }
                        None => {
                            crate::ending::drop_as(Code::DeadlineExceeded, future);
                            let status =
                                Status::deadline_exceeded("deadline exceeded on the server");
                            (Err(status), None)
                        }
                    };
                    let (out, encoded) = shared.encode_alone(&reply_to, &answer);
                    // Dropped once its answer is checked and before it leaves: the layers that
                    // finish a call when its future goes (a one-message answer on a server)
                    // record it before the client can see the answer, with the code the client
                    // gets (`ending.rs`).
                    let held = settle_handler(future, encoded, &answer);
                    guard.complete(answer, held);
                    shared.send_encoded(&reply_to, out).await;
                });
            }
        }
    }

    /// The connection info of a call from `src`: the last one made, while calls keep coming
    /// from the same source (a client's socket), so a call costs a reference count.
    fn conn_info(&self, last: &mut Option<Arc<ConnInfo>>, src: SocketAddr) -> Arc<ConnInfo> {
        match last {
            Some(conn) if conn.peer == Some(src) => Arc::clone(conn),
            _ => {
                let conn = Arc::new(ConnInfo::new(TransportKind::Udp, Some(src), self.local));
                *last = Some(Arc::clone(&conn));
                conn
            }
        }
    }

    fn panicked(&self) -> Status {
        bump(&self.stats.panics);
        panicked()
    }
}
