//! One row: connect its callers (raw sockets, or one sockrpc channel they share), warm up on
//! them, measure, and note what the numbers alone do not say (how the pool spread the calls,
//! which transport carried them).

use super::plan::{Kind, Plan, Targets, MAX_SOCKRPC_UDP_PAYLOAD};
use crate::load::{run_calls_within, run_phase, Budget, Caller};
use crate::proto::{bench::bench_client::BenchClient, RpcCaller, StreamCaller};
use crate::raw::{RawTcp, RawTcpPipelined, RawUdp};
use crate::raw_tls::RawTls;
use crate::report::Row;
use crate::stack;
use indicatif::ProgressBar;
use sockrpc::{Channel, Endpoint, Status};
use std::time::Duration;

/// How long a sockrpc row waits for its pool to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a warmup may run when rows run for `--calls` rather than `--duration`.
const WARMUP_BOUND_WITH_CALLS: Duration = Duration::from_secs(10);

/// The longest a warmup runs, whatever `--warmup` asks: as long as the row then measures for
/// (`--duration`), or [`WARMUP_BOUND_WITH_CALLS`] with `--calls`. A huge `--warmup` with a short
/// `--duration` otherwise ran for hours before measuring a tenth of a second.
pub(super) fn warmup_bound(budget: Budget) -> Duration {
    match budget {
        Budget::Time(time) => time,
        Budget::Calls(_) => WARMUP_BOUND_WITH_CALLS,
    }
}

/// The note for a warmup its time bound ended early, or `None`. The bound is a round's share
/// of the row's time, so it is written to the millisecond ("0.067 s", not "0.066666666 s").
pub(super) fn warmup_cut(asked: u64, made: u64, bound: Duration) -> Option<String> {
    (made < asked).then(|| {
        let secs = format!("{:.3}", bound.as_secs_f64());
        let secs = secs.trim_end_matches('0').trim_end_matches('.');
        format!("warmup ended at its {secs} s bound after {made} of {asked} calls")
    })
}

/// Connects `count` callers to the raw echo at `addr`, one after another; an error names the
/// address (a bare "Connection refused" left the user to guess which echo refused).
async fn connect_all<C, F, Fut>(
    addr: std::net::SocketAddr,
    count: usize,
    connect: F,
) -> Result<Vec<C>, String>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<C>>,
{
    let mut callers = Vec::with_capacity(count);
    for index in 0..count {
        callers.push(
            connect(index)
                .await
                .map_err(|err| format!("the raw echo at {addr}: {err}"))?,
        );
    }
    Ok(callers)
}

fn describe(status: &Status) -> String {
    crate::load::status_error(status)
}

/// Opens one `PingPong` stream per task on the shared channel, one after another, each within
/// [`CONNECT_TIMEOUT`]: a server takes a bounded number of calls per connection (4096 by
/// default), and a stream past it waits for a slot that its open siblings never free. The first
/// stream has no sibling: when it does not open, the server did not answer (one that accepts
/// and says nothing, as `nc -l`), and the call limit was the wrong thing to blame.
async fn open_streams(
    client: &BenchClient,
    count: usize,
    payload: usize,
) -> Result<Vec<StreamCaller>, String> {
    let mut callers = Vec::with_capacity(count);
    for index in 0..count {
        let open = StreamCaller::open(client.clone(), payload);
        let caller = tokio::time::timeout(CONNECT_TIMEOUT, open)
            .await
            .map_err(|_| {
                let why = match index {
                    0 => "the server did not answer it (is it a sockrpc server?)",
                    _ => {
                        "the server takes no more calls on the pool's connections (try more \
                         --connections)"
                    }
                };
                format!(
                    "stream {} of {count} not open within {} s: {why}",
                    index + 1,
                    CONNECT_TIMEOUT.as_secs()
                )
            })?
            .map_err(|status| format!("cannot open the stream: {}", describe(&status)))?;
        callers.push(caller);
    }
    Ok(callers)
}

