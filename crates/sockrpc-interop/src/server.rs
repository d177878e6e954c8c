//! The interop `TestService` server, as gRPC's interop servers implement it (the "Server"
//! section of the interop spec): EmptyCall, UnaryCall, CacheableUnaryCall, StreamingOutputCall,
//! StreamingInputCall, FullDuplexCall and HalfDuplexCall, with Echo Status, Echo Metadata and
//! `ResponseParameters.interval_us`, CompressedRequest (`expect_compressed`, checked against
//! each message's `FLAG_COMPRESSED`) and CompressedResponse (`response_compressed` and
//! `ResponseParameters.compressed`, gzip, message by message through the call's
//! [`CompressionSwitch`]). UnimplementedCall answers `UNIMPLEMENTED`, and
//! `grpc.testing.UnimplementedService` is not served at all.

use crate::pb::test_service_server::{TestService, TestServiceServer};
use crate::pb::{
    BoolValue, EchoStatus, Empty, Payload, PayloadType, ResponseParameters, SimpleRequest,
    SimpleResponse, StreamingInputCallRequest, StreamingInputCallResponse,
    StreamingOutputCallRequest, StreamingOutputCallResponse,
};
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use sockrpc::{
    Code, CompressionEncoding, CompressionSwitch, MetadataMap, Request, Response, Status, Streaming,
};
use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// Request metadata key whose value the server echoes in its leading metadata.
pub const ECHO_INITIAL_KEY: &str = "x-grpc-test-echo-initial";
/// Request metadata key (binary) whose value the server echoes in its trailing metadata.
pub const ECHO_TRAILING_KEY: &str = "x-grpc-test-echo-trailing-bin";

/// The largest payload the server builds on request (`response_size`, `ResponseParameters.size`);
/// larger sizes fail with `RESOURCE_EXHAUSTED` instead of allocating whatever a client asks for.
pub const MAX_PAYLOAD: usize = 8 * 1024 * 1024;

/// The most answers a call may have asked for and not yet been sent (`response_parameters`,
/// over every request a streaming call read); asking for more fails the call with
/// `RESOURCE_EXHAUSTED`. An empty `ResponseParameters` is 2 bytes on the wire and 16 in the
/// queue, and `HalfDuplexCall` keeps every request's answers until the half-close, after the
/// requests were read (and credited): unbounded, one call grew the server's memory by 16 MiB
/// per 2 MiB request, without end (`tests/hostile/interop_queue.rs`). gRPC's interop cases ask
/// for a handful.
pub const MAX_PENDING: usize = 1024;

type OutputStream = BoxStream<'static, Result<StreamingOutputCallResponse, Status>>;

/// What the server observed about how its calls ended, so tests can check server-side effects
/// (such as cancellation) that the client API cannot see. Clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct ServerEvents {
    inner: Arc<EventsInner>,
}

#[derive(Debug, Default)]
struct EventsInner {
    cancelled: AtomicU64,
    changed: Notify,
}

impl ServerEvents {
    /// Calls whose handler (or response stream) was stopped before it finished, or that failed
    /// with `CANCELLED` from the request stream: cancelled by the client, cut off by a deadline,
    /// or by shutdown.
    pub fn cancelled(&self) -> u64 {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// Waits until [`cancelled`](Self::cancelled) reaches `at_least`.
    pub async fn wait_for_cancelled(&self, at_least: u64) {
        loop {
            let changed = self.inner.changed.notified();
            if self.cancelled() >= at_least {
                return;
            }
            changed.await;
        }
    }

    fn record_cancelled(&self) {
        self.inner.cancelled.fetch_add(1, Ordering::SeqCst);
        self.inner.changed.notify_waiters();
    }

    fn guard(&self) -> CallGuard {
        CallGuard {
            events: self.clone(),
            done: false,
        }
    }
}

/// Lives as long as a call's work; dropped before [`CallGuard::finish`], the call was cancelled.
struct CallGuard {
    events: ServerEvents,
    done: bool,
}

impl CallGuard {
    /// The call ended by itself with `result` (only the first call counts).
    fn finish<T>(&mut self, result: &Result<T, Status>) {
        if self.done {
            return;
        }
        self.done = true;
        if matches!(result, Err(status) if status.code() == Code::Cancelled) {
            self.events.record_cancelled();
        }
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if !self.done {
            self.events.record_cancelled();
        }
    }
}

/// The interop `TestService` implementation. Clone it to keep a handle on its
/// [`events`](Self::events) while it serves.
#[derive(Debug, Clone, Default)]
pub struct InteropServer {
    events: ServerEvents,
}

impl InteropServer {
    /// A server with fresh [`ServerEvents`].
    pub fn new() -> InteropServer {
        InteropServer::default()
    }

