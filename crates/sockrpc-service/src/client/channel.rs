//! `Channel`: a tower `Service` over a pool of connections to one endpoint.
//!
//! Closing it ([`Channel::close`], [`Channel::close_now`], [`Channel::closed`]) is grpc-java's
//! `shutdown`/`shutdownNow`/`awaitTermination` and grpc-go's `ClientConn.Close`: every clone
//! shares the pool, so closing one clone closes the channel for all of them (dropping a clone
//! closes nothing while another lives).

mod feed;
mod future;
mod gate;
mod shutdown;
mod tonic_names;

use feed::feed;
pub use future::ChannelFuture;
use future::{boxed, failed, unary};
use gate::Gate;
pub use tonic_names::EndpointExt;

use super::udp_side::{UdpSide, GENERATIONS};
use crate::{Body, Call, ConfigDefaults};
use bytes::Bytes;
use sockrpc_protocol::{take_grpc_timeout, MetadataMap, MethodPath, Request, Response, Status};
use sockrpc_transport::endpoint::{Endpoint, IntoEndpoint};
use sockrpc_transport::pool::{closed_status, ConnectionStats, Pool, StartedCall};
use sockrpc_transport::udp::{UdpClient, UdpClientStats, UdpOutcome};
use sockrpc_transport::ClientConnection;
use std::{
    future::Future,
    sync::Arc,
    task::{Context, Poll},
};
use tokio::time::Instant;
use tower_service::Service;

/// A client channel: clone it freely, every clone shares the pool. Implements
/// `tower::Service<Call>`, so any tower layer wraps it.
///
/// Calls fill the first pooled connection up to `Endpoint::calls_per_connection` calls in
/// flight (or the server's announced limit, if lower) before the next, and go to the least loaded once every connection has that many. A
/// connection that breaks
/// fails only its own calls (`Unavailable`) and is replaced in the background with backoff.
/// While none is up, a call waits for the outcome of the attempt under way and fails
/// `Unavailable` with its error if it fails (gRPC's fail-fast); a wait-for-ready call
/// (`Request::set_wait_for_ready`, `Endpoint::wait_for_ready`) waits for one up to its
/// deadline instead.
///
/// [`close`](Channel::close) shuts it down for every clone: new calls (and `poll_ready`) fail
/// `UNAVAILABLE` ([`closed_status`](sockrpc_transport::pool::closed_status)) without reaching
/// the server, calls in flight finish, then the connections close and nothing reconnects;
/// [`close_now`](Channel::close_now) also fails the calls in flight, streams included,
/// `CANCELLED`; [`closed`](Channel::closed) waits for every connection to end.
#[derive(Clone)]
pub struct Channel {
    pool: Pool,
    /// The UDP client of the runtime using the channel (`udp_side.rs`).
    udp: Option<Arc<UdpSide>>,
    /// The endpoint's concurrency and rate limits, if it sets them (`gate.rs`).
    gate: Option<Box<Gate>>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("endpoint", &self.pool.endpoint().to_string())
            .finish()
    }
}

impl Channel {
    /// Connects now — every pooled connection, within the connect timeout — and fails with
    /// `Unavailable` when not even one comes up.
    pub async fn connect(dst: impl IntoEndpoint) -> Result<Channel, Status> {
        let channel = Channel::lazy(dst)?;
        let deadline = Instant::now() + channel.pool.endpoint().connect_timeout;
        channel.pool.fill(deadline).await?;
        if let Some(udp) = &channel.udp {
            // Set up now, so the first small call does not pay for the socket.
            let _ = udp.client(channel.pool.endpoint()).await;
        }
        Ok(channel)
    }

    /// A channel that connects on its first call.
    pub fn lazy(dst: impl IntoEndpoint) -> Result<Channel, Status> {
        Ok(Channel::lazy_from(dst.into_endpoint()?))
    }

    /// [`lazy`](Channel::lazy) for an endpoint already made.
    fn lazy_from(endpoint: Endpoint) -> Channel {
        super::default_timeout::note(&endpoint);
        let udp = udp_cell(&endpoint);
        Channel {
            gate: Gate::new(&endpoint),
            pool: Pool::new(endpoint),
            udp,
        }
    }

