//! The peer framework's integration tests (tonic's `tests/integration_tests`, and the gRPC
//! interop cases they echo), translated to sockrpc one behaviour per file, over loopback TCP
//! (and a Unix socket where the original used one). The services are tonic's test shapes
//! (`tests/proto/parity/test.proto`), so most messages are empty: zero-length on the wire.
//!
//! - async_trait_attr: `#[sockrpc::async_trait]` on a service's impl, as tonic's are written;
//! - answer_encoding: an answer compressed in an encoding the client does not accept fails;
//! - status: a handler's code, message, details and metadata; statuses from a server stream,
//!   before and after a message; the local cause of a connect failure;
//! - connection: refused and closed connections are `UNAVAILABLE`; a lazy channel connects
//!   on a later call once the server is up;
//! - timeout: the client's deadline, the server's timeout, whichever is nearer;
//! - extensions: interceptors and tower layers hand values to handlers; the method in a client
//!   interceptor; `user-agent`; the caller's addresses;
//! - incoming: tonic's `serve_with_incoming(_shutdown)`, a stream of connections served, TCP
//!   and Unix ones knowing their addresses, and its `TcpIncoming`;
//! - routes: several services behind one server, unknown ones `UNIMPLEMENTED`;
//! - limit_cancelled_ready: a call given up while it waits for a place under tonic's
//!   `concurrency_limit` leaves none held;
//! - limit_encode_failure: a request that fails to encode holds no place under tonic's
//!   `concurrency_limit`;
//! - limits: tonic's message size cases, boundaries included;
//! - routes_by_reference: tonic's `Routes` and `RoutesBuilder`, filled by reference;
//! - streams: empty and zero-length messages, empty streams, many concurrent streams, a client
//!   that goes away;
//! - shutdown: a graceful shutdown lets calls in flight finish;
//! - load_shed: tonic's `load_shed(true)` refuses with `RESOURCE_EXHAUSTED` a call past the
//!   per-connection limit or one a full layer is not ready for; without it such calls wait;
//! - endpoint_connect: tonic's `endpoint.connect().await` and `connect_lazy()`;
//! - response_extensions: a response's extensions between handlers, layers and callers;
//! - restarted_server: a channel reaches a server restarted on the same address;
//! - stream_limits: a message over its sender's limit midway fails its stream, never skipped;
//! - stream_status_fields: a status's details and metadata on every streaming path;
//! - stream_trailers: `Streaming::trailers().await` reads to the end first;
//! - unsync_stream: a server stream that is `Send` but not `Sync`;
//! - long_status: a 20,000-byte status message arrives whole under a raised limit;
//! - status_from_error: `Status::from_error` finds a status anywhere in an error's source chain;
//! - status_too_large: details or trailers over what an END carries are dropped with a note;
//! - complex_middleware: a server layer with its own future, body and error types;
//! - layer_answers: a server layer that answers a server stream itself decides its status;
//! - cut_stream: a server stream whose connection goes before its status fails, never ends
//!   clean;
//! - server_middleware_status: tower's timeout and load-shed layers on a server answer with
//!   their codes, in words that do not blame the caller's side.
//!
//! Every loop is bounded in count and every wait in time; nothing asserts speed.

mod answer_encoding;
mod async_trait_attr;
mod complex_middleware;
mod connection;
mod cut_stream;
mod endpoint_connect;
mod extensions;
mod incoming;
mod layer_answers;
mod limit_cancelled_ready;
mod limit_encode_failure;
mod limits;
mod load_shed;
mod long_status;
mod response_extensions;
mod restarted_server;
mod routes;
mod routes_by_reference;
mod server_middleware_status;
mod shutdown;
mod status;
mod status_from_error;
mod status_too_large;
mod stream_limits;
mod stream_status_fields;
mod stream_trailers;
mod streams;
mod support;
mod timeout;
mod unsync_stream;
