//! The metric names and labels: OpenTelemetry's RPC conventions by default ([`SERVER`],
//! [`CLIENT`]), or gRPC's own, gRFC A66's, on request ([`MetricNames::GrpcA66`],
//! [`A66_SERVER`], [`A66_CLIENT`]).
//!
//! Why two: OpenTelemetry's names are this crate's since its first metrics, and dashboards
//! built on them must keep working; A66's are what grpc-go, grpc-java and gRPC C++ record,
//! so a service among theirs shows up on the dashboards already built for them.

use crate::Side;
use ::metrics::Unit;

/// Label holding the call's status: the gRPC code's name (`OK`, `UNAVAILABLE`...), which reads
/// better in a dashboard than its number; spans carry the number under the same key.
pub const STATUS_CODE: &str = "rpc.sockrpc.status_code";

/// `rpc.service` and `rpc.method` of calls past the layer's method cap.
pub const OTHER: &str = "_OTHER";

/// Which names, labels and instruments a [`MetricsLayer`](super::MetricsLayer) records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetricNames {
    /// OpenTelemetry's RPC conventions ([`SERVER`], [`CLIENT`]): labels `rpc.system`,
    /// `rpc.service`, `rpc.method` and [`STATUS_CODE`]; sizes per message.
    #[default]
    OpenTelemetry,
    /// gRFC A66, gRPC's OpenTelemetry metrics ([`A66_SERVER`], [`A66_CLIENT`]): labels
    /// [`GRPC_METHOD`], [`GRPC_STATUS`] and, on a client given one, [`GRPC_TARGET`]; sizes
    /// totalled per call. Only A66's instruments: no gauge of calls in flight, no count of
    /// finished calls (a duration histogram's `_count` is one), no messages per call.
    GrpcA66,
}

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

/// A66's label holding the method, `pkg.Service/Method` (no leading slash), or [`A66_OTHER`].
pub const GRPC_METHOD: &str = "grpc.method";

/// A66's label holding the status code's name (`OK`, `UNAVAILABLE`...).
pub const GRPC_STATUS: &str = "grpc.status";

/// A66's label holding a client's channel target (`dns:///svc:50051`), when the layer is given
/// one ([`MetricsLayer::target`](super::MetricsLayer::target)).
pub const GRPC_TARGET: &str = "grpc.target";

/// A66's `grpc.method` of calls past the layer's method cap (where it uses [`OTHER`]).
pub const A66_OTHER: &str = "other";

/// The names of one side's metrics after gRFC A66.
#[derive(Debug)]
pub struct A66Names {
    /// Counter: calls started (a client: attempts, `grpc.client.attempt.started`).
    pub started: &'static str,
    /// Histogram, seconds, by status: a server's calls, a client's attempts.
    pub duration: &'static str,
    /// Histogram, bytes, by status: the bytes of all messages this side sent in a call (a
    /// client: an attempt).
    pub sent_total: &'static str,
    /// Histogram, bytes, by status: the bytes of all messages this side received in a call
    /// (a client: an attempt).
    pub rcvd_total: &'static str,
    /// Histogram, seconds, by status: a client's calls (`grpc.client.call.duration`); none on
    /// a server.
    pub call_duration: Option<&'static str>,
}

/// A server's metric names after gRFC A66.
pub const A66_SERVER: A66Names = A66Names {
    started: "grpc.server.call.started",
    duration: "grpc.server.call.duration",
    sent_total: "grpc.server.call.sent_total_compressed_message_size",
    rcvd_total: "grpc.server.call.rcvd_total_compressed_message_size",
    call_duration: None,
};

/// A client's metric names after gRFC A66.
pub const A66_CLIENT: A66Names = A66Names {
    started: "grpc.client.attempt.started",
    duration: "grpc.client.attempt.duration",
    sent_total: "grpc.client.attempt.sent_total_compressed_message_size",
    rcvd_total: "grpc.client.attempt.rcvd_total_compressed_message_size",
    call_duration: Some("grpc.client.call.duration"),
};

impl A66Names {
    /// The A66 names of `side`'s metrics.
    pub fn of(side: Side) -> &'static A66Names {
        match side {
            Side::Server => &A66_SERVER,
            Side::Client => &A66_CLIENT,
        }
    }

    /// Tells the installed recorder each metric's unit and meaning.
    pub(crate) fn describe(&self) {
        ::metrics::describe_counter!(
            self.started,
            Unit::Count,
            "RPC calls (or attempts) started."
        );
        ::metrics::describe_histogram!(
            self.duration,
            Unit::Seconds,
            "Duration of RPC calls (or attempts), to the last message, by status."
        );
        ::metrics::describe_histogram!(
            self.sent_total,
            Unit::Bytes,
            "Bytes of all messages sent in an RPC call (or attempt), as the layer saw them."
        );
        ::metrics::describe_histogram!(
            self.rcvd_total,
            Unit::Bytes,
            "Bytes of all messages received in an RPC call (or attempt), as the layer saw them."
        );
        if let Some(call_duration) = self.call_duration {
            ::metrics::describe_histogram!(
                call_duration,
                Unit::Seconds,
                "Duration of RPC calls, as the application sees them, by status."
            );
        }
    }
}

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
