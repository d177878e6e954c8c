//! `sockrpc bench --call pkg.Svc/Method -d '{json}' --target ADDR`: the bench's rows on a
//! method of your own service (ghz-style), and `--rate N[,N…]`: open-loop load on it (see
//! [`open_loop`](super::open_loop)). Without `--call`, `--rate` loads the bench service's
//! `Echo` with the first `--payload` (on the embedded server, or `--target`).
//!
//! The method's descriptors come from the server's reflection service (with the extensions of
//! its message types declared in other files, as `call` has them) or from `--proto` files; the request is encoded once, and every call sends those bytes through the channel
//! with no codec, so what is measured is the service and the framework, not JSON.
//!
//! Closed loop (no `--rate`): one row per `--concurrency`, each task waiting for its answer
//! before the next call, as the built-in rows do. Open loop: one row per rate.

use super::open_loop::{self, Fire, OpenLoop};
use super::rows::measure;
use super::{compare, outputs, progress_bar, rate_plot, BenchArgs};
use crate::cmd::call::single_request;
use crate::cmd::dynamic::exit::Failure;
use crate::cmd::dynamic::invoke::Outgoing;
use crate::cmd::dynamic::{conn, source};
use crate::load::{run_calls_within, Budget, Caller, Tally};
use crate::report::{self, Group, Machine, Row, Setup};
use crate::server::Embedded;
use bytes::Bytes;
use prost::Message;
use sockrpc::{Channel, Endpoint};
use std::{error::Error, sync::Arc, time::Duration};

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest one open-loop rate may run, as `--duration` is bounded: a day.
const MAX_OPEN_LOOP: Duration = Duration::from_secs(86_400);

/// A name for a row: rows name themselves with `&'static str`, and a run makes a handful.
fn leak(name: String) -> &'static str {
    Box::leak(name.into_boxed_str())
}

/// The method under load: its name, path and encoded request.
struct Target {
    /// `package.Service/Method`.
    name: String,
    fire: Fire,
    request_bytes: usize,
}

/// One closed-loop task: calls, waits for the answer, calls again.
struct DynCaller {
    fire: Fire,
}

impl Caller for DynCaller {
    async fn round(&mut self, tally: &Tally) {
        let started = std::time::Instant::now();
        match (self.fire)().await {
            Ok(()) => tally.ok(started.elapsed()),
            Err(message) => tally.err(1, || message),
        }
    }
}

/// A call of `path` with `message` over `channel`, as a [`Fire`].
fn fire(channel: Channel, outgoing: Outgoing, message: Bytes) -> Fire {
    let outgoing = Arc::new(outgoing);
    Arc::new(move || {
        let (channel, outgoing, message) =
            (channel.clone(), Arc::clone(&outgoing), message.clone());
        Box::pin(async move {
            // As the built-in rows say it: `UNAVAILABLE: message`.
            let describe = |status: sockrpc::Status| crate::load::status_error(&status);
            let response = outgoing.once(&channel, message).await.map_err(describe)?;
            let (_, mut body, _) = response.into_parts();
            body.take_single().await.map_err(describe)?;
            Ok(())
        })
    })
}