/// Runs the row `kind` at one payload and concurrency.
pub(super) async fn run_row(
    kind: Kind,
    targets: &Targets,
    plan: &Plan,
    payload: usize,
    concurrency: usize,
    progress: &ProgressBar,
) -> Row {
    // The stream row runs on the base endpoint: a unix: --target's Unix socket, then.
    let transport = match kind {
        Kind::SockrpcStream if targets.over_unix() => Kind::SockrpcUds.transport(),
        _ => kind.transport(),
    };
    let mut row = Row::empty(kind.name(), transport, payload, concurrency, concurrency);
    let missing = || "no address".to_owned();
    match kind {
        Kind::RawTcp => {
            if concurrency > 1 {
                row.note = Some(format!(
                    "{concurrency} connections, one call in flight on each (raw TCP cannot \
                     multiplex)"
                ));
            }
            let callers = match targets.raw_tcp {
                Some(addr) => {
                    connect_all(addr, concurrency, |_| RawTcp::connect(addr, payload)).await
                }
                None => Err(missing()),
            };
            measure(callers, row, plan, progress).await
        }
        Kind::RawTcpPipelined => {
            row.connections = 1;
            row.note = Some(format!(
                "one connection: {concurrency} requests written back to back, then \
                 {concurrency} echoes read"
            ));
            let callers = match targets.raw_tcp {
                Some(addr) => {
                    connect_all(addr, 1, |_| {
                        RawTcpPipelined::connect(addr, payload, concurrency)
                    })
                    .await
                }
                None => Err(missing()),
            };
            measure(callers, row, plan, progress).await
        }
        Kind::RawUdp => {
            let callers = match targets.raw_udp {
                Some(addr) => {
                    connect_all(addr, concurrency, |_| RawUdp::connect(addr, payload)).await
                }
                None => Err(missing()),
            };
            measure(callers, row, plan, progress).await
        }
        Kind::RawTls => {
            if concurrency > 1 {
                row.note = Some(format!(
                    "{concurrency} TLS sessions, one call in flight on each (raw TLS cannot \
                     multiplex)"
                ));
            }
            let host = targets
                .tls
                .as_ref()
                .map_or("localhost", |endpoint| endpoint.host.as_str());
            let callers = match &targets.raw_tls {
                Some((addr, tls)) => {
                    connect_all(*addr, concurrency, |_| {
                        RawTls::connect(*addr, tls, host, payload)
                    })
                    .await
                }
                None => Err(missing()),
            };
            measure(callers, row, plan, progress).await
        }
        Kind::SockrpcTcp
        | Kind::SockrpcTls
        | Kind::SockrpcUds
        | Kind::SockrpcUdp
        | Kind::SockrpcAuto
        | Kind::SockrpcStream
        | Kind::SockrpcStack
        | Kind::SockrpcGzip
        | Kind::SockrpcZstd => run_sockrpc(kind, targets, plan, row, progress).await,
        Kind::SockrpcIdle | Kind::SockrpcUdsIdle => {
            let endpoint = match kind {
                Kind::SockrpcUdsIdle => &targets.uds,
                _ => &targets.rpc,
            };
            let idle = match endpoint {
                Some(endpoint) => super::idle::open(endpoint, plan).await,
                None => Err(missing()),
            };
            match idle {
                Ok(idle) => {
                    let mut row = run_sockrpc(kind, targets, plan, row, progress).await;
                    add_note(&mut row, idle.describe());
                    drop(idle);
                    row
                }
                Err(message) => {
                    row.errors = 1;
                    let why = format!("not measured: {message}");
                    add_note(&mut row, why.clone());
                    row.failed = Some(why);
                    row
                }
            }
        }
    }
}

