//! The status codes, numbered as gRPC numbers them.

use std::fmt;

/// What happened to a call, as a number a program can act on.
///
/// The codes and their numbers are gRPC's (see gRPC's `statuscodes.md`), so that what users know
/// about when to retry, when to give up and when to fix a request carries over unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum Code {
    /// Not an error; returned on success.
    Ok = 0,
    /// The operation was cancelled, typically by the caller.
    Cancelled = 1,
    /// Unknown error, e.g. a status from an unknown error space or a handler that failed without one.
    Unknown = 2,
    /// The client specified an invalid argument.
    InvalidArgument = 3,
    /// The deadline expired before the operation could complete.
    DeadlineExceeded = 4,
    /// Some requested entity was not found.
    NotFound = 5,
    /// The entity that a client attempted to create already exists.
    AlreadyExists = 6,
    /// The caller does not have permission to execute the operation.
    PermissionDenied = 7,
    /// Some resource has been exhausted: a quota, a size limit, memory.
    ResourceExhausted = 8,
    /// The system is not in a state required for the operation.
    FailedPrecondition = 9,
    /// The operation was aborted, typically due to a concurrency issue.
    Aborted = 10,
    /// The operation was attempted past the valid range.
    OutOfRange = 11,
    /// The operation is not implemented or not supported by the server.
    Unimplemented = 12,
    /// An invariant expected by the underlying system has been broken.
    Internal = 13,
    /// The service is currently unavailable; retrying with backoff may help.
    Unavailable = 14,
    /// Unrecoverable data loss or corruption.
    DataLoss = 15,
    /// The request does not have valid authentication credentials.
    Unauthenticated = 16,
}

impl Code {
    /// Every code, in numeric order.
    pub const ALL: [Code; 17] = [
        Code::Ok,
        Code::Cancelled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
        Code::Unauthenticated,
    ];

    /// The code's number on the wire.
    pub fn as_u32(self) -> u32 {
        self as u32
    }

    /// The code for a number; numbers outside gRPC's range become [`Code::Unknown`], as gRPC's
    /// clients treat codes from an unknown error space.
    pub fn from_u32(n: u32) -> Code {
        Code::ALL.get(n as usize).copied().unwrap_or(Code::Unknown)
    }

    /// gRPC's name for the code, e.g. `DEADLINE_EXCEEDED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Ok => "OK",
            Code::Cancelled => "CANCELLED",
            Code::Unknown => "UNKNOWN",
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Aborted => "ABORTED",
            Code::OutOfRange => "OUT_OF_RANGE",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Internal => "INTERNAL",
            Code::Unavailable => "UNAVAILABLE",
            Code::DataLoss => "DATA_LOSS",
            Code::Unauthenticated => "UNAUTHENTICATED",
        }
    }
}

impl Code {
    /// The code for a number, as tonic's `Code::from_i32`: outside gRPC's range (negative
    /// numbers included) is [`Code::Unknown`].
    pub fn from_i32(n: i32) -> Code {
        Code::from(n)
    }

    /// The code a `grpc-status` value spells (`b"14"`), as tonic's `Code::from_bytes`: `0`
    /// to `16` written plainly (no sign, no leading zero), anything else [`Code::Unknown`].
    pub fn from_bytes(bytes: &[u8]) -> Code {
        match bytes {
            [digit @ b'0'..=b'9'] => Code::from_u32(u32::from(digit - b'0')),
            [b'1', digit @ b'0'..=b'6'] => Code::from_u32(10 + u32::from(digit - b'0')),
            _ => Code::Unknown,
        }
    }

    /// A sentence saying what the code means, tonic's `Code::description` word for word (e.g.
    /// "The operation completed successfully"). [`Display`](fmt::Display) prints gRPC's name
    /// instead ([`as_str`](Code::as_str)).
    pub fn description(&self) -> &'static str {
        match self {
            Code::Ok => "The operation completed successfully",
            Code::Cancelled => "The operation was cancelled",
            Code::Unknown => "Unknown error",
            Code::InvalidArgument => "Client specified an invalid argument",
            Code::DeadlineExceeded => "Deadline expired before operation could complete",
            Code::NotFound => "Some requested entity was not found",
            Code::AlreadyExists => "Some entity that we attempted to create already exists",
            Code::PermissionDenied => {
                "The caller does not have permission to execute the specified operation"
            }
            Code::ResourceExhausted => "Some resource has been exhausted",
            Code::FailedPrecondition => {
                "The system is not in a state required for the operation's execution"
            }
            Code::Aborted => "The operation was aborted",
            Code::OutOfRange => "Operation was attempted past the valid range",
            Code::Unimplemented => "Operation is not implemented or not supported",
            Code::Internal => "Internal error",
            Code::Unavailable => "The service is currently unavailable",
            Code::DataLoss => "Unrecoverable data loss or corruption",
            Code::Unauthenticated => "The request does not have valid authentication credentials",
        }
    }
}

/// The code's number as a protobuf `int32` field holds it (tonic's `i32::from(code)`).
impl From<Code> for i32 {
    fn from(code: Code) -> i32 {
        code as i32
    }
}

impl From<u32> for Code {
    fn from(n: u32) -> Code {
        Code::from_u32(n)
    }
}

/// A code held in a protobuf `int32` field (`google.rpc.Status.code`, gRPC's test services'
/// `EchoStatus.code`), as tonic's `Code::from(i32)` reads it: a number outside gRPC's range,
/// negative ones included, is [`Code::Unknown`].
impl From<i32> for Code {
    fn from(n: i32) -> Code {
        u32::try_from(n).map_or(Code::Unknown, Code::from_u32)
    }
}

impl From<Code> for u32 {
    fn from(code: Code) -> u32 {
        code.as_u32()
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_grpc() {
        for (n, code) in Code::ALL.iter().enumerate() {
            assert_eq!(code.as_u32() as usize, n);
            assert_eq!(Code::from_u32(n as u32), *code);
        }
        assert_eq!(Code::Unavailable.as_u32(), 14);
        assert_eq!(Code::Unauthenticated.as_u32(), 16);
        assert_eq!(Code::from_u32(17), Code::Unknown);
        assert_eq!(Code::from_u32(u32::MAX), Code::Unknown);
        assert_eq!(Code::DeadlineExceeded.to_string(), "DEADLINE_EXCEEDED");
    }

    #[test]
    fn an_int32_field_reads_as_tonic_reads_it() {
        let field: i32 = 5;
        assert_eq!(Code::from(field), Code::NotFound);
        assert_eq!(Code::from(16i32), Code::Unauthenticated);
        assert_eq!(Code::from(17i32), Code::Unknown);
        assert_eq!(Code::from(-1i32), Code::Unknown);
        assert_eq!(Code::from(i32::MIN), Code::Unknown);
    }

    #[test]
    fn a_grpc_status_value_reads_as_tonic_reads_it() {
        for code in Code::ALL {
            let text = code.as_u32().to_string();
            assert_eq!(Code::from_bytes(text.as_bytes()), code, "{text}");
        }
        for bad in [&b""[..], b"17", b"01", b"+1", b"-1", b"100", b"a", b"1a"] {
            assert_eq!(Code::from_bytes(bad), Code::Unknown, "{bad:?}");
        }
    }
}
