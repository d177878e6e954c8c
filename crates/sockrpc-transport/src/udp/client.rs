//! `UdpClient`: unary calls in single datagrams, with retransmission and a way out to TCP.
//!
//! ```text
//!  call ─▶ fits a datagram? not in fallback? ─no─▶ NotSuitable (nothing was sent)
//!        ─▶ have a cookie? ─no─▶ COOKIE_REQUEST ⟲ (losses here can still end in NotSuitable)
//!        ─▶ REQUEST(call id) ─▶ wait rto·2ⁿ·jitter ─timeout─▶ same datagram again ⟲
//!                                  │ PENDING: still running, keep waiting (not a loss)
//!                                  │ REPLY ─────────────────▶ Reply(answer)
//!                                  │ TRUNCATED (fits, new cookie) ─▶ once more, with the cookie
//!                                  └ TRUNCATED ─────────────▶ Truncated{instance, call_id}
//!  one caller at a time reads the socket for all (`inbox.rs`): datagram ─▶ pending[call id]
//!  (late duplicates: counted, dropped)
//! ```
//!
//! Once a REQUEST has left, the call never answers `NotSuitable`: the server may have run it, so
//! the caller must not run it again over TCP. It ends with the answer, `Truncated` (re-issue
//! *with* the identity, which the server answers from its cache), or an error status.