    /// What this server (and every clone of it) observed.
    pub fn events(&self) -> ServerEvents {
        self.events.clone()
    }

    /// The generated tower service for a router: `Server::builder().add_service(..)`. It
    /// accepts gzip-compressed requests and compresses with gzip the answers a request asks to
    /// have compressed, whatever their size, when the client accepts gzip.
    pub fn into_service(self) -> TestServiceServer<InteropServer> {
        TestServiceServer::new(self)
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .compression_min_size(0)
    }
}

/// Serves [`InteropServer`] on `listener` until `shutdown` completes (then drains gracefully).
/// This is what `sockrpc interop server` runs.
pub async fn run_server(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve(listener, InteropServer::new(), shutdown).await
}

/// Like [`run_server`] with a given `server`, e.g. one whose [`events`](InteropServer::events)
/// a test watches.
pub async fn serve(
    listener: TcpListener,
    server: InteropServer,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    sockrpc::Server::builder()
        .add_service(server.into_service())
        .serve_with_listener_and_shutdown(listener, shutdown)
        .await
}

/// The Echo Metadata feature: what a request asked to have echoed.
#[derive(Debug, Clone, Default)]
struct Echo {
    initial: Option<String>,
    trailing: Option<Bytes>,
}

impl Echo {
    fn from_request(metadata: &MetadataMap) -> Echo {
        Echo {
            initial: metadata.get_str(ECHO_INITIAL_KEY).map(str::to_owned),
            trailing: metadata
                .get_bin_bytes(ECHO_TRAILING_KEY)
                .map(Bytes::copy_from_slice),
        }
    }

