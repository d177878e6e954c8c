//! gRPC's `grpc-timeout` metadata form of a deadline (`"500m"`, `"2S"`): what a program
//! written for tonic or grpc-go puts in a request's metadata to give the call a deadline.
//!
//! The client channel turns such an entry into the call's deadline; layers above it that time
//! a whole call (retries, hedging, balancing) must see the same deadline, so the one rule for
//! reading an entry lives here, beside the parser ([`take_grpc_timeout`],
//! [`Request::resolve_timeout`](crate::Request::resolve_timeout)).

use crate::MetadataMap;
use std::time::Duration;

/// The metadata key gRPC carries a call's deadline in.
pub const GRPC_TIMEOUT_KEY: &str = "grpc-timeout";

/// Parses a `grpc-timeout` value as gRPC defines it: one to eight ASCII digits, then a unit,
/// `H` (hours), `M` (minutes), `S` (seconds), `m` (milliseconds), `u` (microseconds) or `n`
/// (nanoseconds). Anything else is `None`, and the entry is then no deadline at all, as for
/// tonic's server and grpc-go.
pub fn parse_grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // Eight digits at most: fits a u64 in every unit below.
    let amount = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(amount * 3600),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// Takes a `grpc-timeout` entry (`"500m"`) out of `metadata`, as the deadline it names: the
/// call's deadline travels in the call itself, so the entry is not sent as well. A value that is
/// not a gRPC timeout is left in place and names no deadline (as tonic's and grpc-go's servers
/// ignore it).
pub fn take_grpc_timeout(metadata: &mut MetadataMap) -> Option<Duration> {
    let timeout = parse_grpc_timeout(metadata.get_raw(GRPC_TIMEOUT_KEY)?)?;
    metadata.remove(GRPC_TIMEOUT_KEY);
    Some(timeout)
}

#[cfg(test)]
mod tests {
    use super::parse_grpc_timeout;
    use std::time::Duration;

    #[test]
    fn every_unit() {
        let cases = [
            ("2H", Duration::from_secs(7200)),
            ("3M", Duration::from_secs(180)),
            ("4S", Duration::from_secs(4)),
            ("500m", Duration::from_millis(500)),
            ("7u", Duration::from_micros(7)),
            ("9n", Duration::from_nanos(9)),
            ("0m", Duration::ZERO),
            ("99999999H", Duration::from_secs(99_999_999 * 3600)),
        ];
        for (value, expected) in cases {
            assert_eq!(
                parse_grpc_timeout(value.as_bytes()),
                Some(expected),
                "{value}"
            );
        }
    }

    #[test]
    fn what_is_not_a_timeout() {
        for value in [
            "",
            "m",
            "5",
            "500",
            "123456789S",
            "5s",
            "5ms",
            "-5S",
            "+5S",
            " 5S",
            "5 S",
            "5.0S",
            "٣S",
        ] {
            assert_eq!(parse_grpc_timeout(value.as_bytes()), None, "{value:?}");
        }
    }
}
