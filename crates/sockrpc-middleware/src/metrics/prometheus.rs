//! Prometheus: a recorder for the layer's metrics and a `/metrics` endpoint that serves its text
//! (feature `prometheus`).
//!
//! Why not the exporter's own HTTP listener: it brings hyper, hyper-util and (for its push
//! gateway) rustls, for what is one GET answered with one body. The endpoint here is a few dozen
//! lines over tokio: it reads a request head (bounded in size and time), answers `GET /metrics`
//! (and `HEAD`) with the rendered text, anything else with 404 or 405, and closes the
//! connection. Writing the answer is bounded in time too: a scraper that stops reading gives up
//! its slot after [`WRITE_TIMEOUT`] (with none, sixteen such scrapers stopped the endpoint for
//! as long as they stayed connected).

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use std::{future::Future, io, sync::Arc, time::Duration};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Bucket bounds of the call-duration histograms, in seconds: from 10 µs (a loopback call) to
/// 10 s, so both sides of a fast call and a slow one land in buckets that tell them apart.
pub const DURATION_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Bucket bounds of the duration histograms under gRFC A66's names, in seconds: A66's own,
/// so that quantiles match those of grpc-go's, grpc-java's and C++'s servers on one dashboard.
pub const A66_LATENCY_BUCKETS: &[f64] = &[
    0.0, 0.000_01, 0.000_05, 0.000_1, 0.000_3, 0.000_6, 0.000_8, 0.001, 0.002, 0.003, 0.004, 0.005,
    0.006, 0.008, 0.01, 0.013, 0.016, 0.02, 0.025, 0.03, 0.04, 0.05, 0.065, 0.08, 0.1, 0.13, 0.16,
    0.2, 0.25, 0.3, 0.4, 0.5, 0.65, 0.8, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0,
];

/// Bucket bounds of the message-size histograms, in bytes: gRPC's (proposal A66), from 1 KiB
/// to 4 GiB by powers of four; also those of the byte totals under A66's names.
pub const SIZE_BUCKETS: &[f64] = &[
    0.0,
    1024.0,
    2048.0,
    4096.0,
    16_384.0,
    65_536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
    268_435_456.0,
    1_073_741_824.0,
    4_294_967_296.0,
];

/// Bucket bounds of the messages-per-call histograms: gRPC's (proposal A66), 0, 1, then powers
/// of two to 65,536.
pub const COUNT_BUCKETS: &[f64] = &[
    0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0,
    16_384.0, 32_768.0, 65_536.0,
];

/// Longest request head the endpoint reads.
const MAX_HEAD: usize = 8 * 1024;

/// How long a scraper may take to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Scrapes served at once; further connections wait to be accepted.
const MAX_SCRAPES: usize = 16;

/// How long a scraper may take to read its answer: Prometheus' default scrape timeout. Past
/// it the connection is dropped, and its slot goes to the next scraper.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A Prometheus builder set up for sockrpc's metrics: call durations, message sizes and
/// messages per call as histograms with [`DURATION_BUCKETS`], [`SIZE_BUCKETS`] and
/// [`COUNT_BUCKETS`] (without buckets the exporter renders a histogram as a summary, whose
/// quantiles cannot be summed across servers), and Prometheus' naming (`_total` on counters,
/// the unit in the name: `rpc_server_call_duration_seconds`, `rpc_server_request_size_bytes`).
/// The same for gRFC A66's names ([`MetricNames::GrpcA66`](super::MetricNames)), with A66's
/// buckets: [`A66_LATENCY_BUCKETS`] and [`SIZE_BUCKETS`] (`grpc_server_call_duration_seconds`,
/// `grpc_client_attempt_sent_total_compressed_message_size_bytes`).
pub fn builder() -> PrometheusBuilder {
    let mut buckets: Vec<(&str, &[f64])> = Vec::new();
    for names in [&super::names::SERVER, &super::names::CLIENT] {
        buckets.extend([
            (names.duration, DURATION_BUCKETS),
            (names.request_size, SIZE_BUCKETS),
            (names.response_size, SIZE_BUCKETS),
            (names.requests_per_rpc, COUNT_BUCKETS),
            (names.responses_per_rpc, COUNT_BUCKETS),
        ]);
    }
    for names in [&super::names::A66_SERVER, &super::names::A66_CLIENT] {
        buckets.extend([
            (names.duration, A66_LATENCY_BUCKETS),
            (names.sent_total, SIZE_BUCKETS),
            (names.rcvd_total, SIZE_BUCKETS),
        ]);
        if let Some(call_duration) = names.call_duration {
            buckets.push((call_duration, A66_LATENCY_BUCKETS));
        }
    }
    let mut builder = PrometheusBuilder::new().with_recommended_naming(true);
    for (name, buckets) in buckets {
        builder = match builder.set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets) {
            Ok(builder) => builder,
            Err(_) => unreachable!("the bucket lists are not empty"),
        };
    }
    builder
}

/// Installs [`builder`]'s recorder as the process's global `metrics` recorder, and returns the
/// handle that renders it. Fails if a global recorder is installed already.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    builder().install_recorder()
}

/// Serves `handle`'s text at `/metrics` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    serve_within(listener, handle, shutdown, WRITE_TIMEOUT).await
}

