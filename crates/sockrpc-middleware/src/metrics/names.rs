//! The metric names and labels, after OpenTelemetry's RPC conventions.

use crate::Side;
use ::metrics::Unit;

/// Label holding the call's status: the gRPC code's name (`OK`, `UNAVAILABLE`...), which reads
/// better in a dashboard than its number; spans carry the number under the same key.
pub const STATUS_CODE: &str = "rpc.sockrpc.status_code";

/// `rpc.service` and `rpc.method` of calls past the layer's method cap.
pub const OTHER: &str = "_OTHER";

/// The names of one side's metrics.
#[derive(Debug)]
pub struct Names {
    /// Counter: calls started.
    pub started: &'static str,
    /// Counter: calls finished, by status code.
    pub finished: &'static str,
    /// Histogram, seconds: from the call reaching the layer to its last message, by status code
    /// (`rpc.server.call.duration` / `rpc.client.call.duration` in OpenTelemetry's conventions).
    pub duration: &'static str,
    /// Gauge: calls started and not yet finished.
    pub active: &'static str,
    /// Histogram, bytes: each request message's size, encoded, received on a server, sent by a
    /// client (`rpc.server.request.size` / `rpc.client.request.size`). Uncompressed, as the
    /// conventions ask, except a streamed message received compressed: the layer sees it before
    /// the body decodes it, and records its compressed size.
    pub request_size: &'static str,
    /// Histogram, bytes: each response message's size, sent by a server, received by a client
    /// (`rpc.server.response.size` / `rpc.client.response.size`).
    pub response_size: &'static str,
    /// Histogram, messages: request messages per call, by status code, recorded when the call
    /// ends (`rpc.server.requests_per_rpc` / `rpc.client.requests_per_rpc`).
    pub requests_per_rpc: &'static str,
    /// Histogram, messages: response messages per call, by status code, recorded when the call
    /// ends (`rpc.server.responses_per_rpc` / `rpc.client.responses_per_rpc`).
    pub responses_per_rpc: &'static str,
}

/// A server's metric names.
pub const SERVER: Names = Names {
    started: "rpc.server.call.started",
    finished: "rpc.server.call.finished",
    duration: "rpc.server.call.duration",
    active: "rpc.server.call.active",
    request_size: "rpc.server.request.size",
    response_size: "rpc.server.response.size",
    requests_per_rpc: "rpc.server.requests_per_rpc",
    responses_per_rpc: "rpc.server.responses_per_rpc",
};

/// A client's metric names.
pub const CLIENT: Names = Names {
    started: "rpc.client.call.started",
    finished: "rpc.client.call.finished",
    duration: "rpc.client.call.duration",
    active: "rpc.client.call.active",
    request_size: "rpc.client.request.size",
    response_size: "rpc.client.response.size",
    requests_per_rpc: "rpc.client.requests_per_rpc",
    responses_per_rpc: "rpc.client.responses_per_rpc",
};

impl Names {
    /// The names of `side`'s metrics.
    pub fn of(side: Side) -> &'static Names {
        match side {
            Side::Server => &SERVER,
            Side::Client => &CLIENT,
        }
    }

    /// Tells the installed recorder each metric's unit and meaning (Prometheus shows them as
    /// `# HELP` and, with unit suffixes, in the name).
    pub(crate) fn describe(&self) {
        ::metrics::describe_counter!(self.started, Unit::Count, "RPC calls started.");
        ::metrics::describe_counter!(
            self.finished,
            Unit::Count,
            "RPC calls finished, by status code."
        );
        ::metrics::describe_histogram!(
            self.duration,
            Unit::Seconds,
            "Duration of RPC calls, to the last message, by status code."
        );
        ::metrics::describe_gauge!(self.active, Unit::Count, "RPC calls in flight.");
        ::metrics::describe_histogram!(
            self.request_size,
            Unit::Bytes,
            "Size of each request message, encoded (one received compressed: as received)."
        );
        ::metrics::describe_histogram!(
            self.response_size,
            Unit::Bytes,
            "Size of each response message, encoded (one received compressed: as received)."
        );
        ::metrics::describe_histogram!(
            self.requests_per_rpc,
            Unit::Count,
            "Request messages per RPC call, by status code."
        );
        ::metrics::describe_histogram!(
            self.responses_per_rpc,
            Unit::Count,
            "Response messages per RPC call, by status code."
        );
    }
}