/// Connects and prepares the method: `--call`'s (from reflection or `--proto`), or the bench
/// service's `Echo`.
async fn prepare(args: &BenchArgs, endpoint: Endpoint) -> Result<Target, Failure> {
    let endpoint = endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_size(args.connections)
        .calls_per_connection(args.calls_per_connection);
    let endpoint = match args.timeout {
        Some(timeout) => endpoint.timeout(timeout),
        None => endpoint,
    };
    let channel = Channel::connect(endpoint).await?;
    let metadata = conn::metadata(&args.header)?;
    let Some(text) = &args.call else {
        let payload = args.payload.first().copied().unwrap_or(64);
        let request = crate::proto::bench::Payload {
            body: Bytes::from(vec![0_u8; payload]),
        };
        let message = Bytes::from(request.encode_to_vec());
        let outgoing = Outgoing {
            path: "/sockrpc.bench.Bench/Echo".to_owned(),
            metadata,
            timeout: None,
            streaming_response: false,
        };
        return Ok(Target {
            name: "sockrpc.bench.Bench/Echo".to_owned(),
            request_bytes: message.len(),
            fire: fire(channel, outgoing, message),
        });
    };
    let method =
        source::resolve_method_from(&args.proto, &args.import_path, &channel, text).await?;
    let service = method.parent_service().full_name().to_owned();
    if method.is_client_streaming() || method.is_server_streaming() {
        return Err(Failure::Input(format!(
            "{text}: bench --call measures unary methods; this one streams"
        )));
    }
    let message = single_request(&method.input(), args.data.as_deref())?;
    let outgoing = Outgoing {
        path: format!("/{service}/{}", method.name()),
        metadata,
        timeout: None,
        streaming_response: false,
    };
    Ok(Target {
        name: format!("{service}/{}", method.name()),
        request_bytes: message.len(),
        fire: fire(channel, outgoing, message),
    })
}

/// A call-mode row before its first call: every call-mode row runs on one connection.
fn empty_row(name: &'static str, transport: &'static str, bytes: usize, concurrency: usize) -> Row {
    Row::empty(name, transport, bytes, concurrency, 1)
}

/// The open-loop run of one rate as a row.
fn open_row(run: &OpenLoop, target: &Target, transport: &'static str, cap: u64) -> Row {
    let mut row = empty_row(
        leak(format!("open-loop {}/s", run.rate)),
        transport,
        target.request_bytes,
        usize::try_from(cap).unwrap_or(usize::MAX),
    );
    row.note = Some(format!(
        "asked {:.0}/s, achieved {:.1}/s; {} of {} slots sent, {} dropped (cap {cap} in flight, \
         peak {}{}); send lag p50 {} µs, max {} µs; latency from the scheduled send{}",
        run.rate,
        run.achieved_rate,
        run.sent,
        run.slots,
        run.dropped,
        run.peak_in_flight,
        match run.late {
            0 => String::new(),
            late => format!(
                "; {late} of them never sent: the client was still {} s behind its schedule at \
                 its end (it cannot send this rate)",
                open_loop::LATE_LIMIT.as_secs()
            ),
        },
        run.median_send_lag.as_micros(),
        run.max_send_lag.as_micros(),
        run.first_error
            .as_ref()
            .map_or_else(String::new, |first| format!("; first error: {first}")),
    ));
    row.max_in_flight = Some(cap);
    row.hist = run.hist.clone();
    row.errors = run.errors;
    row.elapsed = run.elapsed;
    if row.hist.is_empty() {
        // As a closed-loop row says it, with the first error.
        row.failed = Some(format!(
            "no call succeeded ({} failed, {} slots dropped{})",
            run.errors,
            run.dropped,
            run.first_error
                .as_ref()
                .map_or_else(String::new, |first| format!(", first: {first}"))
        ));
    }
    row
}

/// Adds each open-loop run's figures to its row in the JSON report at `path`.
fn annotate(report: &mut serde_json::Value, runs: &[OpenLoop], method: &str) {
    report["setup"]["method"] = serde_json::Value::from(method);
    if let Some(rows) = report["rows"].as_array_mut() {
        for row in rows {
            let found = runs
                .iter()
                .find(|run| row["name"] == format!("open-loop {}/s", run.rate));
            if let Some(run) = found {
                row["open_loop"] = serde_json::json!({
                    "asked_rps": run.rate,
                    "achieved_rps": (run.achieved_rate * 1000.0).round() / 1000.0,
                    "slots": run.slots,
                    "sent": run.sent,
                    "dropped_slots": run.dropped,
                    "late_slots": run.late,
                    "peak_in_flight": run.peak_in_flight,
                    "median_send_lag_us": u64::try_from(run.median_send_lag.as_micros()).unwrap_or(u64::MAX),
                    "max_send_lag_us": u64::try_from(run.max_send_lag.as_micros()).unwrap_or(u64::MAX),
                });
            }
        }
    }
}

