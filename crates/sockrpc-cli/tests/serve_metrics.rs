//! `sockrpc serve --metrics ADDR`: the first line names the metrics endpoint, and scraping
//! `http://ADDR/metrics` shows the calls the server answered, by method and status code.

mod support;

use bytes::Bytes;
use sockrpc::{Body, Call, Channel, Code, MethodPath, Request};
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
};
use support::{listed, listed_addr, serve, Duration};
use tower::ServiceExt;

/// `GET path` over HTTP/1.1; the status line and the body.
fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, body.to_owned())
}

/// The value of the sample of `metric` whose labels include all of `labels`.
fn sample(text: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with(&format!("{metric}{{")))
        .find(|line| {
            labels
                .iter()
                .all(|(key, value)| line.contains(&format!("{key}=\"{value}\"")))
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// Calls `/sockrpc.bench.Bench/{method}` with a `Payload` of `body`; the code it ends with.
async fn call(channel: &Channel, method: &'static str, body: &'static [u8]) -> Code {
    let path = match method {
        "Echo" => "/sockrpc.bench.Bench/Echo",
        _ => "/sockrpc.bench.Bench/NoSuchMethod",
    };
    // `Payload { bytes body = 1; }`, encoded by hand: tag, length, bytes.
    let mut message = vec![0x0a, body.len() as u8];
    message.extend_from_slice(body);
    let call = Call::new(
        MethodPath::from_static(path),
        Request::new(Body::once(Bytes::from(message))),
    );
    match channel.clone().oneshot(call).await {
        Ok(response) => {
            let _ = response.into_inner().single().await;
            Code::Ok
        }
        Err(status) => status.code(),
    }
}

#[test]
fn serve_metrics_endpoint_shows_calls_by_method_and_code() {
    let (_server, line) = serve(&["--tcp", "127.0.0.1:0", "--metrics", "127.0.0.1:0"]);
    assert!(line.starts_with("listening tcp="), "{line:?}");
    let rpc = listed_addr(&line, "tcp");
    let metrics = listed_addr(&line, "metrics");
    assert_ne!(
        metrics.port(),
        0,
        "the bound port, not the one asked for: {line:?}"
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let channel = Channel::connect(rpc).await.expect("connect");
        for _ in 0..5 {
            assert_eq!(call(&channel, "Echo", b"hello").await, Code::Ok);
        }
        for _ in 0..2 {
            assert_eq!(
                call(&channel, "NoSuchMethod", b"x").await,
                Code::Unimplemented
            );
        }
    });

    let (status, text) = get(metrics, "/metrics");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let bench = ("rpc_service", "sockrpc.bench.Bench");
    let echo_ok = [
        bench,
        ("rpc_method", "Echo"),
        ("rpc_sockrpc_status_code", "OK"),
    ];
    let unknown = [
        bench,
        ("rpc_method", "NoSuchMethod"),
        ("rpc_sockrpc_status_code", "UNIMPLEMENTED"),
    ];
    let finished = "rpc_server_call_finished_total";
    assert_eq!(sample(&text, finished, &echo_ok), Some(5.0), "{text}");
    assert_eq!(sample(&text, finished, &unknown), Some(2.0), "{text}");
    let durations = "rpc_server_call_duration_seconds_count";
    assert_eq!(sample(&text, durations, &echo_ok), Some(5.0), "{text}");
    let started = "rpc_server_call_started_total";
    assert_eq!(
        sample(&text, started, &[bench, ("rpc_method", "Echo")]),
        Some(5.0),
        "{text}"
    );
    // Five requests of 7 bytes (the payload's tag, length and 5 bytes), each a sample.
    let echo = [bench, ("rpc_method", "Echo")];
    let received = "rpc_server_request_size_bytes_sum";
    assert_eq!(sample(&text, received, &echo), Some(35.0), "{text}");
    let requests = "rpc_server_request_size_bytes_count";
    assert_eq!(sample(&text, requests, &echo), Some(5.0), "{text}");

    let (status, _) = get(metrics, "/elsewhere");
    assert!(status.starts_with("HTTP/1.1 404"), "{status}");
}

#[test]
fn serve_without_metrics_prints_no_metrics_address() {
    let (_server, line) = serve(&["--tcp", "127.0.0.1:0"]);
    assert!(listed(&line, "metrics").is_none(), "{line:?}");
}