use super::client_config::UdpClientConfig;
use super::coalesce::Coalescer;
use super::datagram::{self, Cookie, Header, Kind, COOKIE_LEN};
use super::inbox::{Incoming, Waited};
use super::outstanding::{Outstanding, ReissueHold};
use super::rtt::{RttBounds, RttEstimator};
use super::slots::Slots;
use super::socket::{BatchSocket, RecvBatch};
use super::{bump, counters, jitter_u64};
use bytes::{Bytes, BytesMut};
use sockrpc_protocol::{MethodPath, Request, Response, Status};
use std::{
    io,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::atomic::{AtomicBool, AtomicU32, Ordering},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::Instant;

/// How a UDP call ended, for the caller to act on.
#[derive(Debug)]
pub enum UdpOutcome {
    /// The server's answer — or the client's own verdict: `DeadlineExceeded` when the deadline
    /// passed with no answer, `Unavailable` when the retransmit window ran out. A call the
    /// server refused unrun (its reply cache full: REPLY's `FLAG_NOT_PROCESSED`) ends with a
    /// status for which [`Status::is_not_processed`] holds: send it again, over TCP as a new
    /// call, as a channel does.
    Reply(Result<Response<Bytes>, Status>),
    /// The answer did not fit a datagram. The server ran the call and keeps the answer: re-issue
    /// over TCP, within the same deadline, with
    /// [`ClientConnection::reissue`](crate::ClientConnection::reissue)`(path, request, (instance,
    /// call_id))` (OPEN's `FLAG_REISSUE`) so the server answers from its cache instead of running
    /// it again.
    Truncated {
        /// This client's instance.
        instance: u64,
        /// The call's id.
        call_id: u32,
        /// Keep it until the re-issue is over: until then this client's watermark stays below
        /// the call, so the server keeps its answer.
        hold: ReissueHold,
    },
    /// Nothing was sent: the request does not fit a datagram, the endpoint is in TCP fallback
    /// after repeated loss, or `max_window` calls started since the oldest still unanswered.
    /// Send the call over TCP as a new call.
    NotSuitable,
}

counters! {
    /// What a UDP client has done, at one moment.
    snapshot UdpClientStats;
    /// A UDP client's live counters.
    pub(crate) live ClientCounters;
    {
        /// Calls sent over UDP (first transmissions).
        calls,
        /// Answers received (REPLY).
        replies,
        /// Retransmissions of REQUESTs and COOKIE_REQUESTs.
        retransmits,
        /// Calls that ended `Truncated`.
        truncations,
        /// Times the endpoint went into TCP fallback.
        fallbacks,
        /// Calls answered `NotSuitable`.
        not_suitable,
        /// Calls the server refused unrun (`Status::is_not_processed`): its reply cache full,
        /// say, or another address owning this client's instance.
        refused,
        /// Of those `NotSuitable`, the calls refused because `max_window` calls had started
        /// since the oldest unanswered one.
        window_full,
        /// Retransmissions sent before their RTO: once half the window is used, calls started
        /// a reordering window (a quarter of the RTT, at least 4 ms) before one that got its
        /// answer (RACK, RFC 8985), or the oldest call when the window was full.
        hurried,
        /// Calls that ended `DeadlineExceeded` with no answer.
        deadline_exceeded,
        /// Datagrams dropped as malformed (or not for this client).
        malformed,
        /// Answers for calls no longer waiting (duplicates, late answers), dropped.
        duplicates,
        /// COOKIE_REQUESTs sent.
        cookie_requests,
        /// Times the server said the cookie was stale and sent a new one.
        cookie_refreshes,
        /// Fresh instances drawn because another address owned this one (`client/instance.rs`).
        redraws,
    }
}

/// What every clone of one client shares; its receive path is `inbox.rs`.
pub(super) struct Shared {
    pub(super) socket: Arc<BatchSocket>,
    /// The server's address (the socket is connected to it), for coalesced sends; `None`
    /// where sends are not coalesced (no GSO).
    server: Option<SocketAddr>,
    /// Requests of calls that send together, on their way out together (`coalesce.rs`).
    coalescer: Arc<Coalescer>,
    /// The instance new calls use, and those retired that calls in flight still use.
    pub(super) instances: Instances,
    pub(super) config: UdpClientConfig,
    /// Calls this client may still send, for the watermark (`outstanding.rs`).
    pub(super) outstanding: Arc<Outstanding>,
    /// The server reads watermarks (its datagrams carry `FLAG_ACKS`).
    pub(super) acks: AtomicBool,
    /// One answer slot per call in flight, where the reader leaves its answer (`slots.rs`).
    pub(super) pending: Mutex<Slots>,
    /// The read buffer; whoever holds it reads the socket for every waiting call.
    pub(super) reader: tokio::sync::Mutex<RecvBatch>,
    pub(super) cookie: watch::Sender<Option<Cookie>>,
    /// One cookie exchange at a time; the others wait for its result.
    pub(super) cookie_exchange: tokio::sync::Mutex<()>,
    pub(super) rtt: Mutex<RttEstimator>,
    /// The jitter of every first transmission's timeout, drawn once per client: drawn per call,
    /// a timeout often fell sooner than the previous call's, and tokio's timer driver then wakes
    /// its own thread (an eventfd write, a wait that returns at once). Retransmissions draw each.
    first_jitter: u64,
    pub(super) losses: AtomicU32,
    /// When the last counted loss happened: timeouts that fire together (many calls in flight
    /// through one stall of the network or of this host's scheduler) are one loss event, not many.
    pub(super) last_loss: Mutex<Option<Instant>>,
    pub(super) fallback_until: Mutex<Option<Instant>>,
    /// Whether `fallback_until` may be set: every call asks, and nearly always the answer is
    /// no, read without the lock (two locked instructions) or a clock read.
    pub(super) falling_back: AtomicBool,
    /// The client's runtime shut down (`client/runtime_gone.rs`); `falling_back` is set too.
    pub(super) gone: AtomicBool,
    /// Dropped with the client: ends the watcher of its runtime.
    alive: watch::Sender<()>,
    pub(super) stats: ClientCounters,
    /// The runtime the client was made in (its socket's reactor), where its coalescer's flush
    /// task runs; `None` when made outside any.
    runtime: Option<tokio::runtime::Handle>,
}

/// A UDP client for one server address; clones share the socket, the RTT estimate and the
/// cookie. There is no receive task: the callers waiting for answers read the socket, one at a
/// time, for each other (`inbox.rs`).
///
/// Its socket is registered with the reactor of the runtime it was made on: once that runtime
/// has shut down, answers can no longer be read; its calls in flight then end `Unavailable`,
/// and new calls answer [`UdpOutcome::NotSuitable`] (nothing sent). Make one per runtime, as a
/// channel does.
#[derive(Clone)]
pub struct UdpClient {
    inner: Arc<Inner>,
}

/// What the clones of a client share.
struct Inner {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for UdpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpClient")
            .field("peer", &self.inner.shared.socket.get_ref().peer_addr().ok())
            .field(
                "instance",
                &format_args!("{:016x}", self.inner.shared.instances.current()),
            )
            .finish()
    }
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Removes a call from the pending table however its future ends (answer, error, dropped),
/// and ends it as outstanding unless a [`ReissueHold`] took it over. Holds the call's request
/// datagram, whose buffer goes back to the table for the next call.
struct PendingGuard<'a> {
    shared: &'a Shared,
    call_id: u32,
    seq: Option<u64>,
    out: BytesMut,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The coalescer's task sends what is queued, then ends (and lets the socket go).
        self.coalescer.close();
        timer::client_dropped(self);
    }
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        let out = std::mem::take(&mut self.out);
        let untaken = lock(&self.shared.pending).close(self.call_id, out);
        if untaken {
            bump(&self.shared.stats.duplicates);
        }
        if let Some(seq) = self.seq.take() {
            self.shared.outstanding.finish(seq);
        }
    }
}