/// How long one open-loop rate runs: `--duration`, or `--calls` spread at `rate`, at most
/// [`MAX_OPEN_LOOP`]. `--calls 18446744073709551615 --rate 1` made a time past what a
/// `Duration` holds, and the conversion panicked once the server had started.
fn open_loop_time(budget: Budget, rate: f64) -> Result<Duration, String> {
    match budget {
        Budget::Time(time) => Ok(time),
        Budget::Calls(calls) => Duration::try_from_secs_f64(calls as f64 / rate)
            .ok()
            .filter(|time| *time <= MAX_OPEN_LOOP)
            .ok_or_else(|| {
                format!(
                    "--calls {calls} at --rate {rate} calls/s would run for over a day: give \
                     fewer --calls or a higher --rate (or --duration)"
                )
            }),
    }
}

/// Runs `sockrpc bench --call` / `--rate`.
pub(super) fn run(args: &BenchArgs, saved: Option<&compare::Saved>) -> Result<(), Box<dyn Error>> {
    if let Some(calls) = args.calls {
        for &rate in &args.rate {
            open_loop_time(Budget::Calls(calls), rate)?;
        }
    }
    let embedded = match &args.target {
        Some(_) => None,
        None => Some(Embedded::start(
            args.server_workers,
            false,
            false,
            None,
            false,
        )?),
    };
    let endpoint = match (&args.target, &embedded) {
        (Some(target), _) => conn::endpoint(
            target,
            args.tls_ca.as_deref(),
            args.tls_cert.as_deref(),
            args.tls_key.as_deref(),
            args.tls_server_name.as_deref(),
        )
        .map_err(|failure| failure.to_string())?,
        (None, Some(server)) => {
            let addr = server
                .bound()
                .rpc
                .ok_or("the embedded server has no TCP address")?;
            Endpoint::new(addr.ip().to_string(), addr.port())
        }
        (None, None) => return Err("no server to call".into()),
    };
    // A unix: --target's calls go over the Unix socket, as the built-in rows over it say.
    let transport = if endpoint.unix_path.is_some() {
        "uds"
    } else if endpoint.is_tls() {
        "tls"
    } else {
        "tcp"
    };
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let target = client
        .block_on(prepare(args, endpoint.clone()))
        .map_err(|failure| failure.to_string())?;
    let budget = args.budget();
    crate::out::outln!(
        "sockrpc bench: {} at {}, request {} B",
        target.name,
        match &args.target {
            Some(target) => target.clone(),
            None => format!("{endpoint} (embedded server)"),
        },
        target.request_bytes
    );
    crate::out::outln!();
    let progress = progress_bar();
    let plan = super::plan::Plan {
        budget,
        warmup: args.warmup,
        connections: args.connections,
        calls_per_connection: args.calls_per_connection,
        idle_connections: args.idle_connections,
        rounds: 1,
        embedded: false,
        timeout: args.timeout,
    };
    let setup = || {
        Setup::new(
            args.target.clone().unwrap_or_else(|| "embedded".to_owned()),
            args.target.is_none().then_some(args.server_workers),
            budget,
            args.warmup,
            1,
        )
    };
    // A --json run stopped by Ctrl-C or SIGTERM writes the tables (closed loop) or the rates
    // (open loop) it finished, marked partial, as the built-in rows do: it wrote nothing.
    let finished = super::partial::Finished::new(args.json.as_ref(), setup())?;
    let mut groups = Vec::new();
    let mut runs = Vec::new();
    if args.rate.is_empty() {
        for &concurrency in &args.concurrency {
            let mut row = empty_row(
                leak(target.name.clone()),
                transport,
                target.request_bytes,
                concurrency,
            );
            row.connections = args.connections.min(concurrency);
            let callers: Vec<DynCaller> = (0..concurrency)
                .map(|_| DynCaller {
                    fire: Arc::clone(&target.fire),
                })
                .collect();
            let row = client.block_on(measure(Ok(callers), row, &plan, &progress));
            let group = Group {
                payload_bytes: target.request_bytes,
                concurrency,
                rows: vec![row],
                skipped: Vec::new(),
            };
            progress.suspend(|| crate::out::outln!("{}", report::table(&group, &plan.describe())));
            finished.push(group);
        }
    } else {
        if args.warmup > 0 {
            progress.reset();
            progress.set_length(args.warmup);
            progress.set_message("warmup (closed loop)");
            let warm = vec![DynCaller {
                fire: Arc::clone(&target.fire),
            }];
            // As long as one rate then runs (--duration), or 10 s with --calls, at most.
            let bound = super::rows::warmup_bound(budget);
            let (_, phase) = client.block_on(run_calls_within(warm, args.warmup, bound, &progress));
            let made = phase.hist.len() + phase.errors;
            if let Some(note) = super::rows::warmup_cut(args.warmup, made, bound) {
                crate::out::errln!("sockrpc bench: {note}");
            }
        }
        for &rate in &args.rate {
            let time = open_loop_time(budget, rate)?;
            progress.reset();
            progress.set_length(u64::try_from(time.as_millis()).unwrap_or(u64::MAX));
            progress.set_message(format!("open loop {rate}/s"));
            runs.push(client.block_on(open_loop::run(
                Arc::clone(&target.fire),
                rate,
                time,
                args.max_in_flight,
                args.spin,
                &progress,
            )));
            if let Some(run) = runs.last() {
                finished.push(Group {
                    payload_bytes: target.request_bytes,
                    concurrency: usize::try_from(args.max_in_flight).unwrap_or(usize::MAX),
                    rows: vec![open_row(run, &target, transport, args.max_in_flight)],
                    skipped: Vec::new(),
                });
            }
        }
        for warning in runs
            .iter()
            .filter_map(|run| open_loop::cap_warning(run, args.max_in_flight))
        {
            progress.suspend(|| crate::out::errln!("sockrpc bench: {warning}"));
        }
        let kept = runs
            .iter()
            .map(|run| open_row(run, &target, transport, args.max_in_flight))
            .collect();
        let group = Group {
            payload_bytes: target.request_bytes,
            concurrency: usize::try_from(args.max_in_flight).unwrap_or(usize::MAX),
            rows: kept,
            skipped: Vec::new(),
        };
        let title = format!(
            "open loop (calls sent on a schedule), request {} B, {} per rate, at most {} calls \
             in flight (--max-in-flight)",
            target.request_bytes,
            match budget {
                Budget::Time(time) => format!("{} s", time.as_secs_f64()),
                Budget::Calls(calls) => format!("{calls} calls"),
            },
            args.max_in_flight
        );
        progress.suspend(|| crate::out::outln!("{}", report::titled_table(&group, &title)));
        groups.push(group);
    }
    // From here an interrupt writes nothing: the run writes its own report. The closed loop's
    // tables are those kept; the open loop's rates are one table, made above.
    let kept = finished.take();
    if args.rate.is_empty() {
        groups = kept;
    }
    progress.finish_and_clear();
    drop(client);
    if let Some(server) = embedded {
        server.stop()?;
    }
    if let Some(path) = &args.json {
        outputs::write_file(path, || {
            let mut report = report::json_report(&Machine::this(), &setup(), &groups)?;
            annotate(&mut report, &runs, &target.name);
            report::write_value(path, &report)
        })?;
    }
    // After the report: a sweep none of whose calls was answered has nothing to draw, and that
    // error returned before the report was written (and the failed rates were named).
    let rate_plotted = match &args.rate_plot {
        Some(path) => outputs::write_file(path, || rate_plot::write_svg(path, &target.name, &runs)),
        None => Ok(()),
    };
    match (outputs::finish(args, &groups, saved), rate_plotted) {
        (Ok(()), plotted) => Ok(plotted?),
        (Err(failed), Ok(())) => Err(failed),
        (Err(failed), Err(plot)) => Err(format!("{failed}\n{plot}").into()),
    }
}
