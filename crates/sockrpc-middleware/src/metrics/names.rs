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
    /// Counter, bytes: request messages (encoded), received on a server, sent by a client.
    pub request_bytes: &'static str,
    /// Counter, bytes: response messages (encoded), sent by a server, received by a client.
    pub response_bytes: &'static str,
}

/// A server's metric names.
pub const SERVER: Names = Names {
    started: "rpc.server.call.started",
    finished: "rpc.server.call.finished",
    duration: "rpc.server.call.duration",
    active: "rpc.server.call.active",
    request_bytes: "rpc.server.call.request.size",
    response_bytes: "rpc.server.call.response.size",
};

/// A client's metric names.
pub const CLIENT: Names = Names {
    started: "rpc.client.call.started",
    finished: "rpc.client.call.finished",
    duration: "rpc.client.call.duration",
    active: "rpc.client.call.active",
    request_bytes: "rpc.client.call.request.size",
    response_bytes: "rpc.client.call.response.size",
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
        ::metrics::describe_counter!(
            self.request_bytes,
            Unit::Bytes,
            "Bytes of request messages, encoded."
        );
        ::metrics::describe_counter!(
            self.response_bytes,
            Unit::Bytes,
            "Bytes of response messages, encoded."
        );
    }
}
