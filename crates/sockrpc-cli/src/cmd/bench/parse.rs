//! The values of `sockrpc bench`'s flags, parsed and bounded before anything runs: a payload,
//! a count, a duration, the rounds, the server's workers, and what a row may hold in flight
//! (so that no flag asks for memory or time the run could never have).

use std::time::Duration;

/// Largest payload: sockrpc's default message limit (4 MiB) less room for the protobuf field
/// header, so that a large payload is a measurement, not a stream of `ResourceExhausted`.
const MAX_PAYLOAD: usize = 4 * 1024 * 1024 - 64;

/// Most payload bytes a row may hold in flight (`--payload` × `--concurrency`): every task holds
/// its own request (a raw connection also its reply buffer), and the server as much again, so
/// 10 000 tasks of 4 MiB asked for ~80 GB before a call was made. 1 GiB takes 1024 × 1 MiB.
const MAX_IN_FLIGHT_BYTES: usize = 1 << 30;

/// Most `--rounds`: each round of each row pays its warmup again, so more rounds than this are
/// a run that does not end (and, past `u32::MAX`, a share of the time divided by zero).
const MAX_ROUNDS: usize = 1000;

pub(super) fn parse_payload(text: &str) -> Result<usize, String> {
    let bytes: usize = text
        .trim()
        .parse()
        .map_err(|err| format!("{text:?} is not a byte count: {err}"))?;
    if bytes > MAX_PAYLOAD {
        return Err(format!(
            "{bytes} bytes is over the largest payload, {MAX_PAYLOAD} (sockrpc's 4 MiB message \
             limit)"
        ));
    }
    Ok(bytes)
}

pub(super) fn parse_positive(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        Ok(_) => Err("must be at least 1".to_owned()),
        Err(err) => Err(format!("{text:?}: {err}")),
    }
}

pub(super) fn parse_rounds(text: &str) -> Result<usize, String> {
    match parse_positive(text)? {
        n if n <= MAX_ROUNDS => Ok(n),
        n => Err(format!("{n} rounds is over the most, {MAX_ROUNDS}")),
    }
}

/// Refuses a payload and concurrency whose product is past [`MAX_IN_FLIGHT_BYTES`], before
/// anything is started or allocated.
pub(super) fn check_in_flight(payloads: &[usize], concurrencies: &[usize]) -> Result<(), String> {
    for &payload in payloads {
        for &concurrency in concurrencies {
            if payload.saturating_mul(concurrency) > MAX_IN_FLIGHT_BYTES {
                return Err(format!(
                    "--payload {payload} B × --concurrency {concurrency} is over the {} MiB a \
                     row may hold in flight (each task holds its own payload, and the server as \
                     much again): lower one of them",
                    MAX_IN_FLIGHT_BYTES >> 20
                ));
            }
        }
    }
    Ok(())
}

pub(super) fn parse_server_workers(text: &str) -> Result<usize, String> {
    match crate::cmd::serve::parse_workers(text)? {
        0 => Err("must be at least 1".to_owned()),
        n => Ok(n),
    }
}

pub(super) fn parse_secs(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= 86_400.0 => Ok(Duration::from_secs_f64(secs)),
        Ok(_) => Err("must be more than 0 and at most a day".to_owned()),
        Err(err) => Err(format!("{text:?}: {err}")),
    }
}
