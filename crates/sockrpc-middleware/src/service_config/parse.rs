//! A service config's JSON, read as grpc-go reads it: keys matched regardless of case (Go's
//! `encoding/json`), `null` as absent, entries without a name skipped; what grpc-go refuses (a
//! name twice, a method without its service, a bad duration or throttle, a retry policy that
//! breaks gRFC A6's rules, an integer given as a string, no known load-balancing policy) is
//! refused, naming the field. A hedging policy, which grpc-go does not read, is logged and left
//! out when it breaks A6's rules, rather than failing a config grpc-go would take.

use super::{LoadBalancing, MethodConfig, ServiceConfig};
use crate::hedge::HedgingPolicy;
use crate::retry::RetryPolicy;
use serde_json::{Map, Value};
use sockrpc_protocol::Code;
use std::sync::Arc;
use std::time::Duration;

type Object = Map<String, Value>;

/// Parses a whole service config.
pub(super) fn service_config(json: &str) -> Result<ServiceConfig, String> {
    let value: Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let top = value.as_object().ok_or("not a JSON object")?;
    let mut config = ServiceConfig::default();
    for (i, entry) in array(top, "methodConfig")?.iter().enumerate() {
        let at = format!("methodConfig[{i}]");
        let entry = entry
            .as_object()
            .ok_or_else(|| format!("{at}: not an object"))?;
        let names = array(entry, "name")?;
        if names.is_empty() {
            // Applies to nothing (grpc-go skips it unread).
            continue;
        }
        let method = Arc::new(method_config(entry, &at)?);
        for (j, name) in names.iter().enumerate() {
            add_name(&mut config, name, &method, &format!("{at}.name[{j}]"))?;
        }
    }
    if let Some(throttling) = field(top, "retryThrottling") {
        let throttling = throttling
            .as_object()
            .ok_or("retryThrottling: not an object")?;
        let tokens = field(throttling, "maxTokens")
            .and_then(Value::as_f64)
            .ok_or("retryThrottling.maxTokens: missing, or not a number")?;
        if !(tokens > 0.0 && tokens <= 1000.0) {
            return Err(format!(
                "retryThrottling.maxTokens: {tokens} is not in (0, 1000]"
            ));
        }
        let ratio = field(throttling, "tokenRatio")
            .and_then(Value::as_f64)
            .ok_or("retryThrottling.tokenRatio: missing, or not a number")?;
        if ratio <= 0.0 {
            return Err(format!(
                "retryThrottling.tokenRatio: {ratio} is not above 0"
            ));
        }
        // Whole tokens: a fraction rounds up (in (0, 1000], so 1..=1000).
        config.throttle = Some((tokens.ceil() as u32, ratio));
    }
    config.load_balancing = load_balancing(top)?;
    Ok(config)
}

/// One `methodConfig` entry's settings (its names apart).
fn method_config(entry: &Object, at: &str) -> Result<MethodConfig, String> {
    let mut method = MethodConfig {
        timeout: match field(entry, "timeout") {
            Some(value) => timeout(value, &format!("{at}.timeout"))?,
            None => None,
        },
        wait_for_ready: match field(entry, "waitForReady") {
            Some(Value::Bool(wait)) => Some(*wait),
            Some(_) => return Err(format!("{at}.waitForReady: not true or false")),
            None => None,
        },
        max_request_message_bytes: integer(entry, "maxRequestMessageBytes", at)?,
        max_response_message_bytes: integer(entry, "maxResponseMessageBytes", at)?,
        ..MethodConfig::default()
    };
    // A retry policy at fault refuses the whole config, as in grpc-go. A hedging policy that
    // breaks gRFC A6's rules is logged and left out, and so is one beside a retry policy (the
    // two are exclusive): grpc-go reads no `hedgingPolicy`, so a config it takes, whatever
    // that field holds, is taken here too.
    let retry_policy = field(entry, "retryPolicy");
    if let Some(policy) = retry_policy {
        method.retry = Some(retry(policy, &format!("{at}.retryPolicy"))?);
    }
    if let Some(policy) = field(entry, "hedgingPolicy") {
        if retry_policy.is_some() {
            tracing::warn!(
                "service config: {at}: hedgingPolicy beside retryPolicy is ignored (they are exclusive)"
            );
        } else {
            method.hedging = lenient(hedging(policy, &format!("{at}.hedgingPolicy")));
        }
    }
    Ok(method)
}

/// A policy, or a logged reason to leave it out.
fn lenient<T>(policy: Result<T, String>) -> Option<T> {
    policy
        .map_err(|reason| tracing::warn!("service config: policy ignored: {reason}"))
        .ok()
}

