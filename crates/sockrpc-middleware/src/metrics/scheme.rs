//! `Scheme`: what a layer registers its handles under, OpenTelemetry's names or gRFC A66's.
//!
//! Why here, apart from [`handles`](super::handles): both schemes fill the same handles (a
//! scheme without an instrument gets a no-op handle in its place), so a call's path records the
//! same way whichever was chosen; only registration, which happens once per method and code,
//! asks which. The one difference a call makes is what its per-call counts add up: messages
//! (OpenTelemetry's messages per call) or bytes (A66's totals per call).

use super::handles::Finished;
use super::names::{
    A66Names, MetricNames, Names, A66_OTHER, GRPC_METHOD, GRPC_STATUS, GRPC_TARGET, OTHER,
    STATUS_CODE,
};
use crate::trace::RPC_SYSTEM;
use crate::Side;
use ::metrics::{Counter, Gauge, Histogram, Label};
use sockrpc_protocol::Code;

/// The names and labels one layer registers its handles under.
#[derive(Debug)]
pub(crate) enum Scheme {
    /// OpenTelemetry's RPC conventions.
    Otel(&'static Names),
    /// gRFC A66, with the client's channel target if it was given.
    A66 {
        names: &'static A66Names,
        target: Option<String>,
    },
}

/// A method's handles used as its calls start and as their messages pass.
pub(crate) struct MethodHandles {
    pub(crate) started: Counter,
    pub(crate) active: Gauge,
    pub(crate) request_size: Histogram,
    pub(crate) response_size: Histogram,
}

impl Scheme {
    /// `side`'s scheme for `names`; `target` labels a client's A66 metrics (a server's have no
    /// target, and OpenTelemetry's names take none).
    pub(crate) fn new(side: Side, names: MetricNames, target: Option<String>) -> Scheme {
        match names {
            MetricNames::OpenTelemetry => Scheme::Otel(Names::of(side)),
            MetricNames::GrpcA66 => Scheme::A66 {
                names: A66Names::of(side),
                target: target.filter(|_| side == Side::Client),
            },
        }
    }

    /// Whether a call's counts add up bytes (A66's totals) rather than messages.
    pub(crate) fn counts_bytes(&self) -> bool {
        matches!(self, Scheme::A66 { .. })
    }

    /// The name of the duration histogram, to tell schemes apart in `Debug`.
    pub(crate) fn duration_name(&self) -> &'static str {
        match self {
            Scheme::Otel(names) => names.duration,
            Scheme::A66 { names, .. } => names.duration,
        }
    }

    /// Tells the installed recorder each metric's unit and meaning.
    pub(crate) fn describe(&self) {
        match self {
            Scheme::Otel(names) => names.describe(),
            Scheme::A66 { names, .. } => names.describe(),
        }
    }

    /// The labels of a method's series: `path` is its service and method, `None` for the
    /// calls past the layer's cap.
    pub(crate) fn labels(&self, path: Option<(&str, &str)>) -> Vec<Label> {
        match self {
            Scheme::Otel(_) => {
                let (service, method) = path.unwrap_or((OTHER, OTHER));
                vec![
                    Label::from_static_parts("rpc.system", RPC_SYSTEM),
                    Label::new("rpc.service", service.to_owned()),
                    Label::new("rpc.method", method.to_owned()),
                ]
            }
            Scheme::A66 { target, .. } => {
                let method = match path {
                    Some((service, method)) => {
                        Label::new(GRPC_METHOD, format!("{service}/{method}"))
                    }
                    None => Label::from_static_parts(GRPC_METHOD, A66_OTHER),
                };
                let mut labels = vec![method];
                if let Some(target) = target {
                    labels.push(Label::new(GRPC_TARGET, target.clone()));
                }
                labels
            }
        }
    }

    /// Registers the handles of a method labelled `labels`.
    pub(crate) fn method_handles(&self, labels: &[Label]) -> MethodHandles {
        match self {
            Scheme::Otel(names) => MethodHandles {
                started: ::metrics::counter!(names.started, labels.to_vec()),
                active: ::metrics::gauge!(names.active, labels.to_vec()),
                request_size: ::metrics::histogram!(names.request_size, labels.to_vec()),
                response_size: ::metrics::histogram!(names.response_size, labels.to_vec()),
            },
            Scheme::A66 { names, .. } => MethodHandles {
                started: ::metrics::counter!(names.started, labels.to_vec()),
                active: Gauge::noop(),
                request_size: Histogram::noop(),
                response_size: Histogram::noop(),
            },
        }
    }

    /// Registers the handles of a method labelled `labels` for its calls that end with `code`.
    pub(crate) fn finished(&self, side: Side, labels: &[Label], code: Code) -> Finished {
        let mut labels = labels.to_vec();
        match self {
            Scheme::Otel(names) => {
                labels.push(Label::from_static_parts(STATUS_CODE, code.as_str()));
                Finished {
                    count: ::metrics::counter!(names.finished, labels.clone()),
                    duration: ::metrics::histogram!(names.duration, labels.clone()),
                    requests: ::metrics::histogram!(names.requests_per_rpc, labels.clone()),
                    responses: ::metrics::histogram!(names.responses_per_rpc, labels),
                    call_duration: None,
                }
            }
            Scheme::A66 { names, .. } => {
                labels.push(Label::from_static_parts(GRPC_STATUS, code.as_str()));
                // A server receives the requests and sends the responses; a client the reverse.
                let (requests, responses) = match side {
                    Side::Server => (names.rcvd_total, names.sent_total),
                    Side::Client => (names.sent_total, names.rcvd_total),
                };
                Finished {
                    count: Counter::noop(),
                    duration: ::metrics::histogram!(names.duration, labels.clone()),
                    requests: ::metrics::histogram!(requests, labels.clone()),
                    responses: ::metrics::histogram!(responses, labels.clone()),
                    call_duration: names
                        .call_duration
                        .map(|name| ::metrics::histogram!(name, labels)),
                }
            }
        }
    }
}