/// A sockrpc row: one channel, every task's client a clone sharing its pool.
async fn run_sockrpc(
    kind: Kind,
    targets: &Targets,
    plan: &Plan,
    mut row: Row,
    progress: &ProgressBar,
) -> Row {
    let (payload, concurrency) = (row.payload_bytes, row.concurrency);
    let endpoint = match kind {
        Kind::SockrpcUds | Kind::SockrpcUdsIdle => targets.uds.clone(),
        Kind::SockrpcUdp | Kind::SockrpcAuto => targets.udp.and_then(|udp| targets.with_udp(udp)),
        Kind::SockrpcTls => targets.tls.clone(),
        Kind::SockrpcStack => targets.stack.clone(),
        Kind::SockrpcGzip | Kind::SockrpcZstd => targets
            .compressed
            .iter()
            .find(|(encoding, _)| Some(*encoding) == kind.encoding())
            .map(|(_, endpoint)| endpoint.clone()),
        Kind::SockrpcTcp | Kind::SockrpcIdle => targets.rpc.clone(),
        _ => targets.base().cloned(),
    };
    row.connections = match kind {
        // One UDP socket carries every call; the pool's one TCP connection stands by for
        // fallback.
        Kind::SockrpcUdp => 1,
        // More connections than calls in flight would never carry a call.
        _ => plan.connections.min(concurrency),
    };
    let channel = match endpoint {
        Some(endpoint) => connect(endpoint, row.connections, plan).await,
        None => Err("no address".to_owned()),
    };
    let client = channel
        .as_ref()
        .map(|channel| match kind.encoding() {
            // Requests compress once the first answer says the server takes the encoding:
            // the warmup calls teach it.
            Some(encoding) => BenchClient::new(channel.clone())
                .send_compressed(encoding)
                .accept_compressed(encoding),
            None => BenchClient::new(channel.clone()),
        })
        .map_err(Clone::clone);
    if let Some(encoding) = kind.encoding() {
        row.note = Some(format!(
            "per-message {encoding} both ways (payload of one repeated byte)"
        ));
    }
    let mut row = match kind {
        Kind::SockrpcStream => {
            row.note = Some(if concurrency == 1 {
                "one bidirectional stream, one message in flight".to_owned()
            } else {
                format!("{concurrency} bidirectional streams, one per task, one message in flight on each")
            });
            let callers = match &client {
                Ok(client) => open_streams(client, concurrency, payload).await,
                Err(message) => Err(message.clone()),
            };
            measure(callers, row, plan, progress).await
        }
        Kind::SockrpcStack => {
            row.note = Some(
                "client: trace, retry, metrics; server: trace, concurrency limit, metrics; \
                 tracing at INFO into a subscriber that drops, metrics into a Prometheus \
                 recorder"
                    .to_owned(),
            );
            let callers = channel.as_ref().map_err(Clone::clone).map(|channel| {
                let client = BenchClient::new(stack::client(channel));
                (0..concurrency)
                    .map(|_| RpcCaller::new(client.clone(), payload))
                    .collect()
            });
            measure(callers, row, plan, progress).await
        }
        _ => {
            let callers = client.map(|client| {
                (0..concurrency)
                    .map(|_| RpcCaller::new(client.clone(), payload))
                    .collect()
            });
            measure(callers, row, plan, progress).await
        }
    };
    if let Ok(channel) = &channel {
        match kind {
            Kind::SockrpcUdp | Kind::SockrpcAuto => {
                let stream = if targets.over_unix() {
                    "the Unix socket"
                } else {
                    "TCP"
                };
                note_udp(&mut row, channel, kind, plan, stream)
            }
            _ => note_pool(&mut row, channel),
        }
    }
    row
}

/// A channel to `endpoint` with a pool of `pool` connections, connected now.
async fn connect(endpoint: Endpoint, pool: usize, plan: &Plan) -> Result<Channel, String> {
    let endpoint = endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_size(pool)
        .calls_per_connection(plan.calls_per_connection);
    let endpoint = match plan.timeout {
        Some(timeout) => endpoint.timeout(timeout),
        None => endpoint,
    };
    Channel::connect(endpoint)
        .await
        .map_err(|status| status.message().to_owned())
}

/// Notes how the pool spread the calls, when it has more than one connection (or has fewer than
/// it was asked for).
fn note_pool(row: &mut Row, channel: &Channel) {
    let stats = channel.connection_stats();
    if row.connections <= 1 && stats.len() == row.connections {
        return;
    }
    let spread: Vec<String> = stats
        .iter()
        .map(|conn| conn.calls_started.to_string())
        .collect();
    // With none live (the server closed them, or never spoke sockrpc) there is no spread to
    // give: the note ended in "warmup included: " and nothing.
    let note = match spread.as_slice() {
        [] => format!("pool of {}, none live at the end", row.connections),
        _ => format!(
            "pool of {}, {} live at the end; calls started per connection, warmup included: {}",
            row.connections,
            stats.len(),
            spread.join(" / ")
        ),
    };
    add_note(row, note);
}