/// Files `method` under one of its names: a method, a whole service, or the default.
fn add_name(
    config: &mut ServiceConfig,
    name: &Value,
    method: &Arc<MethodConfig>,
    at: &str,
) -> Result<(), String> {
    let name = name
        .as_object()
        .ok_or_else(|| format!("{at}: not an object"))?;
    let text = |key: &str| -> Result<&str, String> {
        match field(name, key) {
            None => Ok(""),
            Some(Value::String(text)) => Ok(text),
            Some(_) => Err(format!("{at}.{key}: not a string")),
        }
    };
    let (service, method_name) = (text("service")?, text("method")?);
    let taken = match (service, method_name) {
        ("", "") => config.default.replace(Arc::clone(method)).is_some(),
        ("", _) => return Err(format!("{at}: a method without its service")),
        (service, "") => config
            .services
            .insert(service.to_owned(), Arc::clone(method))
            .is_some(),
        (service, name) => config
            .methods
            .insert(format!("/{service}/{name}"), Arc::clone(method))
            .is_some(),
    };
    if taken {
        return Err(format!("{at}: the same name is configured twice"));
    }
    Ok(())
}

/// A `retryPolicy`: every field required (gRFC A6). Any fault refuses the whole config, as
/// grpc-go does since 1.70 (before, it dropped a policy that broke A6's rules with a warning;
/// A21 asks for the refusal): a field of the wrong type (a `maxAttempts` given as a string),
/// a malformed duration, an unknown status code, a field missing, `maxAttempts` under 2, a
/// backoff or multiplier not above 0, no codes.
fn retry(value: &Value, at: &str) -> Result<RetryPolicy, String> {
    let policy = value
        .as_object()
        .ok_or_else(|| format!("{at}: not an object"))?;
    let attempts = match field(policy, "maxAttempts") {
        // A negative count reads (grpc-go's field is an `int`) and breaks A6's rule.
        Some(Value::Number(n)) if n.as_i64().is_some_and(|n| n < 2) => {
            return Err(format!("{at}.maxAttempts: {n} is under 2"));
        }
        _ => integer(policy, "maxAttempts", at)?
            .ok_or_else(|| format!("{at}.maxAttempts: missing"))?,
    };
    let backoff = |key: &str| -> Result<Duration, String> {
        let at = format!("{at}.{key}");
        let value = field(policy, key).ok_or_else(|| format!("{at}: missing"))?;
        // grpc-go reads a negative duration, then finds it not above 0.
        let negative = value.as_str().and_then(|t| t.strip_prefix('-'));
        let read = match negative {
            Some(rest) => duration(&Value::String(rest.to_owned()), &at).map(|_| Duration::ZERO)?,
            None => duration(value, &at)?,
        };
        if read.is_zero() {
            return Err(format!("{at}: must be above 0"));
        }
        Ok(read)
    };
    let initial = backoff("initialBackoff")?;
    let max = backoff("maxBackoff")?;
    let multiplier = field(policy, "backoffMultiplier")
        .ok_or_else(|| format!("{at}.backoffMultiplier: missing"))?
        .as_f64()
        .ok_or_else(|| format!("{at}.backoffMultiplier: not a number"))?;
    if multiplier <= 0.0 {
        return Err(format!(
            "{at}.backoffMultiplier: {multiplier} is not above 0"
        ));
    }
    let codes = match field(policy, "retryableStatusCodes") {
        Some(value) => codes(value, at, "retryableStatusCodes")?,
        None => Vec::new(),
    };
    if codes.is_empty() {
        return Err(format!("{at}.retryableStatusCodes: missing or empty"));
    }
    // A first wait above the cap is the cap, as in grpc-go.
    Ok(RetryPolicy::new(attempts.min(MAX_ATTEMPTS) as u32)
        .backoff(initial.min(max), max, multiplier)
        .retryable(codes))
}

/// A `hedgingPolicy`: `maxAttempts` required, `hedgingDelay` 0 and no non-fatal code unless set.
fn hedging(value: &Value, at: &str) -> Result<HedgingPolicy, String> {
    let policy = value
        .as_object()
        .ok_or_else(|| format!("{at}: not an object"))?;
    let attempts = attempts(policy, at)?;
    let delay = match field(policy, "hedgingDelay") {
        Some(value) => duration(value, &format!("{at}.hedgingDelay"))?,
        None => Duration::ZERO,
    };
    let non_fatal = match field(policy, "nonFatalStatusCodes") {
        Some(value) => codes(value, at, "nonFatalStatusCodes")?,
        None => Vec::new(),
    };
    Ok(HedgingPolicy::new(attempts, delay).non_fatal(non_fatal))
}

/// gRFC A6's cap on `maxAttempts`: more is read as this many, as grpc-go reads it.
const MAX_ATTEMPTS: u64 = 5;

/// `maxAttempts`: required, at least 2, capped at [`MAX_ATTEMPTS`].
fn attempts(policy: &Object, at: &str) -> Result<u32, String> {
    let attempts =
        integer(policy, "maxAttempts", at)?.ok_or_else(|| format!("{at}.maxAttempts: missing"))?;
    if attempts < 2 {
        return Err(format!("{at}.maxAttempts: {attempts} is under 2"));
    }
    // At most 5: it fits.
    Ok(attempts.min(MAX_ATTEMPTS) as u32)
}

