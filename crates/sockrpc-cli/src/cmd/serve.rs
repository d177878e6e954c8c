//! `sockrpc serve`: the benchmark service and the raw echoes, for runs across processes or
//! machines.
//!
//! The raw UDP echo runs only with `--raw-udp`: it answers whatever address a datagram claims to
//! come from, which makes an open one a reflector for forged datagrams. Even then it never
//! answers a datagram that claims to come from its own address, which would otherwise bounce
//! between the echo and itself for ever (the rule: [`crate::raw::from_itself`]).
//!
//! The raw TCP and TLS echoes always run, beside the sockrpc service and in its process, so they
//! are bounded as a server must be (`crate::raw_echo`): a frame of at most 4 MiB, due within 30 s
//! of its first byte, unfinished frames charged to a budget the connections share, at most 4096
//! connections.
//!
//! With `--metrics ADDR` the sockrpc listeners run the middleware stack ([`crate::stack`]) and
//! Prometheus text is served over HTTP at `http://ADDR/metrics`: calls started and finished,
//! durations, in-flight calls and bytes, per method and status code.

use crate::server::{Listen, Sockets, TlsListen, DEFAULT_WORKERS};
use clap::Args;
use sockrpc::tls::{Certificates, Identity, ServerTls, ServerTlsConfig, TlsFiles};
use sockrpc_middleware::metrics::prometheus;
use std::{error::Error, io::Write, net::SocketAddr, path::PathBuf, time::Duration};

/// How often `serve` reads its TLS files for a rotated certificate.
const TLS_WATCH: Duration = Duration::from_secs(5);

/// `sockrpc serve` flags.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address of the sockrpc Bench service (port 0: any free port); over TLS with --tls-cert.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    tcp: SocketAddr,
    /// Serve the Bench service over TLS on --tcp, with this certificate chain (PEM, leaf first;
    /// `openssl req -x509` output works as it is). The files are read again every 5 s and a
    /// changed pair is served to new connections, with no restart.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, RSA or EC).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// With --tls-cert: require clients to present a certificate that chains to (or is) one in
    /// this PEM file (mutual TLS).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    client_ca: Option<PathBuf>,
    /// With --tls-cert: address of the raw TLS echo, the TLS floor [default: the --tcp host,
    /// any free port].
    #[arg(long, value_name = "ADDR", requires = "tls_cert")]
    raw_tls: Option<SocketAddr>,
    /// Address of the raw TCP echo [default: the --tcp host, any free port].
    #[arg(long, value_name = "ADDR")]
    raw: Option<SocketAddr>,
    /// Also serve the raw UDP echo on this address (for `bench --raw-udp-target`; port 0: any
    /// free port). Off unless asked: it answers any source a datagram claims. It never answers
    /// one from its own port and address (or loopback; with an unspecified address, from any
    /// address on its own port), which would make it echo itself for ever.
    #[arg(long, value_name = "ADDR")]
    raw_udp: Option<SocketAddr>,
    /// Also serve the Bench service on a Unix socket at this path (for `bench --uds-target`, or
    /// `bench --target unix:///ABSOLUTE/PATH`). A stale socket file there is replaced; any other
    /// file is left alone and is an error. The socket file is removed on exit. On Linux,
    /// `unix-abstract:NAME` serves on that abstract socket instead: a name, no file.
    #[arg(long, value_name = "PATH", value_parser = crate::uds::parse)]
    uds: Option<PathBuf>,
    /// Also serve the Bench service over UDP on this address (for `bench --udp-target`): small
    /// unary calls, one datagram each way, beside the TCP listener (port 0: any free port).
    #[arg(long, value_name = "ADDR")]
    udp: Option<SocketAddr>,
    /// Serve Prometheus metrics over HTTP at http://ADDR/metrics (port 0: any free port), and run
    /// the sockrpc listeners behind the tracing and metrics layers.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Worker threads of the server runtime (1 to 1024; 0 is taken as 1).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_WORKERS, value_parser = parse_workers)]
    workers: usize,
    /// Make every unary Bench answer wait this long first (`5ms`, `1.5s`, `250us`): a slow
    /// server, to see how `bench --balance` spreads calls.
    #[arg(long, value_name = "DURATION", value_parser = parse_delay, default_value = "0ms")]
    delay: Duration,

    /// Send each connection away (GOAWAY) once it is this old, ±10 % (gRPC's
    /// `MAX_CONNECTION_AGE`: `30m`, `1h`, `90s`), so clients reconnect through DNS and their
    /// balancer; its calls in flight finish. Default: never.
    #[arg(long, value_name = "DURATION", value_parser = parse_age)]
    pub(crate) max_connection_age: Option<Duration>,

    /// With --max-connection-age: how long calls still running on a connection sent away may
    /// take before it is closed under them (gRPC's `MAX_CONNECTION_AGE_GRACE`). Default: as long
    /// as they take.
    #[arg(long, value_name = "DURATION", value_parser = parse_age, requires = "max_connection_age")]
    pub(crate) max_connection_age_grace: Option<Duration>,
}

/// Parses `250us`, `5ms`, `1.5s` (at most a minute).
fn parse_delay(text: &str) -> Result<Duration, String> {
    parse_duration(text, 60.0)
}

/// Parses a connection age, `500ms` to `30d`-ish in `ms`, `s`, `m`, `h` (at most 30 days, at
/// least a millisecond).
fn parse_age(text: &str) -> Result<Duration, String> {
    let age = parse_duration(text, 30.0 * 86_400.0)?;
    if age < Duration::from_millis(1) {
        return Err(format!("{text:?}: must be at least 1ms"));
    }
    Ok(age)
}