/// Notes which transport carried the calls of a UDP-enabled row, from the channel's UDP
/// counters: a UDP reply per call means UDP carried it; any call without one went over the
/// channel's stream, `stream` (TCP; with a unix: --target, the Unix socket): too large,
/// truncated, or in fallback after loss.
fn note_udp(row: &mut Row, channel: &Channel, kind: Kind, plan: &Plan, stream: &str) {
    // Every call the row made on this channel: the warmup's and the measured ones, either way.
    let made = plan.warmup + row.calls() + row.errors;
    let Some(stats) = channel.udp_stats() else {
        add_note(
            row,
            format!("UDP could not be set up: every call went over {stream}"),
        );
        return;
    };
    let detail = format!(
        "UDP: {} calls sent, {} replies, {} retransmits, {} truncations, {} fallbacks, {} not \
         suitable ({} of them past the window of a slow call; {} such calls retransmitted \
         early), {} refused unrun by a full reply cache (then sent over {stream}), {} deadline \
         exceeded, {} cookie requests",
        stats.calls,
        stats.replies,
        stats.retransmits,
        stats.truncations,
        stats.fallbacks,
        stats.not_suitable,
        stats.window_full,
        stats.hurried,
        stats.refused,
        stats.deadline_exceeded,
        stats.cookie_requests,
    );
    // A refusal is a REPLY too, but the call's answer came over TCP.
    let answered = stats.replies.saturating_sub(stats.refused);
    // A call whose deadline passed while it waited for its datagram's reply went nowhere else:
    // it is not one TCP carried (`--timeout` shorter than a call made this say "the rest over
    // TCP" of calls that all went over UDP and expired there).
    let expired = stats.deadline_exceeded;
    let over_tcp = made.saturating_sub(answered).saturating_sub(expired);
    let verdict = if answered >= made {
        format!("all {made} calls (warmup included) answered over UDP")
    } else if over_tcp == 0 {
        format!(
            "UDP carried all {made} calls (warmup included): {answered} answered, {expired} \
             past their deadline waiting for a reply"
        )
    } else if answered == 0 && row.payload_bytes > MAX_SOCKRPC_UDP_PAYLOAD {
        format!(
            "{stream} carried all {made} calls: a {} B request does not fit a datagram",
            row.payload_bytes
        )
    } else if kind == Kind::SockrpcUdp {
        format!(
            "NOT ALL OVER UDP: only {answered} of {made} calls answered over UDP, {over_tcp} \
             over {stream}, {expired} past their deadline on UDP"
        )
    } else {
        format!(
            "UDP answered {answered} of {made} calls, {stream} carried {over_tcp}, {expired} past \
             their deadline on UDP"
        )
    };
    add_note(row, format!("{verdict} ({detail})"));
}

/// Appends `note` to the row's note.
pub(super) fn add_note(row: &mut Row, note: String) {
    row.note = Some(match row.note.take() {
        Some(old) => format!("{old}; {note}"),
        None => note,
    });
}

/// Warms up, then measures, on the same callers.
pub(super) async fn measure<C: Caller>(
    callers: Result<Vec<C>, String>,
    mut row: Row,
    plan: &Plan,
    progress: &ProgressBar,
) -> Row {
    let label = format!("{} {} B ×{}", row.name, row.payload_bytes, row.concurrency);
    let mut callers = match callers {
        Ok(callers) => callers,
        Err(message) => {
            row.errors = row.concurrency as u64;
            let why = format!("could not connect: {message}");
            add_note(&mut row, why.clone());
            row.failed = Some(why);
            return row;
        }
    };
    if plan.warmup > 0 {
        progress.reset();
        progress.set_length(plan.warmup);
        progress.set_message(format!("{label} (warmup)"));
        let bound = warmup_bound(plan.budget);
        let (warm, phase) = run_calls_within(callers, plan.warmup, bound, progress).await;
        if !phase.stalled {
            let made = phase.hist.len() + phase.errors;
            if let Some(note) = warmup_cut(plan.warmup, made, bound) {
                add_note(&mut row, note);
            }
        }
        let first = phase.first_error.unwrap_or_default();
        if phase.errors > 0 {
            add_note(
                &mut row,
                format!("{} errors during warmup, first: {first}", phase.errors),
            );
        }
        if phase.stalled {
            row.errors = phase.errors;
            row.failed = Some(format!("stalled during warmup: {first}"));
            return row;
        }
        callers = warm;
    }
    progress.reset();
    progress.set_length(match plan.budget {
        Budget::Calls(calls) => calls,
        Budget::Time(time) => u64::try_from(time.as_millis()).unwrap_or(u64::MAX),
    });
    progress.set_message(label);
    let (_callers, phase) = run_phase(callers, plan.budget, progress).await;
    row.hist = phase.hist;
    row.errors = phase.errors;
    row.elapsed = phase.elapsed;
    if let Some(first) = &phase.first_error {
        add_note(&mut row, format!("first error: {first}"));
    }
    if row.hist.is_empty() {
        // Dashes in every column and a zero exit would read as a run that went well.
        row.failed = Some(format!(
            "no call succeeded ({} failed{})",
            row.errors,
            phase
                .first_error
                .map_or_else(String::new, |first| format!(", first: {first}"))
        ));
    }
    row
}