    /// A channel over a connection made elsewhere (a Unix socket, an in-memory duplex). If it
    /// breaks, replacements connect to `endpoint`'s address.
    pub fn from_connection(endpoint: Endpoint, conn: ClientConnection) -> Channel {
        super::default_timeout::note(&endpoint);
        let udp = udp_cell(&endpoint);
        Channel {
            gate: Gate::new(&endpoint),
            pool: Pool::with_connection(endpoint, conn),
            udp,
        }
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        self.pool.endpoint()
    }

    /// What each live pooled connection has carried.
    pub fn connection_stats(&self) -> Vec<ConnectionStats> {
        self.pool.stats()
    }

    /// What the UDP side has done, when the endpoint enables UDP and it is set up: its client
    /// on the current runtime (a channel used from one runtime after another makes a client
    /// on each, its counters starting from zero).
    pub fn udp_stats(&self) -> Option<UdpClientStats> {
        self.udp.as_ref()?.get().map(|client| client.stats())
    }

    /// The live pooled connections (to inspect, or to break one on purpose in a test).
    pub fn connections(&self) -> Vec<ClientConnection> {
        self.pool.connections()
    }

    /// Whether one of its pooled connections is up and past its handshake (no waiting, and no
    /// connection is made for it).
    pub fn is_connected(&self) -> bool {
        self.pool.is_connected()
    }

    /// Waits until [`is_connected`](Self::is_connected) holds, making no connection for it
    /// (`Pool::connection_up`); never resolves once the channel is closed.
    pub async fn connection_up(&self) {
        self.pool.connection_up().await;
    }
}

impl Service<Call> for Channel {
    type Response = Response<Body>;
    type Error = Status;
    type Future = ChannelFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        if self.pool.is_closed() {
            return Poll::Ready(Err(closed_status()));
        }
        if let Some(gate) = &mut self.gate {
            std::task::ready!(gate.poll_ready(cx));
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> ChannelFuture {
        self.gated(call, true)
    }
}

impl Channel {
    /// A call that is sent only if a connection is up now: with none (it just broke, or never
    /// came up), it fails at once `UNAVAILABLE`, [never sent](Status::is_never_sent), instead
    /// of waiting for the pool to connect (up to the connect timeout, or to a wait-for-ready
    /// call's deadline); refused unstarted by its connection, it is not sent again here. What
    /// a caller that can send it elsewhere wants: a balanced channel, which sends it to an
    /// endpoint connected now, or waits once for one, bounded by the call's deadline (as
    /// grpc-go picks again when a picked connection is no longer ready).
    pub fn call_now(&mut self, call: Call) -> ChannelFuture {
        self.gated(call, false)
    }

    /// A call through the endpoint's limits, if it sets any (`gate.rs`): with what
    /// `poll_ready` took, or once what it lacks is there.
    fn gated(&mut self, call: Call, waits: bool) -> ChannelFuture {
        let Some(gate) = &mut self.gate else {
            return self.start(call, waits);
        };
        match gate.take() {
            Ok(pass) => {
                let future = self.start(call, waits);
                boxed(Box::pin(async move {
                    let answer = future.await;
                    drop(pass);
                    answer
                }))
            }
            Err(rest) => {
                let mut channel = self.clone();
                boxed(Box::pin(async move {
                    let pass = rest.pass().await;
                    let answer = channel.start(call, waits).await;
                    drop(pass);
                    answer
                }))
            }
        }
    }