/// Parses a number and a unit (`us`, `ms`, `s`, `m`, `h`), between 0 and `max_secs`.
fn parse_duration(text: &str, max_secs: f64) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| c.is_ascii_alphabetic())
        .map_or((text, ""), |i| text.split_at(i));
    let value: f64 = number
        .trim_end()
        .parse()
        .map_err(|e| format!("{text:?}: want a number and a unit (us, ms, s, m, h): {e}"))?;
    let secs = match unit {
        "us" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("{text:?}: the unit must be us, ms, s, m or h")),
    };
    if !(0.0..=max_secs).contains(&secs) {
        return Err(format!("{text:?}: must be between 0 and {max_secs} s"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The most worker threads a runtime of ours is given: past a machine's thread limit the
/// runtime cannot start, and a huge count would only hold the machine's other processes back.
pub(crate) const MAX_WORKERS: usize = 1024;

/// A count of worker threads, 0 to [`MAX_WORKERS`] (0 is taken as 1 where it is used).
pub(crate) fn parse_workers(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n <= MAX_WORKERS => Ok(n),
        Ok(n) => Err(format!("{n} workers is over the most, {MAX_WORKERS}")),
        Err(err) => Err(format!("{text:?}: {err}")),
    }
}

/// Runs `sockrpc serve` until Ctrl-C or SIGTERM.
pub(crate) fn run(args: ServeArgs) -> Result<(), Box<dyn Error>> {
    log_to_stderr();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers.max(1))
        .enable_all()
        .build()?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let mut config = ServerTlsConfig::new(Identity::from_pem_files(cert, key)?);
            let mut files = TlsFiles::new(cert, key);
            if let Some(ca) = &args.client_ca {
                config = config.client_ca(Certificates::from_pem_file(ca)?);
                files = files.client_ca(ca);
            }
            Some((ServerTls::new(config)?, files))
        }
        _ => None,
    };
    runtime.block_on(async {
        let _watch = tls
            .as_ref()
            .map(|(server, files)| server.watch(files.clone(), TLS_WATCH));
        let listen = Listen {
            rpc: tls.is_none().then_some(args.tcp),
            tls: tls.as_ref().map(|(server, _)| TlsListen {
                rpc: args.tcp,
                raw: args.raw_tls.unwrap_or(SocketAddr::new(args.tcp.ip(), 0)),
                server: server.clone(),
            }),
            raw_tcp: args.raw.unwrap_or(SocketAddr::new(args.tcp.ip(), 0)),
            raw_udp: args.raw_udp,
            uds: args.uds,
            udp: args.udp,
            stack: None,
            observe: args.metrics.is_some(),
            delay: args.delay,
            max_connection_age: args.max_connection_age,
            max_connection_age_grace: args.max_connection_age_grace,
        };
        // The recorder first, so the layers register their handles with it.
        let metrics = match args.metrics {
            Some(addr) => {
                let handle = prometheus::install()?;
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|err| format!("cannot bind the metrics endpoint {addr}: {err}"))?;
                Some((listener, handle))
            }
            None => None,
        };
        let sockets = Sockets::bind(listen).await?;
        let bound = sockets.bound()?;
        // Scripts and tests read this line to learn the ports: print it whole, then flush, since
        // stdout is block-buffered when it is a pipe.
        let mut out = std::io::stdout().lock();
        match (bound.rpc, bound.tls, bound.raw_tls) {
            (_, Some(tls), Some(raw_tls)) => write!(
                out,
                "listening tls={tls} raw={} raw-tls={raw_tls}",
                bound.raw_tcp
            )?,
            (Some(rpc), _, _) => write!(out, "listening tcp={rpc} raw={}", bound.raw_tcp)?,
            _ => write!(out, "listening raw={}", bound.raw_tcp)?,
        }
        if let Some(addr) = bound.raw_udp {
            write!(out, " raw-udp={addr}")?;
        }
        if let Some(path) = &bound.uds {
            write!(out, " uds={}", crate::uds::show(path))?;
        }
        if let Some(addr) = bound.udp {
            write!(out, " udp={addr}")?;
        }
        if let Some((listener, _)) = &metrics {
            write!(out, " metrics={}", listener.local_addr()?)?;
        }
        writeln!(out)?;
        out.flush()?;
        drop(out);
        let endpoint = metrics.map(|(listener, handle)| {
            tokio::spawn(prometheus::serve(listener, handle, std::future::pending()))
        });
        let served = sockets.serve(stop_signal()).await;
        if let Some(endpoint) = endpoint {
            endpoint.abort();
        }
        served?;
        Ok::<(), Box<dyn Error>>(())
    })?;
    // The runtime drops here; raw echo connections still open are dropped with it.
    Ok(())
}

/// Completes on Ctrl-C (SIGINT) or, on Unix, SIGTERM. A signal that cannot be listened for is
/// left out rather than taken as a request to stop.
pub(crate) async fn stop_signal() {
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

/// Logs warnings to stderr (`RUST_LOG` picks another level or filter): why a connection was
/// closed (a protocol error, no preface or a frame not finished in time, a handshake that
/// failed), a client refused at the connection cap, a failed `accept`, TLS refusals (a
/// plain-text client, bytes that are not TLS, no ALPN `sockrpc/1`, a certificate refused, a
/// handshake not finished in time). Each kind comes at most once every 10 s, the next one
/// saying how many were left at DEBUG, so a port scanner or a flood of bad connections does not
/// flood the log. Without a subscriber the library's logs go nowhere. At WARN the `debug!`s on
/// a call's path stay one load and compare each, as with no subscriber.
fn log_to_stderr() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
