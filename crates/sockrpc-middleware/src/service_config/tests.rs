use super::*;
use bytes::Bytes;
use sockrpc_protocol::{Code, MethodPath, Request, Response, Status};
use sockrpc_service::{Body, Call, ConfigDefaults};
use std::sync::Mutex;
use tower::ServiceExt;
use tower_layer::Layer;

const CONFIG: &str = r#"{
  "methodConfig": [
    {"name": [{"service": "shop.Orders", "method": "Get"}, {"service": "shop.Stock"}],
     "timeout": "2.5s", "waitForReady": true,
     "retryPolicy": {"maxAttempts": 4, "initialBackoff": "0.01s", "maxBackoff": "0.1s",
                     "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE", 14]}},
    {"name": [{"service": "shop.Orders", "method": "Place"}], "timeout": "0.000000001s"},
    {"name": [{"service": "shop.Prices"}],
     "hedgingPolicy": {"maxAttempts": 3, "hedgingDelay": "0.05s",
                       "nonFatalStatusCodes": ["UNAVAILABLE"]}},
    {"name": [{}], "timeout": "30s",
     "retryPolicy": {"maxAttempts": 2, "initialBackoff": "1s", "maxBackoff": "1s",
                     "backoffMultiplier": 1, "retryableStatusCodes": ["UNAVAILABLE"]}}
  ],
  "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.5},
  "loadBalancingConfig": [{"weighted_target_experimental": {}}, {"round_robin": {}}]
}"#;

#[test]
fn entries_apply_by_method_then_service_then_default() {
    let config = ServiceConfig::from_json(CONFIG).expect("valid");
    let get = config.method_config("/shop.Orders/Get").expect("Get");
    assert_eq!(get.timeout, Some(Duration::from_millis(2500)));
    assert_eq!(get.wait_for_ready, Some(true));
    assert_eq!(get.retry.as_ref().map(|r| r.max_attempts()), Some(4));
    // The whole service shares the entry; other services of the package do not.
    assert_eq!(config.method_config("/shop.Stock/Count"), Some(get));
    let place = config.method_config("/shop.Orders/Place").expect("Place");
    assert_eq!(place.timeout, Some(Duration::from_nanos(1)));
    assert!(
        place.retry.is_none(),
        "entries do not merge with the default"
    );
    let other = config
        .method_config("/shop.Orders/Cancel")
        .expect("default");
    assert_eq!(other.timeout, Some(Duration::from_secs(30)));
    assert_eq!(config.load_balancing(), Some(LoadBalancing::RoundRobin));
    assert!(config.retry_throttle().is_some());
    assert!(ServiceConfig::from_json("{}")
        .expect("empty")
        .method_config("/a.B/C")
        .is_none());
}