impl UdpClient {
    /// Binds an ephemeral port of `server`'s family and connects it to `server` (so the kernel
    /// drops datagrams from anyone else).
    pub async fn connect(server: SocketAddr, config: UdpClientConfig) -> io::Result<UdpClient> {
        let local: SocketAddr = if server.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local).await?;
        socket.connect(server).await?;
        UdpClient::from_socket(socket, config)
    }

    /// A client over a socket already connected to the server (socket options set by hand, but
    /// for a receive buffer smaller than [`UdpClientConfig::recv_buffer_size`], raised to it).
    /// Fails only if the socket has no local address or the platform's UDP capabilities cannot
    /// be read (a scratch socket is bound for that).
    pub fn from_socket(socket: UdpSocket, config: UdpClientConfig) -> io::Result<UdpClient> {
        let rtt = RttEstimator::new(RttBounds {
            initial: config.initial_rto,
            min: config.min_rto,
            max: config.max_rto,
        });
        super::raise_buffer(&socket, config.recv_buffer_size);
        let batch_socket = BatchSocket::new(socket)?;
        let shared = Arc::new(Shared {
            // Coalescing pays only where requests can leave in one segmented send (GSO), and
            // is built for Linux's: elsewhere a send naming an address on a connected socket
            // may be refused, and segment counts differ.
            server: batch_socket
                .get_ref()
                .peer_addr()
                .ok()
                .filter(|_| cfg!(target_os = "linux") && batch_socket.max_segments() > 1),
            coalescer: Arc::default(),
            socket: Arc::new(batch_socket),
            instances: Instances::new(),
            config,
            outstanding: Arc::new(Outstanding::default()),
            acks: AtomicBool::new(false),
            pending: Mutex::new(Slots::default()),
            reader: tokio::sync::Mutex::new(RecvBatch::new(2)),
            cookie: watch::channel(None).0,
            cookie_exchange: tokio::sync::Mutex::new(()),
            rtt: Mutex::new(rtt),
            first_jitter: jitter_u64(),
            losses: AtomicU32::new(0),
            last_loss: Mutex::new(None),
            fallback_until: Mutex::new(None),
            falling_back: AtomicBool::new(false),
            gone: AtomicBool::new(false),
            alive: watch::Sender::new(()),
            stats: ClientCounters::default(),
            runtime: tokio::runtime::Handle::try_current().ok(),
        });
        let alive = shared.alive.subscribe();
        runtime_gone::watch(&shared, shared.runtime.as_ref(), alive);
        Ok(UdpClient {
            inner: Arc::new(Inner { shared }),
        })
    }

    /// Takes the reader's place, as a reader that never gets to run would: until the guard is
    /// dropped only callers' catch-ups read.
    #[cfg(test)]
    pub(super) async fn stall_reader(&self) -> tokio::sync::MutexGuard<'_, RecvBatch> {
        self.inner.shared.reader.lock().await
    }

    /// This client's random instance, which with a call id names a call to the server. New
    /// calls take the one current as they start: it changes when the server refuses a call
    /// because another address owns it (`client/instance.rs`).
    pub fn instance(&self) -> u64 {
        self.inner.shared.instances.current()
    }

    /// The local address of the socket.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.shared.socket.get_ref().local_addr()
    }

    /// The counters now.
    pub fn stats(&self) -> UdpClientStats {
        self.inner.shared.stats.snapshot()
    }

    /// The smoothed round-trip time, once measured.
    pub fn srtt(&self) -> Option<Duration> {
        lock(&self.inner.shared.rtt).srtt()
    }

    /// Whether new calls are going to TCP now because of repeated loss, or because the client's
    /// runtime shut down.
    pub fn in_fallback(&self) -> bool {
        self.inner.shared.in_fallback()
    }

    /// Whether a call of `path` with `request` fits one REQUEST datagram.
    pub fn fits(&self, path: &MethodPath, request: &Request<Bytes>) -> bool {
        self.inner.shared.config.fits(path, request)
    }

    /// Runs one unary call over UDP. `deadline` (or else the request's timeout, counted from
    /// now) bounds everything, retransmissions and cookie exchange included; with neither, the
    /// call still gives up after `retransmit_window`. The request is borrowed, so after
    /// `NotSuitable` or `Truncated` the caller still has it for TCP.
    pub async fn call(
        &self,
        path: &MethodPath,
        request: &Request<Bytes>,
        deadline: Option<Instant>,
    ) -> UdpOutcome {
        let shared = &*self.inner.shared;
        let deadline = deadline
            .or_else(|| request.deadline())
            .or_else(|| request.timeout().map(|t| Instant::now() + t));
        // A malformed path goes to TCP's checks, which refuse it unsent.
        if !path.is_valid() || !self.fits(path, request) || shared.in_fallback() {
            bump(&shared.stats.not_suitable);
            return UdpOutcome::NotSuitable;
        }
        // Read once for the first transmission (each read takes the watch's lock);
        // retransmissions read the newest.
        let mut cookie = *shared.cookie.borrow();
        if cookie.is_none() {
            // Once per client: boxed, so that every call's future is not the larger for it.
            if let Err(outcome) = Box::pin(shared.ensure_cookie(deadline)).await {
                return outcome;
            }
            cookie = *shared.cookie.borrow();
        }
        let started = Instant::now();
        let instance = shared.instances.current();
        let (seq, call_id, done_below) =
            match shared.outstanding.start(shared.config.max_window, started) {
                Ok(started) => started,
                Err(lost) => return shared.past_window(lost),
            };
        crate::dispatch::note_call_id(call_id);
        let give_up = crate::timer::deadline_after(started, shared.config.retransmit_window);
        // The first transmission's timer, armed as the slot opens (one lock for both): the
        // call's start stands for its first transmission's time (the encoding between is a
        // few hundred nanoseconds), so its due time is known now.
        let first_rto_at = started + shared.backoff(0);
        let first_wake = earliest(first_rto_at, deadline, give_up);
        let runtime = tokio::runtime::Handle::current().id();
        // Whether other calls are in flight: then this one's request may leave with theirs.
        let (out, together, arm) = lock(&shared.pending).open_armed(call_id, first_wake, runtime);
        // Acted on at once, whatever happens next: a timer task said to be starting must start.
        let mut own_timer = Some(!timer::after_arm(&self.inner.shared, arm));
        let mut pending = PendingGuard {
            shared,
            call_id,
            seq: Some(seq),
            out,
        };
        // The header is a temporary: nothing that dies here is kept across this future's waits.
        datagram::encode_request(
            &mut pending.out,
            &Header {
                kind: Kind::Request,
                flags: 0,
                client_instance: instance,
                call_id,
                cookie: [0; COOKIE_LEN],
            },
            None,
            shared.acks.load(Ordering::Relaxed).then_some(done_below),
            path,
            request.metadata(),
            request.get_ref(),
        );
        bump(&shared.stats.calls);
        let mut attempt = 0u32;
        let mut retried_for_cookie = false;
        // Transmissions so far: every one after the first is a retransmission.
        let mut sends = 0u32;
        loop {
            // The first transmission's time is the call's start, read above.
            let now = if sends == 0 { started } else { Instant::now() };
            if deadline.is_some_and(|d| now >= d) {
                bump(&shared.stats.deadline_exceeded);
                return UdpOutcome::Reply(Err(Status::deadline_exceeded(
                    "deadline exceeded waiting for a UDP reply",
                )));
            }
            if now >= give_up {
                return UdpOutcome::Reply(Err(Status::unavailable(format!(
                    "no UDP reply from the server within {:?}",
                    shared.config.retransmit_window
                ))));
            }
            // Each transmission carries the time still left and the newest cookie.
            datagram::set_timeout(&mut pending.out, deadline.map(|d| d - now));
            if sends > 0 {
                cookie = *shared.cookie.borrow();
            }
            datagram::set_cookie(&mut pending.out, &cookie.unwrap_or_default());
            if sends > 0 {
                bump(&shared.stats.retransmits);
            }
            let rto_at = if sends == 0 {
                first_rto_at
            } else {
                now + shared.backoff(attempt)
            };
            shared.send(&pending.out, together).await;
            sends += 1;
            let wake = earliest(rto_at, deadline, give_up);
            let got = self.wait(call_id, wake, own_timer.take()).await;
            match got {
                Ok(Some(Incoming::Reply(answer))) => {
                    if sends == 1 {
                        // Karn: only an answer to a call sent once says what one round trip is.
                        lock(&shared.rtt).sample(started.elapsed());
                    }
                    bump(&shared.stats.replies);
                    shared.on_refused(&answer);
                    if let Some(seq) = pending.seq.take() {
                        shared.answered(seq);
                    }
                    return UdpOutcome::Reply(answer);
                }
                Ok(Some(Incoming::Truncated { fits: true })) if !retried_for_cookie => {
                    // Held back only for want of a cookie, which that TRUNCATED carried: ask
                    // again at once; the server answers from its cache.
                    retried_for_cookie = true;
                    lock(&shared.pending).rearm(call_id);
                }
                Ok(Some(Incoming::Hurry)) => {
                    // Retransmit at once; not a timeout, so no backoff and no loss counted.
                    lock(&shared.pending).rearm(call_id);
                }
                Ok(Some(Incoming::Truncated { .. })) => {
                    bump(&shared.stats.truncations);
                    let seq = pending.seq.take().unwrap_or(seq);
                    return UdpOutcome::Truncated {
                        instance,
                        call_id,
                        hold: ReissueHold::new(Arc::clone(&shared.outstanding), seq),
                    };
                }
                Ok(None) => {
                    return UdpOutcome::Reply(Err(Status::unavailable(
                        "UDP client: the call's answer slot was dropped",
                    )))
                }
                Ok(Some(Incoming::Gone)) => {
                    return UdpOutcome::Reply(Err(Status::unavailable(
                        "the UDP client's runtime shut down: no answer can be read",
                    )))
                }
                // (A timeout is never what `wait` answers.)
                Ok(Some(Incoming::Timeout)) | Err(TimedOut) => {
                    if wake == rto_at {
                        shared.record_loss();
                        attempt += 1;
                    }
                }
            }
        }
    }
}