/// Status codes by name (`"UNAVAILABLE"`) or number.
fn codes(value: &Value, at: &str, key: &str) -> Result<Vec<Code>, String> {
    let list = value
        .as_array()
        .ok_or_else(|| format!("{at}.{key}: not an array"))?;
    list.iter()
        .map(|code| {
            let found = match code {
                Value::String(name) => Code::ALL.into_iter().find(|c| c.as_str() == name),
                Value::Number(n) => n
                    .as_u64()
                    .and_then(|n| Code::ALL.into_iter().find(|c| *c as u64 == n)),
                _ => None,
            };
            found.ok_or_else(|| format!("{at}.{key}: {code} is not a status code"))
        })
        .collect()
}

/// A non-negative integer field, a JSON number as Go's `encoding/json` wants one for grpc-go's
/// integer fields: a string of digits (`"3"`, which protobuf's JSON mapping would take) is
/// refused, as there.
fn integer(object: &Object, key: &str, at: &str) -> Result<Option<u64>, String> {
    match field(object, key) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("{at}.{key}: {n} is not a non-negative integer")),
        Some(other) => Err(format!("{at}.{key}: {other} is not a JSON number")),
    }
}

/// An array field; absent (or `null`) is empty.
fn array<'a>(object: &'a Object, key: &str) -> Result<&'a [Value], String> {
    match field(object, key) {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(format!("{key}: not an array")),
    }
}

/// `key` of `object`, matched regardless of case as Go's `encoding/json` matches it (an exact
/// match first); `null` is absent.
fn field<'a>(object: &'a Object, key: &str) -> Option<&'a Value> {
    object
        .get(key)
        .or_else(|| {
            object
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        })
        .filter(|v| !v.is_null())
}

/// A method's `timeout`; a negative one is ignored, as grpc-go ignores it.
fn timeout(value: &Value, at: &str) -> Result<Option<Duration>, String> {
    if let Some(negative) = value.as_str().and_then(|t| t.strip_prefix('-')) {
        duration(&Value::String(negative.to_owned()), at)?;
        tracing::warn!("service config: {at}: a negative timeout is ignored");
        return Ok(None);
    }
    duration(value, at).map(Some)
}

/// protobuf's JSON `Duration` as grpc-go parses it: seconds with up to nine decimals and an `s`
/// (`"1.5s"`, `".5s"`, `"1.s"`, `"+1s"`), not negative.
fn duration(value: &Value, at: &str) -> Result<Duration, String> {
    let bad = || format!("{at}: {value} is not a duration such as \"1.5s\"");
    let text = value.as_str().ok_or_else(bad)?;
    let number = text.strip_suffix('s').ok_or_else(bad)?;
    let number = number.strip_prefix('+').unwrap_or(number);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty())
        || !digits(whole)
        || !digits(fraction)
        || fraction.len() > 9
    {
        return Err(bad());
    }
    // protobuf's largest Duration: 10,000 years.
    let secs: u64 = if whole.is_empty() {
        0
    } else {
        whole
            .parse()
            .ok()
            .filter(|s| *s <= 315_576_000_000)
            .ok_or_else(bad)?
    };
    let nanos = if fraction.is_empty() {
        0
    } else {
        let scale = 10u32.pow(9 - fraction.len() as u32);
        fraction.parse::<u32>().map_err(|_| bad())? * scale
    };
    Ok(Duration::new(secs, nanos))
}

/// `loadBalancingConfig` (the first policy sockrpc knows; none known is an error), else the
/// older `loadBalancingPolicy` (an unknown name is ignored, with a warning).
fn load_balancing(top: &Object) -> Result<Option<LoadBalancing>, String> {
    let known = |name: &str| match name {
        "pick_first" => Some(LoadBalancing::PickFirst),
        "round_robin" => Some(LoadBalancing::RoundRobin),
        _ => None,
    };
    let policies = array(top, "loadBalancingConfig")?;
    if !policies.is_empty() {
        let mut names = Vec::new();
        for (i, policy) in policies.iter().enumerate() {
            let policy = policy
                .as_object()
                .filter(|p| p.len() == 1)
                .ok_or_else(|| format!("loadBalancingConfig[{i}]: not an object of one policy"))?;
            for name in policy.keys() {
                if let Some(found) = known(name) {
                    return Ok(Some(found));
                }
                names.push(name.clone());
            }
        }
        return Err(format!(
            "loadBalancingConfig: no policy sockrpc knows among {names:?} (it knows pick_first and round_robin)"
        ));
    }
    match field(top, "loadBalancingPolicy") {
        None => Ok(None),
        Some(Value::String(name)) => {
            let found = known(&name.to_ascii_lowercase());
            if found.is_none() {
                tracing::warn!(policy = %name, "service config: unknown loadBalancingPolicy ignored");
            }
            Ok(found)
        }
        Some(_) => Err("loadBalancingPolicy: not a string".into()),
    }
}
