//! `Side`: which end of a call a layer sits on.

use sockrpc_protocol::Code;

/// Which end of a call a layer observes: the same layer type serves both, since both ends are
/// `tower::Service<Call>`; the side picks span kinds, metric names and which codes are errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Around a `Channel`: the calls this process makes.
    Client,
    /// Around a server's router: the calls this process answers.
    Server,
}

impl Side {
    /// `"client"` or `"server"`, as OpenTelemetry spells span kinds and metric names.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }

    /// Whether `code` marks the call as failed on this side, by OpenTelemetry's gRPC rule
    /// (sockrpc uses gRPC's codes): a client fails on every code but `OK`; a server only on
    /// codes that mean it could not do its job, not on a caller's mistake such as
    /// `INVALID_ARGUMENT` or `NOT_FOUND`.
    pub fn is_error(self, code: Code) -> bool {
        match self {
            Side::Client => code != Code::Ok,
            Side::Server => matches!(
                code,
                Code::Unknown
                    | Code::DeadlineExceeded
                    | Code::Unimplemented
                    | Code::Internal
                    | Code::Unavailable
                    | Code::DataLoss
            ),
        }
    }
}