/// No answer came before the call's timer went off.
struct TimedOut;

/// When a call sent at a time whose timeout is `rto_at` wakes: then, at its deadline, or when
/// it gives up, whichever comes first.
fn earliest(rto_at: Instant, deadline: Option<Instant>, give_up: Instant) -> Instant {
    let wake = rto_at.min(give_up);
    deadline.map_or(wake, |deadline| wake.min(deadline))
}

impl UdpClient {
    /// Waits for call `call_id`'s answer until `wake` (its slot's due time: the client's timer
    /// task wakes it then, `client/timer.rs`), reading the socket for every call meanwhile if
    /// no other call does. `Ok(None)`: the call's slot is gone. `armed`: the slot was armed
    /// for `wake` already, and whether the call must keep a timer of its own.
    async fn wait(
        &self,
        call_id: u32,
        wake: Instant,
        armed: Option<bool>,
    ) -> Result<Option<Incoming>, TimedOut> {
        let shared = &self.inner.shared;
        let own_timer = armed.unwrap_or_else(|| {
            let runtime = tokio::runtime::Handle::current().id();
            let arm = lock(&shared.pending).arm(call_id, wake, runtime);
            !timer::after_arm(shared, arm)
        });
        if own_timer {
            // The client's timer serves another runtime: a timer of the call's own (boxed, so
            // that every call's future is not the larger for this rare case).
            let answer = Box::pin(tokio::time::timeout_at(wake, self.answer(call_id)));
            return match answer.await {
                Ok(got) => Ok(got),
                Err(_) => self.timed_out(call_id),
            };
        }
        match self.answer(call_id).await {
            Some(Incoming::Timeout) => self.timed_out(call_id),
            got => Ok(got),
        }
    }