#[test]
fn configs_grpc_go_refuses_are_refused_with_the_field() {
    let cases = [
        ("[]", "not a JSON object"),
        ("{", "not JSON"),
        (
            r#"{"methodConfig": [{"name": [{"service": "a.B"}]}, {"name": [{"service": "a.B"}]}]}"#,
            "configured twice",
        ),
        (
            r#"{"methodConfig": [{"name": [{}]}, {"name": [{"service": ""}]}]}"#,
            "configured twice",
        ),
        (
            r#"{"methodConfig": [{"name": [{"method": "Get"}]}]}"#,
            "without its service",
        ),
        (
            r#"{"methodConfig": [{"name": [{}], "timeout": "1.5"}]}"#,
            "timeout",
        ),
        (
            r#"{"methodConfig": [{"name": [{}], "timeout": "1.0000000001s"}]}"#,
            "timeout",
        ),
        (
            r#"{"methodConfig": [{"name": [{}], "timeout": "s"}]}"#,
            "timeout",
        ),
        (
            r#"{"methodConfig": [{"name": [{}], "timeout": 1}]}"#,
            "timeout",
        ),
        (
            r#"{"methodConfig": [{"name": [{}], "waitForReady": "yes"}]}"#,
            "waitForReady",
        ),
        (
            r#"{"retryThrottling": {"maxTokens": 0, "tokenRatio": 0.1}}"#,
            "maxTokens",
        ),
        (
            r#"{"retryThrottling": {"maxTokens": 1001, "tokenRatio": 0.1}}"#,
            "maxTokens",
        ),
        (r#"{"retryThrottling": {"maxTokens": 10}}"#, "tokenRatio"),
        (
            r#"{"retryThrottling": {"maxTokens": 10, "tokenRatio": 0}}"#,
            "tokenRatio",
        ),
        (
            r#"{"retryThrottling": {"maxTokens": "10", "tokenRatio": 0.1}}"#,
            "maxTokens",
        ),
        (
            r#"{"loadBalancingConfig": [{"grpclb": {}}]}"#,
            "no policy sockrpc knows",
        ),
    ];
    for (json, want) in cases {
        let err = ServiceConfig::from_json(json).expect_err(json);
        assert!(err.to_string().contains(want), "{json}: {err}");
    }
    // The older field, in either case; an unknown name there is ignored.
    let old = ServiceConfig::from_json(r#"{"loadBalancingPolicy": "ROUND_ROBIN"}"#).expect("ok");
    assert_eq!(old.load_balancing(), Some(LoadBalancing::RoundRobin));
    let unknown = ServiceConfig::from_json(r#"{"loadBalancingPolicy": "grpclb"}"#).expect("ok");
    assert_eq!(unknown.load_balancing(), None);
}

#[test]
fn retry_policies_are_read_as_grpc_go_reads_them() {
    let policy = |fields: &str| {
        format!(
            r#"{{"methodConfig": [{{"name": [{{"service": "a.B"}}], "timeout": "2s", "retryPolicy": {{{fields}}}}}]}}"#
        )
    };
    let good = r#""initialBackoff": "0.1s", "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]"#;
    // A policy that breaks gRFC A6's rules, or that grpc-go cannot read at all, refuses the
    // whole config, as grpc-go since 1.70 (A21): a field missing, `maxAttempts` under 2, a
    // backoff or multiplier not above 0, no codes; a status code it does not know (names are
    // upper case), a malformed duration, a number given as a string.
    for refused in [
        format!(r#""maxAttempts": 1, {good}"#),
        format!(r#""maxAttempts": -1, {good}"#),
        format!(r#""maxAttempts": 0, {good}"#),
        format!(r#""maxAttempts": "3", {good}"#),
        format!(r#""maxAttempts": 3.5, {good}"#),
        good.to_owned(),
        r#""maxAttempts": 3, "initialBackoff": "0s", "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]"#.to_owned(),
        r#""maxAttempts": 3, "initialBackoff": "1s", "maxBackoff": "0s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]"#.to_owned(),
        r#""maxAttempts": 3, "initialBackoff": "1s", "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": []"#.to_owned(),
        r#""maxAttempts": 3, "initialBackoff": "-1s", "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]"#.to_owned(),
        r#""maxAttempts": 3, "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]"#.to_owned(),
        r#""maxAttempts": 3, "initialBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]"#.to_owned(),
        r#""maxAttempts": 3, "initialBackoff": "1s", "maxBackoff": "1s", "backoffMultiplier": 0, "retryableStatusCodes": ["UNAVAILABLE"]"#.to_owned(),
        r#""maxAttempts": 3, "initialBackoff": "1s", "maxBackoff": "1s", "backoffMultiplier": -2, "retryableStatusCodes": ["UNAVAILABLE"]"#.to_owned(),
        r#""maxAttempts": 3, "initialBackoff": "1s", "maxBackoff": "1s", "retryableStatusCodes": ["UNAVAILABLE"]"#.to_owned(),
        r#""maxAttempts": 3, "initialBackoff": "1s", "maxBackoff": "1s", "backoffMultiplier": 2"#.to_owned(),
        r#""maxAttempts": 3, "initialBackoff": "1s", "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["SOMETIMES"]"#.to_owned(),
        r#""maxAttempts": 3, "initialBackoff": "1s", "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["unavailable"]"#.to_owned(),
        r#""maxAttempts": 3, "initialBackoff": "abc", "maxBackoff": "1s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]"#.to_owned(),
        r#""maxAttempts": 3, "initialBackoff": "1s", "maxBackoff": "1s", "backoffMultiplier": "2", "retryableStatusCodes": ["UNAVAILABLE"]"#.to_owned(),
    ] {
        let json = policy(&refused);
        let refused = ServiceConfig::from_json(&json).expect_err(&json);
        assert!(refused.to_string().contains("retryPolicy"), "{refused}");
    }
    // What A6 allows reads: two attempts, a first wait above the cap (the cap), codes by number.
    let json = policy(
        r#""maxAttempts": 2, "initialBackoff": "3s", "maxBackoff": "1s", "backoffMultiplier": 1, "retryableStatusCodes": [14, "ABORTED"]"#,
    );
    let config = ServiceConfig::from_json(&json).expect(&json);
    let retry = config.method_config("/a.B/C").and_then(|m| m.retry.clone());
    let want = RetryPolicy::new(2)
        .backoff(Duration::from_secs(1), Duration::from_secs(1), 1.0)
        .retryable([Code::Unavailable, Code::Aborted]);
    assert_eq!(retry, Some(want));
    // Integers elsewhere are JSON numbers too; a hedging policy grpc-go does not read is left
    // out when it breaks A6's rules, its entry's other fields kept.
    let json = r#"{"methodConfig": [{"name": [{}], "maxRequestMessageBytes": "1024"}]}"#;
    let refused = ServiceConfig::from_json(json).expect_err(json);
    assert!(
        refused.to_string().contains("maxRequestMessageBytes"),
        "{refused}"
    );
    for broken in [
        r#"{"maxAttempts": 1}"#,
        r#"{"maxAttempts": "3"}"#,
        r#"{"maxAttempts": 3, "hedgingDelay": "1"}"#,
    ] {
        let json = format!(
            r#"{{"methodConfig": [{{"name": [{{}}], "timeout": "2s", "hedgingPolicy": {broken}}}]}}"#
        );
        let config = ServiceConfig::from_json(&json).expect(&json);
        let entry = config.method_config("/a.B/C").expect("the entry");
        assert!(entry.hedging.is_none(), "{json}");
        assert_eq!(entry.timeout, Some(Duration::from_secs(2)), "{json}");
    }
    // Both policies: the retry policy stays, the hedging policy goes.
    let both = format!(
        r#"{{"methodConfig": [{{"name": [{{}}], "retryPolicy": {{"maxAttempts": 3, {good}}}, "hedgingPolicy": {{"maxAttempts": 2}}}}]}}"#
    );
    let config = ServiceConfig::from_json(&both).expect("both");
    let entry = config.method_config("/a.B/C").expect("default");
    assert!(entry.retry.is_some() && entry.hedging.is_none());
    // Keys in any case, nulls, nameless entries, Go's duration forms, fractional tokens.
    let loose = r#"{
      "MethodConfig": [
        {"timeout": "bogus"},
        {"name": [{"service": "a.B", "method": null}], "Timeout": ".5s", "waitForReady": null,
         "retryPolicy": null},
        {"name": [{"service": "c.D"}], "timeout": "+1.s"},
        {"name": [{"service": "e.F"}], "timeout": "-1s"}
      ],
      "retryThrottling": {"maxTokens": 2.5, "tokenRatio": 0.1},
      "loadBalancingConfig": null
    }"#;
    let config = ServiceConfig::from_json(loose).expect("loose but valid");
    let ab = config.method_config("/a.B/X").expect("a.B");
    assert_eq!(ab.timeout, Some(Duration::from_millis(500)));
    assert_eq!(ab.wait_for_ready, None);
    assert_eq!(
        config.method_config("/c.D/X").and_then(|m| m.timeout),
        Some(Duration::from_secs(1))
    );
    assert_eq!(
        config.method_config("/e.F/X").map(|m| m.timeout),
        Some(None),
        "a negative timeout is ignored"
    );
    assert!(config.retry_throttle().is_some());
    assert_eq!(config.load_balancing(), None);
}

#[test]
fn max_attempts_over_five_reads_as_five() {
    let json = r#"{"methodConfig": [
      {"name": [{"service": "a.B"}],
       "retryPolicy": {"maxAttempts": 10, "initialBackoff": "0.1s", "maxBackoff": "1s",
                       "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}},
      {"name": [{"service": "c.D"}], "hedgingPolicy": {"maxAttempts": 6}},
      {"name": [{"service": "e.F"}], "hedgingPolicy": {"maxAttempts": 3}}
    ]}"#;
    let config = ServiceConfig::from_json(json).expect("valid");
    let entry = |path| config.method_config(path).expect("an entry");
    let retry = entry("/a.B/X")
        .retry
        .as_ref()
        .map(RetryPolicy::max_attempts);
    let hedging = |path| {
        entry(path)
            .hedging
            .as_ref()
            .map(HedgingPolicy::max_attempts)
    };
    assert_eq!(retry, Some(5));
    assert_eq!(hedging("/c.D/X"), Some(5));
    assert_eq!(hedging("/e.F/X"), Some(3));
}

/// What one attempt looked like to the service under the layer.
#[derive(Debug, Clone, PartialEq)]
struct Attempt {
    path: String,
    timeout: Option<Duration>,
    /// The call's own choice.
    wait_for_ready: Option<bool>,
    /// What the config left for the channel.
    defaults: Option<ConfigDefaults>,
}

/// Runs one call to `path` through the config's layer over a service that always fails
/// `UNAVAILABLE`; every attempt the service saw.
async fn attempts(config: &ServiceConfig, path: &'static str, call: Call) -> Vec<Attempt> {
    assert_eq!(call.path(), path);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let inner = tower::service_fn(move |call: Call| {
        record.lock().expect("lock").push(Attempt {
            path: call.path().to_owned(),
            timeout: call.request().timeout(),
            wait_for_ready: call.request().wait_for_ready(),
            defaults: call.request().extensions().get::<ConfigDefaults>().copied(),
        });
        async { Err::<Response<Body>, Status>(Status::unavailable("down")) }
    });
    let err = config
        .layer()
        .layer(inner)
        .oneshot(call)
        .await
        .expect_err("always down");
    assert_eq!(err.code(), Code::Unavailable);
    let seen = seen.lock().expect("lock").clone();
    seen
}

fn call(path: &'static str) -> Call {
    Call::new(
        MethodPath::from_static(path),
        Request::new(Body::once(Bytes::from_static(b"x"))),
    )
}

#[tokio::test(start_paused = true)]
async fn the_layer_retries_hedges_and_sets_deadlines_per_entry() {
    let config = ServiceConfig::from_json(CONFIG).expect("valid");
    // Get: 4 attempts, its 2.5 s timeout and wait-for-ready on each.
    let get = attempts(&config, "/shop.Orders/Get", call("/shop.Orders/Get")).await;
    assert_eq!(get.len(), 4, "{get:?}");
    assert_eq!(get[0].wait_for_ready, None, "left to the channel");
    assert_eq!(get[0].defaults, Some(ConfigDefaults::new(true, Some(true))));
    assert!(get
        .iter()
        .all(|a| a.timeout <= Some(Duration::from_millis(2500))));
    // Place has an entry of its own without a policy: one attempt, not the default's two.
    let place = attempts(&config, "/shop.Orders/Place", call("/shop.Orders/Place")).await;
    assert_eq!(place.len(), 1, "{place:?}");
    assert_eq!(place[0].defaults, Some(ConfigDefaults::new(true, None)));
    // Cancel falls to the default entry: two attempts.
    let cancel = attempts(&config, "/shop.Orders/Cancel", call("/shop.Orders/Cancel")).await;
    assert_eq!(cancel.len(), 2, "{cancel:?}");
    // A service's hedging policy: three copies.
    let price = attempts(&config, "/shop.Prices/Quote", call("/shop.Prices/Quote")).await;
    assert_eq!(price.len(), 3, "{price:?}");
    assert!(price.iter().all(|a| a.path == "/shop.Prices/Quote"));
}

#[tokio::test(start_paused = true)]
async fn the_call_keeps_a_shorter_deadline_and_its_own_wait_choice() {
    let config = ServiceConfig::from_json(CONFIG).expect("valid");
    let mut own = call("/shop.Orders/Place");
    own.request_mut().set_timeout(Duration::from_secs(1));
    own.request_mut().set_wait_for_ready(false);
    let seen = attempts(&config, "/shop.Orders/Place", own).await;
    // The config's 1 ns is shorter than the call's 1 s; the call set its own, so the
    // endpoint's default does not apply (as without a config).
    assert_eq!(seen[0].timeout, Some(Duration::from_nanos(1)));
    assert_eq!(seen[0].defaults, None);
    // A `grpc-timeout` entry is no timeout of the caller's own: the endpoint's still applies.
    let mut entry = call("/shop.Orders/Place");
    entry
        .request_mut()
        .metadata_mut()
        .insert_str(sockrpc_protocol::GRPC_TIMEOUT_KEY, "10S")
        .expect("ascii");
    let seen = attempts(&config, "/shop.Orders/Place", entry).await;
    assert_eq!(seen[0].timeout, Some(Duration::from_nanos(1)));
    assert_eq!(seen[0].defaults, Some(ConfigDefaults::new(true, None)));
    let mut own = call("/shop.Orders/Get");
    own.request_mut().set_timeout(Duration::from_millis(300));
    own.request_mut().set_wait_for_ready(false);
    let seen = attempts(&config, "/shop.Orders/Get", own).await;
    assert!(
        seen[0].timeout <= Some(Duration::from_millis(300)),
        "{seen:?}"
    );
    assert_eq!(
        seen[0].wait_for_ready,
        Some(false),
        "the call's choice wins"
    );
    assert_eq!(
        seen[0].defaults, None,
        "the call's 300 ms and its own choice"
    );
    // No entry at all: the call passes through untouched, once.
    let empty = ServiceConfig::from_json("{}").expect("empty");
    let seen = attempts(&empty, "/a.B/C", call("/a.B/C")).await;
    assert_eq!(
        seen,
        vec![Attempt {
            path: "/a.B/C".into(),
            timeout: None,
            wait_for_ready: None,
            defaults: None,
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn a_config_timeout_counts_from_when_the_caller_started_the_call() {
    let config = ServiceConfig::from_json(CONFIG).expect("valid");
    let mut own = call("/shop.Orders/Get");
    own.request_mut().set_timeout(Duration::from_secs(10));
    // Fixed as a generated client fixes it, before encoding; then 1 s passes (encoding).
    let started = tokio::time::Instant::now();
    own.request_mut().fix_deadline();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let deadlines = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&deadlines);
    let inner = tower::service_fn(move |call: Call| {
        record.lock().expect("lock").push(call.request().deadline());
        async { Ok::<_, Status>(Response::new(Body::once(Bytes::from_static(b"ok")))) }
    });
    config
        .layer()
        .layer(inner)
        .oneshot(own)
        .await
        .expect("answered");
    // Get's 2.5 s from the call's start, not from when the layer saw it.
    let seen = deadlines.lock().expect("lock").clone();
    assert_eq!(seen, [Some(started + Duration::from_millis(2500))]);
}