    /// Leading metadata and (sent at the end of the call, even for a stream) trailing metadata.
    fn apply<T>(&self, response: &mut Response<T>) -> Result<(), Status> {
        if let Some(value) = &self.initial {
            response
                .metadata_mut()
                .insert_str(ECHO_INITIAL_KEY, value)
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        self.trailers(response.trailers_mut())
    }

    /// A failed call has no leading metadata of its own; its trailers travel with the status.
    fn apply_status(&self, mut status: Status) -> Status {
        // Keys and values were validated on arrival, so re-inserting them cannot fail.
        let _ = self.trailers(status.metadata_mut());
        status
    }

    fn trailers(&self, trailers: &mut MetadataMap) -> Result<(), Status> {
        if let Some(value) = &self.trailing {
            trailers
                .insert_bin(ECHO_TRAILING_KEY, value.clone().into())
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        Ok(())
    }
}

/// Echo Status: a non-zero `response_status` ends the call with that code and message.
fn echo_status(status: Option<&EchoStatus>) -> Result<(), Status> {
    match status {
        Some(status) if status.code != 0 => {
            // A negative code maps to a number no code has, which reads as UNKNOWN.
            let code = Code::from_u32(u32::try_from(status.code).unwrap_or(u32::MAX));
            Err(Status::new(code, status.message.clone()))
        }
        _ => Ok(()),
    }
}

/// CompressedRequest: a message that says it expects to have arrived compressed and did not
/// fails the call with `INVALID_ARGUMENT` (the spec's feature probe). One that arrived
/// compressed without expecting it is fine.
fn expect_compressed(expect: Option<&BoolValue>, compressed: bool) -> Result<(), Status> {
    if expect.is_some_and(|b| b.value) && !compressed {
        return Err(Status::invalid_argument(
            "expect_compressed is set, but the request message was not compressed",
        ));
    }
    Ok(())
}

/// CompressedResponse: the messages that follow go compressed when `wanted` (and the client
/// accepts gzip: the call's switch exists only then), plain otherwise.
fn compress(switch: Option<&CompressionSwitch>, wanted: Option<&BoolValue>) {
    if let Some(switch) = switch {
        switch.set(wanted.is_some_and(|b| b.value));
    }
}

/// A payload of `size` zero bytes of `payload_type`; `INVALID_ARGUMENT` for a type or size the
/// server cannot produce.
fn payload(payload_type: i32, size: i32) -> Result<Payload, Status> {
    let kind = PayloadType::try_from(payload_type).map_err(|_| {
        Status::invalid_argument(format!("unsupported response_type {payload_type}"))
    })?;
    let size = usize::try_from(size).map_err(|_| {
        Status::invalid_argument(format!("requested a response of negative size {size}"))
    })?;
    if size > MAX_PAYLOAD {
        return Err(Status::resource_exhausted(format!(
            "requested a response of {size} bytes; this server builds at most {MAX_PAYLOAD}"
        )));
    }
    Ok(Payload {
        r#type: kind as i32,
        body: vec![0; size],
    })
}

/// Checks every size and the type up front, so a bad request fails before any response, and
/// that the answers asked for, beside `pending` still waiting, stay within [`MAX_PENDING`].
fn check_parameters(
    response_type: i32,
    parameters: &[ResponseParameters],
    pending: usize,
) -> Result<(), Status> {
    PayloadType::try_from(response_type).map_err(|_| {
        Status::invalid_argument(format!("unsupported response_type {response_type}"))
    })?;
    if pending.saturating_add(parameters.len()) > MAX_PENDING {
        return Err(Status::resource_exhausted(format!(
            "a request asking for {} answers, with {pending} waiting: this server keeps at most \
             {MAX_PENDING} waiting per call",
            parameters.len()
        )));
    }
    for p in parameters {
        if p.size < 0 || usize::try_from(p.size).is_ok_and(|s| s > MAX_PAYLOAD) {
            return Err(Status::invalid_argument(format!(
                "unsupported response size {}",
                p.size
            )));
        }
        if p.interval_us < 0 {
            return Err(Status::invalid_argument(format!(
                "negative interval_us {}",
                p.interval_us
            )));
        }
    }
    Ok(())
}

fn unary(request: &Request<SimpleRequest>) -> Result<SimpleResponse, Status> {
    let compressed = request.message_compressed();
    compress(
        request.extensions().get(),
        request.get_ref().response_compressed.as_ref(),
    );
    let request = request.get_ref();
    expect_compressed(request.expect_compressed.as_ref(), compressed)?;
    echo_status(request.response_status.as_ref())?;
    Ok(SimpleResponse {
        payload: Some(payload(request.response_type, request.response_size)?),
        ..Default::default()
    })
}

/// Wraps a unary answer: echoed metadata on success, echoed trailers with a failure.
fn answer<T>(echo: &Echo, result: Result<T, Status>) -> Result<Response<T>, Status> {
    match result {
        Ok(message) => {
            let mut response = Response::new(message);
            echo.apply(&mut response)?;
            Ok(response)
        }
        Err(status) => Err(echo.apply_status(status)),
    }
}

/// One response to send: its parameters and the payload type of the request that asked for it.
type Pending = (ResponseParameters, i32);

/// The response side of StreamingOutputCall, FullDuplexCall and HalfDuplexCall.
struct Output {
    /// Requests still to read (`None` for StreamingOutputCall, or once they ended).
    requests: Option<Streaming<StreamingOutputCallRequest>>,
    /// HalfDuplexCall: read every request before answering any.
    buffer_all: bool,
    queue: VecDeque<Pending>,
    echo: Echo,
    guard: CallGuard,
    failed: bool,
    /// The call's compression switch, when the answer may be compressed.
    switch: Option<CompressionSwitch>,
}

impl Output {
    fn into_stream(self) -> OutputStream {
        stream::unfold(self, Output::next).boxed()
    }

    async fn next(mut self) -> Option<(Result<StreamingOutputCallResponse, Status>, Output)> {
        loop {
            if self.failed {
                return None;
            }
            let answering = !self.buffer_all || self.requests.is_none();
            if answering {
                if let Some((parameters, response_type)) = self.queue.pop_front() {
                    // Observe ResponseParameters.interval_us: a sleep before this response,
                    // relative to the previous one.
                    let interval = u64::try_from(parameters.interval_us).unwrap_or(0);
                    if interval > 0 {
                        tokio::time::sleep(Duration::from_micros(interval)).await;
                    }
                    compress(self.switch.as_ref(), parameters.compressed.as_ref());
                    let response = payload(response_type, parameters.size).map(|payload| {
                        StreamingOutputCallResponse {
                            payload: Some(payload),
                            ..Default::default()
                        }
                    });
                    let response = response.map_err(|s| self.echo.apply_status(s));
                    if response.is_err() {
                        self.failed = true;
                        self.guard.finish(&response);
                    }
                    return Some((response, self));
                }
            }
            let Some(requests) = self.requests.as_mut() else {
                // Every request answered and the client half-closed: end with OK.
                self.guard.finish(&Ok::<(), Status>(()));
                return None;
            };
            match requests.message().await {
                Ok(Some(request)) => {
                    let accepted = echo_status(request.response_status.as_ref()).and_then(|()| {
                        check_parameters(
                            request.response_type,
                            &request.response_parameters,
                            self.queue.len(),
                        )
                    });
                    if let Err(status) = accepted {
                        // Echo Status: end the call now; later requests are not processed.
                        self.failed = true;
                        let status = Err(self.echo.apply_status(status));
                        self.guard.finish(&status);
                        return Some((status, self));
                    }
                    let response_type = request.response_type;
                    self.queue.extend(
                        request
                            .response_parameters
                            .into_iter()
                            .map(|p| (p, response_type)),
                    );
                }
                Ok(None) => self.requests = None,
                Err(status) => {
                    self.failed = true;
                    let status = Err(status);
                    self.guard.finish(&status);
                    return Some((status, self));
                }
            }
        }
    }
}

impl InteropServer {
    fn duplex(
        &self,
        request: Request<Streaming<StreamingOutputCallRequest>>,
        buffer_all: bool,
    ) -> Result<Response<OutputStream>, Status> {
        let echo = Echo::from_request(request.metadata());
        let switch = request.extensions().get::<CompressionSwitch>().cloned();
        let output = Output {
            requests: Some(request.into_inner()),
            buffer_all,
            queue: VecDeque::new(),
            echo: echo.clone(),
            guard: self.events.guard(),
            failed: false,
            switch,
        };
        let mut response = Response::new(output.into_stream());
        echo.apply(&mut response)?;
        Ok(response)
    }
}

impl TestService for InteropServer {
    async fn empty_call(&self, request: Request<Empty>) -> Result<Response<Empty>, Status> {
        compress(request.extensions().get(), None);
        answer(&Echo::from_request(request.metadata()), Ok(Empty {}))
    }

    async fn unary_call(
        &self,
        request: Request<SimpleRequest>,
    ) -> Result<Response<SimpleResponse>, Status> {
        let mut guard = self.events.guard();
        let echo = Echo::from_request(request.metadata());
        let result = answer(&echo, unary(&request));
        guard.finish(&result);
        result
    }

    async fn cacheable_unary_call(
        &self,
        request: Request<SimpleRequest>,
    ) -> Result<Response<SimpleResponse>, Status> {
        // The body is the current time in nanoseconds, so every answer differs; the cache
        // header is what a caching proxy in front of the server would honour.
        compress(request.extensions().get(), None);
        let echo = Echo::from_request(request.metadata());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut response = answer(
            &echo,
            Ok(SimpleResponse {
                payload: Some(Payload {
                    r#type: PayloadType::Compressable as i32,
                    body: nanos.to_string().into_bytes(),
                }),
                ..Default::default()
            }),
        )?;
        response
            .metadata_mut()
            .insert_str("cache-control", "max-age=60, public")
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(response)
    }

    type StreamingOutputCallStream = OutputStream;

    async fn streaming_output_call(
        &self,
        request: Request<StreamingOutputCallRequest>,
    ) -> Result<Response<Self::StreamingOutputCallStream>, Status> {
        let echo = Echo::from_request(request.metadata());
        let switch = request.extensions().get::<CompressionSwitch>().cloned();
        let request = request.into_inner();
        let accepted = echo_status(request.response_status.as_ref()).and_then(|()| {
            check_parameters(request.response_type, &request.response_parameters, 0)
        });
        if let Err(status) = accepted {
            return Err(echo.apply_status(status));
        }
        let response_type = request.response_type;
        let output = Output {
            requests: None,
            buffer_all: false,
            queue: request
                .response_parameters
                .into_iter()
                .map(|p| (p, response_type))
                .collect(),
            echo: echo.clone(),
            guard: self.events.guard(),
            failed: false,
            switch,
        };
        let mut response = Response::new(output.into_stream());
        echo.apply(&mut response)?;
        Ok(response)
    }

    async fn streaming_input_call(
        &self,
        request: Request<Streaming<StreamingInputCallRequest>>,
    ) -> Result<Response<StreamingInputCallResponse>, Status> {
        let mut guard = self.events.guard();
        compress(request.extensions().get(), None);
        let echo = Echo::from_request(request.metadata());
        let mut requests = request.into_inner();
        let result = async {
            let mut total: usize = 0;
            while let Some(request) = requests.message().await? {
                let compressed = requests.last_message_compressed();
                expect_compressed(request.expect_compressed.as_ref(), compressed)?;
                total += request.payload.map_or(0, |p| p.body.len());
            }
            let aggregated_payload_size = i32::try_from(total).map_err(|_| {
                Status::out_of_range(format!("aggregated payload size {total} overflows int32"))
            })?;
            Ok(StreamingInputCallResponse {
                aggregated_payload_size,
            })
        }
        .await;
        guard.finish(&result);
        answer(&echo, result)
    }

    type FullDuplexCallStream = OutputStream;

    async fn full_duplex_call(
        &self,
        request: Request<Streaming<StreamingOutputCallRequest>>,
    ) -> Result<Response<Self::FullDuplexCallStream>, Status> {
        self.duplex(request, false)
    }

    type HalfDuplexCallStream = OutputStream;

    async fn half_duplex_call(
        &self,
        request: Request<Streaming<StreamingOutputCallRequest>>,
    ) -> Result<Response<Self::HalfDuplexCallStream>, Status> {
        self.duplex(request, true)
    }

    async fn unimplemented_call(
        &self,
        _request: Request<Empty>,
    ) -> Result<Response<Empty>, Status> {
        Err(Status::unimplemented(
            "grpc.testing.TestService/UnimplementedCall is not implemented by the interop server",
        ))
    }
}