    /// What comes for call `call_id`: its answer, or what the client left in its slot.
    async fn answer(&self, call_id: u32) -> Option<Incoming> {
        let shared = &self.inner.shared;
        let answer = std::future::poll_fn(|cx| lock(&shared.pending).poll_take(call_id, cx));
        match shared.read_until(answer, Some(call_id)).await {
            Waited::Done(got) => got,
            // Read by this call itself: its slot was left alone, and is closed as it ends.
            Waited::Mine(incoming) => Some(incoming),
        }
    }

    /// Call `call_id`'s time is up. Before calling it a loss, reads what already came
    /// (`inbox.rs`), into its slot waiting again.
    fn timed_out(&self, call_id: u32) -> Result<Option<Incoming>, TimedOut> {
        let shared = &self.inner.shared;
        lock(&shared.pending).rearm(call_id);
        shared.catch_up();
        let came = lock(&shared.pending).try_take(call_id);
        came.map(Some).ok_or(TimedOut)
    }
}

impl Shared {
    fn backoff(&self, attempt: u32) -> Duration {
        let random = if attempt == 0 {
            self.first_jitter
        } else {
            jitter_u64()
        };
        lock(&self.rtt).backoff(attempt, random)
    }

    /// Sends one datagram; `together`: other calls were in flight when this one started, so
    /// they may send now too, and their requests leave together.
    async fn send(&self, datagram: &[u8], together: bool) {
        if let Some(server) = self.server.filter(|_| together) {
            self.coalescer
                .queue(&self.socket, self.runtime.as_ref(), server, datagram);
            return;
        }
        // Without waiting first (the socket is nearly always writable): no readiness future on
        // the way, and none in every call's future; boxed for the rare wait for room.
        let sent = match self.socket.get_ref().send(datagram) {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                Box::pin(self.socket.send_connected(datagram)).await
            }
            sent => sent,
        };
        if let Err(err) = sent {
            // E.g. ECONNREFUSED from an earlier ICMP: treated as a lost datagram.
            tracing::trace!(error = %err, "udp send failed");
        }
    }
}

mod cookie;
mod instance;
mod loss;
mod runtime_gone;
#[cfg(test)]
mod tests;
mod timer;
mod weak;

use instance::Instances;
pub use weak::WeakUdpClient;