    /// A call, waiting for a connection (`waits`) or not ([`Channel::call_now`]).
    fn start(&mut self, call: Call, waits: bool) -> ChannelFuture {
        if self.pool.is_closed() {
            // Nothing is sent, over TCP or UDP.
            return failed(closed_status());
        }
        let streaming_response = call.streaming_response();
        let (path, request) = call.into_parts();
        // What a generated client set for compression: the OPEN's encoding fields, and how
        // the body's messages go on the wire.
        let encoding_fields = request.encoding();
        let defaults = request.extensions().get::<ConfigDefaults>().copied();
        let wait_for_ready = request.wait_for_ready().unwrap_or_else(|| {
            ConfigDefaults::waits(defaults.as_ref(), self.pool.endpoint().wait_for_ready)
        });
        // Fixed when the caller started the call (a generated client's method, before it
        // encoded the request): everything below counts from it. A timeout it did not know
        // then (a `grpc-timeout` entry, the endpoint's default) counts from the start it
        // noted; without either, from when the transport takes the call.
        let mut deadline = request.deadline();
        let (mut metadata, body, timing) = request.into_parts();
        let started = timing.started();
        let mut timeout = timing.timeout();
        let encoder = body.encoding().cloned();
        if let (Some(own), Some(default), true) = (
            timeout,
            self.pool.endpoint().timeout,
            defaults.is_some_and(|d| d.endpoint_timeout_applies),
        ) {
            // A service config's timeout does not lift the endpoint's shorter one.
            timeout = Some(own.min(default));
            if default < own {
                deadline = deadline.map(|fixed| fixed.min(Instant::now() + default));
            }
        }
        if timeout.is_none() {
            timeout = self.pool.endpoint().timeout;
            if !metadata.is_empty() {
                // A deadline in gRPC's metadata form, as a tonic or grpc-go program sets it.
                if let Some(asked) = take_grpc_timeout(&mut metadata) {
                    timeout = Some(timeout.map_or(asked, |default| default.min(asked)));
                }
            }
        }
        if let (None, Some(started), Some(left)) = (deadline, started, timeout) {
            deadline = started.checked_add(left);
        }
        if timeout.is_some_and(|left| left.is_zero()) {
            // A deadline already past: nothing is sent, over TCP or UDP (on the wire it would
            // read as one microsecond, and a quick handler would still run), as gRPC clients
            // fail such a call at once.
            return failed(Status::deadline_exceeded(
                "deadline exceeded before the call was sent",
            ));
        }
        if let Some(agent) = &self.pool.endpoint().user_agent {
            if !metadata.contains_key("user-agent") {
                // Checked printable ASCII when the endpoint was built.
                let _ = metadata.insert_str("user-agent", agent);
            }
        }
        let pool = self.pool.clone();
        let (first, body) = match body.into_once() {
            Ok(message) if !streaming_response => {
                let mut request = Request::from_parts(metadata, message, timeout);
                if let Some(deadline) = deadline {
                    request.set_deadline(deadline);
                }
                if wait_for_ready {
                    request.set_wait_for_ready(true);
                }
                if let Some(udp) = &self.udp {
                    // Datagrams go plain, but a message over the sending limit goes nowhere.
                    let len = request.get_ref().len();
                    if let Some(Err(status)) = encoder.as_ref().map(|e| e.check_size(len)) {
                        return failed(status);
                    }
                    let fits = self
                        .pool
                        .endpoint()
                        .udp_in_effect()
                        .is_some_and(|policy| policy.config.fits(&path, &request));
                    // The client of the runtime now using the channel (`udp_side.rs`), held
                    // for the call (the channel lets it go when its runtime ends); or, when
                    // it is not made yet, the side that makes it.
                    let route = match fits.then(|| (udp.generation(), udp)) {
                        None => None,
                        Some((generation, udp)) => match udp.get_at(generation) {
                            Some(client) => (!client.in_fallback()).then_some(Ok(client)),
                            None => (generation < GENERATIONS).then(|| Err(Arc::clone(udp))),
                        },
                    };
                    if let Some(route) = route {
                        // Counted for the whole call (its answer may be fetched over TCP
                        // later): `closed()` after a graceful close waits for it.
                        let Some(started) = self.pool.begin_started() else {
                            return failed(closed_status());
                        };
                        // Datagrams carry no encoding fields: UDP calls always go plain.
                        return boxed(Box::pin(unary_udp(route, pool, path, request, started)));
                    }
                }
                if let Err(status) = to_wire(&mut request, encoding_fields, encoder.as_ref()) {
                    return failed(status);
                }
                return unary(pool, path, request, waits);
            }
            Ok(message) => match encoder.as_ref().map(|e| e.encode(message.clone())) {
                None => (Some((message, false)), None),
                Some(Ok(wire)) => (Some(wire), None),
                Some(Err(status)) => return failed(status),
            },
            Err(body) => (None, Some(body)),
        };
        let open = Open {
            path,
            metadata,
            timeout,
            deadline,
            encoding: encoding_fields,
            wait_for_ready,
            waits,
        };
        boxed(Box::pin(open_stream(pool, open, first, body)))
    }
}

/// Puts a unary request in its wire form: the OPEN's encoding fields, the message compressed
/// as its encoding says.
fn to_wire(
    request: &mut Request<Bytes>,
    fields: Option<sockrpc_protocol::EncodingFields>,
    encoder: Option<&crate::compression::Encoding>,
) -> Result<(), Status> {
    request.set_encoding(fields);
    if let Some(encoder) = encoder {
        let (message, compressed) = encoder.encode(request.get_ref().clone())?;
        *request.get_mut() = message;
        request.set_message_compressed(compressed);
    }
    Ok(())
}

/// A unary answer as the service layer sees it: its one message keeps its COMPRESSED flag
/// (decoded, or refused, when read). Flagged under HEADERS that named no encoding, it fails
/// `INTERNAL` however it is read (`Body::once_received`): by a generated client, or by a
/// caller of this channel reading the body itself (the CLI's dynamic calls), or a layer
/// wrapping or forwarding it.
fn wire_response(response: Response<Bytes>) -> Response<Body> {
    let compressed = response.message_compressed();
    let fields = response.encoding();
    response.map(|message| Body::once_received(message, compressed, fields))
}

/// What a streaming call's OPEN carries.
struct Open {
    path: MethodPath,
    metadata: MetadataMap,
    timeout: Option<std::time::Duration>,
    /// Fixed when the caller started the call, if it was; else counted from the opening.
    deadline: Option<Instant>,
    encoding: Option<sockrpc_protocol::EncodingFields>,
    /// Whether opening waits across failed connection attempts (see `Pool::get`).
    wait_for_ready: bool,
    /// Whether opening waits for a connection at all ([`Channel::call_now`]: not).
    waits: bool,
}

/// A unary call that first waits for a connection (within its deadline).
async fn unary_waiting(
    pool: Pool,
    path: MethodPath,
    mut request: Request<Bytes>,
    reissue: Option<(u64, u32)>,
) -> Result<Response<Body>, Status> {
    let deadline = request.fix_deadline();
    // A re-issue fetches the answer of a call started over UDP: after a graceful close too.
    let (conn, _started) = match reissue {
        None => {
            let wait_for_ready = request.wait_for_ready().unwrap_or(false);
            (pool.get(deadline, wait_for_ready).await?, None)
        }
        Some(_) => pool.get_started(deadline).await?,
    };
    // The wait for a connection counts against the call's own deadline: the request keeps it
    // fixed, and the transport sends what is left of it.
    let response = match reissue {
        None => conn.into_unary(path, request).await?,
        Some(udp_call) => conn.reissue(path, request, udp_call).await?,
    };
    Ok(wire_response(response))
}

/// The UDP side, when the endpoint's UDP policy is in force (with TLS, only when it allows
/// plain text: a datagram cannot carry a TLS session).
fn udp_cell(endpoint: &Endpoint) -> Option<Arc<UdpSide>> {
    if endpoint.udp.is_some() && endpoint.udp_in_effect().is_none() {
        tracing::info!(
            %endpoint,
            "UDP is off: the endpoint speaks TLS and its UDP policy does not allow plain text"
        );
    }
    endpoint.udp_in_effect().map(|_| Arc::default())
}

/// A unary call over UDP when it fits, else (or after a truncated reply) over the stream.
///
/// An `async` block, not an `async fn`: an `async fn` keeps its arguments twice in its future
/// (as arguments, and as the locals they are moved into), which took this one, boxed once per
/// call, to 1,040 bytes: past glibc's per-thread cache (requests up to 1,032 bytes), so each
/// call's box took `malloc`'s slow path (`tests::the_udp_call_future_fits_the_allocators_fast_path`).
#[allow(clippy::manual_async_fn)] // On purpose: see above.
fn unary_udp(
    route: Result<UdpClient, Arc<UdpSide>>,
    pool: Pool,
    path: MethodPath,
    mut request: Request<Bytes>,
    started: StartedCall,
) -> impl Future<Output = Result<Response<Body>, Status>> + Send {
    async move {
        // Held until the call is over, a fetch of its answer included.
        let _started = &started;
        let deadline = request.fix_deadline();
        // The cold paths (the socket's first use, the way out to the stream) are boxed, so
        // this future stays small.
        let client = match route {
            Ok(client) => Some(client),
            Err(udp) => Box::pin(udp.client(pool.endpoint())).await,
        };
        if let Some(client) = client {
            // Taken apart before anything else is awaited: the outcome is not kept across it.
            let truncated = match client.call(&path, &request, deadline).await {
                // Refused unrun (the server's reply cache was full): the stream may carry it.
                UdpOutcome::Reply(Err(status)) if status.is_not_processed() => None,
                UdpOutcome::Reply(answer) => {
                    return answer.map(|response| response.map(Body::once))
                }
                UdpOutcome::Truncated {
                    instance,
                    call_id,
                    hold,
                } => Some(((instance, call_id), hold)),
                UdpOutcome::NotSuitable => None,
            };
            if let Some((udp_call, hold)) = truncated {
                // The call ran; fetch its answer over the stream, by its UDP identity. Until
                // that is over the server must keep the answer: `hold` keeps the call below
                // this client's watermark. The request keeps its deadline fixed: the fetch
                // has what is left of it.
                let answer = Box::pin(unary_waiting(pool, path, request, Some(udp_call))).await;
                drop(hold);
                return answer;
            }
        }
        Box::pin(unary_waiting(pool, path, request, None)).await
    }
}

/// A streaming call: opens it, starts a task feeding the request stream (if any) into it, and
/// returns as soon as the response head arrives.
async fn open_stream(
    pool: Pool,
    open: Open,
    first: Option<(Bytes, bool)>,
    body: Option<Body>,
) -> Result<Response<Body>, Status> {
    let Open {
        path,
        metadata,
        timeout,
        deadline,
        encoding,
        wait_for_ready,
        waits,
    } = open;
    let deadline = deadline.or_else(|| timeout.map(|t| Instant::now() + t));
    let mut body = body;
    // A call refused unstarted (its connection closed before it was sent, or a draining
    // server refused it) opens again on another connection, as unary calls do — as long as
    // no request message has left yet, so nothing can run twice.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let conn = match pool.pick() {
            Some(conn) => conn,
            None if waits => pool.get(deadline, wait_for_ready).await?,
            None => return Err(pool.no_connection()),
        };
        // At the server's limit of calls on that connection, wait for room (as unary calls
        // do), rather than open a call the server would refuse; what the opening would refuse
        // anyway fails first, without waiting.
        conn.check_stream(&metadata, first.as_ref().map(|(message, _)| message))?;
        let pass = match conn.room(deadline).await {
            Ok(pass) => pass,
            Err(status) if status.is_not_processed() && attempt < OPEN_ATTEMPTS => continue,
            Err(status) => return Err(status),
        };
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if timeout.is_some_and(|left| left.is_zero()) {
            // Woken into room just as its deadline passed: not worth sending.
            return Err(Status::deadline_exceeded(
                "deadline exceeded while waiting for room under the server's limit of calls",
            ));
        }
        let opened = conn.open_stream_in(pass, &path, &metadata, timeout, first.clone(), encoding);
        let (sender, mut receiver) = match opened {
            Ok(opened) => opened,
            Err(status) if status.is_not_processed() && attempt < OPEN_ATTEMPTS => continue,
            Err(status) => return Err(status),
        };
        let fed = body.is_some();
        if let Some(body) = body.take() {
            tokio::spawn(feed(sender, body));
        }
        match std::future::poll_fn(|cx| receiver.poll_headers(cx)).await {
            Ok(headers) => {
                let encoding = receiver.encoding();
                // Each message flagged compressed under HEADERS that named no encoding fails
                // `INTERNAL` however the body is read, as a unary answer's does.
                let body = Body::incoming_received(receiver, encoding);
                let mut response = Response::from_parts(headers, body, MetadataMap::new());
                response.set_encoding(encoding);
                return Ok(response);
            }
            Err(status) if status.is_not_processed() && !fed && attempt < OPEN_ATTEMPTS => {}
            Err(status) => return Err(status),
        }
    }
}

/// How many connections a streaming call tries when each refuses it unstarted.
const OPEN_ATTEMPTS: u32 = 3;

#[cfg(test)]
mod tests {
    /// The size of the future `f` returns, found without calling it.
    fn returned_size<F, A, B, C, D, E, R>(_: F) -> usize
    where
        F: FnOnce(A, B, C, D, E) -> R,
    {
        std::mem::size_of::<R>()
    }

    #[test]
    fn the_udp_call_future_fits_the_allocators_fast_path() {
        // Boxed once per UDP call. glibc serves requests of up to 1,032 bytes from its
        // per-thread cache; a larger box takes `malloc`'s slow path (about 250 instructions
        // more per call, callgrind) and `free`'s.
        let size = returned_size(super::unary_udp);
        assert!(size <= 1032, "unary_udp's future is {size} bytes");
    }
}