/// [`serve`], with `write_timeout` for [`WRITE_TIMEOUT`].
async fn serve_within(
    listener: TcpListener,
    handle: PrometheusHandle,
    shutdown: impl Future<Output = ()>,
    write_timeout: Duration,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(MAX_SCRAPES));
    tokio::pin!(shutdown);
    loop {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return Ok(());
        };
        let accepted = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let handle = handle.clone();
                tokio::spawn(async move {
                    let _ = answer(stream, &handle, write_timeout).await;
                    drop(permit);
                });
            }
            // A failed accept (out of descriptors, a connection reset in the backlog) is no
            // reason to stop serving; pause so an exhausted process does not spin.
            Err(err) => {
                tracing::debug!(error = %err, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Whether `head` holds a whole request head: up to its empty line, after lines ended by CRLF
/// or, as HTTP/1.1 lets a server accept (RFC 9112, section 2.2) and `printf ... | nc` sends,
/// by a bare LF.
fn head_complete(head: &[u8]) -> bool {
    head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n")
}

/// Reads one request head and answers it within `write_timeout`; the connection closes after.
async fn answer(
    mut stream: TcpStream,
    handle: &PrometheusHandle,
    write_timeout: Duration,
) -> io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let read = tokio::time::timeout(READ_TIMEOUT, async {
        let mut chunk = [0u8; 1024];
        while !head_complete(&head) && head.len() < MAX_HEAD {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&chunk[..n]);
        }
        Ok::<(), io::Error>(())
    })
    .await;
    if !matches!(read, Ok(Ok(()))) {
        return Ok(());
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            handle.run_upkeep();
            ("200 OK", handle.render())
        }
        ("GET" | "HEAD", _) => ("404 Not Found", "not found; try /metrics\n".to_owned()),
        _ => ("405 Method Not Allowed", "only GET and HEAD\n".to_owned()),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        response.push_str(&body);
    }
    let written = tokio::time::timeout(write_timeout, async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
    written.unwrap_or_else(|_| {
        tracing::debug!(
            bytes = response.len(),
            "metrics endpoint: the scraper did not read its answer within {write_timeout:?}"
        );
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answer to `request`, read for at most 3 s (a head the endpoint does not see whole
    /// is answered only by its 5 s read timeout, with nothing).
    async fn ask(request: &[u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let handle = builder().build_recorder().handle();
        tokio::spawn(serve(listener, handle, std::future::pending()));
        let answer = answer_to(addr, request, Duration::from_secs(3)).await;
        String::from_utf8_lossy(&answer).into_owned()
    }

    /// What the endpoint at `addr` answers `request` on a new connection, read to its end
    /// within `within`.
    async fn answer_to(addr: std::net::SocketAddr, request: &[u8], within: Duration) -> Vec<u8> {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(request).await.expect("request");
        let mut answer = Vec::new();
        tokio::time::timeout(within, stream.read_to_end(&mut answer))
            .await
            .expect("answered in time")
            .expect("read");
        answer
    }

    /// A handle whose page is about 1 MB: more than a socket with small buffers at both ends
    /// takes before its reader reads.
    fn large_page() -> PrometheusHandle {
        let recorder = builder().build_recorder();
        let handle = recorder.handle();
        ::metrics::with_local_recorder(&recorder, || {
            for i in 0..1000 {
                let value = format!("{i:04}{}", "x".repeat(1000));
                ::metrics::counter!("large_page_total", "series" => value).increment(1);
            }
        });
        handle
    }

    #[tokio::test]
    async fn scrapers_that_stop_reading_give_their_slots_up() {
        // Accepted sockets take the listener's small send buffer: what a scraper does not read
        // stays with the endpoint's write.
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_send_buffer_size(4096).expect("send buffer");
        let any = "127.0.0.1:0".parse().expect("address");
        socket.bind(any).expect("bind");
        let listener = socket.listen(64).expect("listen");
        let addr = listener.local_addr().expect("local address");
        // Long enough for the last scraper to read the whole page through its small buffers.
        let write_timeout = Duration::from_secs(2);
        let handle = large_page();
        let page = handle.render().len();
        let serving = serve_within(listener, handle, std::future::pending(), write_timeout);
        tokio::spawn(serving);
        let request = b"GET /metrics HTTP/1.1\r\n\r\n";
        // The first slot frees a write timeout after its scraper was accepted, not before.
        let started = tokio::time::Instant::now();
        let mut stalled = Vec::new();
        for _ in 0..MAX_SCRAPES {
            let socket = tokio::net::TcpSocket::new_v4().expect("socket");
            socket.set_recv_buffer_size(4096).expect("receive buffer");
            let mut stream = socket.connect(addr).await.expect("connect");
            stream.write_all(request).await.expect("request");
            stalled.push(stream);
        }
        // Every slot is taken by a scraper that never reads; the next one is served once their
        // writes time out.
        let answer = answer_to(addr, request, Duration::from_secs(20)).await;
        // Not before: the page did not fit their buffers, so they held every slot until then.
        let waited = started.elapsed();
        assert!(waited >= write_timeout, "served after {waited:?}");
        let answer = String::from_utf8_lossy(&answer);
        let head = &answer[..answer.len().min(100)];
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        let body = answer
            .split_once("\r\n\r\n")
            .map_or(0, |(_, body)| body.len());
        assert_eq!(body, page, "the whole page");
        drop(stalled);
    }

    #[tokio::test]
    async fn request_heads_with_crlf_or_bare_lf_lines_are_answered() {
        let crlf = ask(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n").await;
        assert!(crlf.starts_with("HTTP/1.1 200 OK\r\n"), "{crlf}");
        let lf = ask(b"GET /metrics HTTP/1.0\nHost: test\n\n").await;
        assert!(lf.starts_with("HTTP/1.1 200 OK\r\n"), "{lf}");
        let other = ask(b"GET / HTTP/1.0\n\n").await;
        assert!(other.starts_with("HTTP/1.1 404"), "{other}");
    }
}
