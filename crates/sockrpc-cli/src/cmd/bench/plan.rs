//! The plan of a run: how every row runs, where the rows connect, and which rows a group of one
//! payload and concurrency has (and which it skips, and why).

use super::rows::{add_note, run_row};
use super::{BenchArgs, Transport};
use crate::load::Budget;
use crate::raw::MAX_UDP_PAYLOAD;
use crate::raw_echo;
use crate::report::{Group, Row, FLOOR};
use crate::server::Bound;
use indicatif::ProgressBar;
use sockrpc::tls::ClientTlsConfig;
use sockrpc::transport::UdpPolicy;
use sockrpc::CompressionEncoding;
use sockrpc::Endpoint;
use std::net::SocketAddr;

/// Largest payload the sockrpc-udp row sends. A sockrpc datagram carries more than the payload
/// (a 32-byte header, the timeout, the method path, the metadata block, the protobuf field
/// header: about 70 bytes for `Bench/Echo`), and the whole request must fit the 1232 bytes of
/// one datagram; a larger call would quietly go over TCP.
pub(super) const MAX_SOCKRPC_UDP_PAYLOAD: usize = 1100;

/// How every row runs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Plan {
    /// Calls, or time, per row.
    pub(super) budget: Budget,
    /// Calls before measuring, on the same callers.
    pub(super) warmup: u64,
    /// The sockrpc channel's pool size (at most the concurrency).
    pub(super) connections: usize,
    /// Calls in flight one pooled connection takes before the next gets calls.
    pub(super) calls_per_connection: usize,
    /// Idle connections held open during the sockrpc-tcp-idle row.
    pub(super) idle_connections: usize,
    /// Times the sequence of rows runs; each row reports all its rounds together.
    pub(super) rounds: usize,
    /// The server runs in this process (its sockets count against the same open-file limit).
    pub(super) embedded: bool,
    /// Every sockrpc call's deadline (`--timeout`).
    pub(super) timeout: Option<std::time::Duration>,
}

impl Plan {
    /// How long each row runs, for the tables' titles.
    pub(super) fn describe(&self) -> String {
        let run = match self.budget {
            Budget::Calls(calls) => format!("{calls} calls per row"),
            Budget::Time(time) => format!("{} s per row", time.as_secs_f64()),
        };
        let rounds = match self.rounds {
            1 => String::new(),
            n => format!(", in {n} interleaved rounds"),
        };
        format!("{run} after {} warmup calls{rounds}", self.warmup)
    }

    /// The plan of round `index`: the row's budget shared out over the rounds. Calls are
    /// shared whole, the first `calls % rounds` rounds making one more, so that the rounds add
    /// up to `--calls` (`--calls 5 --rounds 3` made 1 + 1 + 1; `--calls 1 --rounds 1000` made
    /// 1000 calls, every round at least one, under a title that said 1 or 5).
    fn round(&self, index: usize) -> Plan {
        let rounds = self.rounds.max(1);
        let budget = match self.budget {
            Budget::Calls(calls) => {
                let (rounds, index) = (rounds as u64, index as u64);
                Budget::Calls(calls / rounds + u64::from(index < calls % rounds))
            }
            Budget::Time(time) => Budget::Time(time / u32::try_from(rounds).unwrap_or(u32::MAX)),
        };
        Plan {
            budget,
            rounds: 1,
            ..*self
        }
    }
}

/// Where the rows connect.
#[derive(Debug)]
pub(super) struct Targets {
    /// The Bench service over TCP, in plain text.
    pub(super) rpc: Option<Endpoint>,
    /// The Bench service over TLS.
    pub(super) tls: Option<Endpoint>,
    /// The raw TLS echo, and the client settings for it (those of `tls`).
    pub(super) raw_tls: Option<(SocketAddr, ClientTlsConfig)>,
    /// The raw TCP echo.
    pub(super) raw_tcp: Option<SocketAddr>,
    /// The raw UDP echo.
    pub(super) raw_udp: Option<SocketAddr>,
    /// The Bench service on a Unix socket (with a unix: --target, the target itself).
    pub(super) uds: Option<Endpoint>,
    /// The Bench service's UDP port (sockrpc over UDP, beside `rpc`).
    pub(super) udp: Option<SocketAddr>,
    /// The Bench service behind the middleware stack, over TCP.
    pub(super) stack: Option<Endpoint>,
    /// The Bench service compressing with each encoding (embedded only; see `compressed.rs`).
    pub(super) compressed: Vec<(CompressionEncoding, Endpoint)>,
}

impl Targets {
    /// The endpoint rows that are not about TLS use: the plain one, else the TLS one, else (a
    /// unix: --target) the Unix socket.
    pub(super) fn base(&self) -> Option<&Endpoint> {
        self.rpc
            .as_ref()
            .or(self.tls.as_ref())
            .or(self.uds.as_ref())
    }

    /// Whether the --target is a Unix socket: then the rows on [`base`](Targets::base) run over
    /// it, and the idle row is sockrpc-uds-idle.
    pub(super) fn over_unix(&self) -> bool {
        self.rpc.is_none() && self.tls.is_none() && self.uds.is_some()
    }

    /// The Bench service's main endpoint, for the header.
    pub(super) fn main(&self) -> String {
        self.base()
            .map_or_else(|| "-".to_owned(), ToString::to_string)
    }

    /// What an embedded server serves when every row is asked for, at placeholder addresses:
    /// enough for [`kinds`] to say which rows a run would have, without starting anything.
    pub(super) fn embedded_placeholder() -> Targets {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let at = || Endpoint::new(addr.ip().to_string(), addr.port());
        Targets {
            rpc: Some(at()),
            tls: Some(at()),
            raw_tls: Some((addr, ClientTlsConfig::default())),
            raw_tcp: Some(addr),
            raw_udp: Some(addr),
            uds: Some(Endpoint::unix(std::path::Path::new("sockrpc-bench.sock"))),
            udp: Some(addr),
            stack: Some(at()),
            compressed: Vec::new(),
        }
    }

    /// `base()` with UDP to `udp` (in plain text beside TLS, as `serve --udp` offers it).
    pub(super) fn with_udp(&self, udp: SocketAddr) -> Option<Endpoint> {
        let policy = UdpPolicy::new(udp).allow_plaintext_with_tls(true);
        self.base()
            .map(|endpoint| endpoint.clone().udp_policy(Some(policy)))
    }
}

/// Resolves `HOST:PORT` (a `tcp://` or `udp://` prefix is allowed) to its first address.
async fn resolve(text: &str) -> Result<SocketAddr, String> {
    let bare = ["tcp://", "udp://"]
        .iter()
        .find_map(|scheme| text.strip_prefix(scheme))
        .unwrap_or(text)
        .trim_end_matches('/');
    tokio::net::lookup_host(bare)
        .await
        .map_err(|err| format!("cannot resolve {text:?}: {err}"))?
        .next()
        .ok_or_else(|| format!("{text:?} has no addresses"))
}

/// The embedded server's addresses (with `tls`, the client settings that trust its
/// certificate), or those the flags name.
pub(super) async fn targets(
    args: &BenchArgs,
    embedded: Option<&Bound>,
    tls: Option<ClientTlsConfig>,
) -> Result<Targets, String> {
    let at = |addr: SocketAddr| Endpoint::new(addr.ip().to_string(), addr.port());
    if let Some(bound) = embedded {
        return Ok(Targets {
            rpc: bound.rpc.map(at),
            tls: bound
                .tls
                .zip(tls.clone())
                .map(|(addr, tls)| at(addr).tls(tls)),
            raw_tls: bound.raw_tls.zip(tls),
            raw_tcp: Some(bound.raw_tcp),
            raw_udp: bound.raw_udp,
            uds: bound.uds.as_ref().map(Endpoint::unix),
            udp: bound.udp,
            stack: bound
                .stack
                .map(|addr| Endpoint::new(addr.ip().to_string(), addr.port())),
            compressed: Vec::new(),
        });
    }
    let target = args.target.as_deref().unwrap_or_default();
    let endpoint = Endpoint::from_uri(target).map_err(|status| status.message().to_owned())?;
    // A unix: target is the Unix socket the sockrpc-uds row measures (`options.rs` refuses
    // --uds-target beside it); --udp-target's UDP goes beside it, as beside a TCP target.
    let (rpc, tls_endpoint, uds) = if endpoint.unix_path.is_some() {
        (None, None, Some(endpoint))
    } else if endpoint.is_tls() {
        let tls = tls.unwrap_or_default();
        (None, Some(endpoint.tls(tls)), None)
    } else {
        (Some(endpoint), None, None)
    };
    let raw_tls = match (&args.raw_tls_target, &tls_endpoint) {
        (Some(text), Some(endpoint)) => Some((
            resolve(text).await?,
            endpoint.tls.clone().unwrap_or_default(),
        )),
        (Some(_), None) => {
            return Err("--raw-tls-target needs a tls:// --target (whose settings it uses)".into())
        }
        (None, _) => None,
    };
    let raw_tcp = match &args.raw_target {
        Some(text) => Some(resolve(text).await?),
        None => None,
    };
    let raw_udp = match &args.raw_udp_target {
        Some(text) => Some(resolve(text).await?),
        None => None,
    };
    let udp = match &args.udp_target {
        Some(text) => Some(resolve(text).await?),
        None => None,
    };
    Ok(Targets {
        rpc,
        tls: tls_endpoint,
        raw_tls,
        raw_tcp,
        raw_udp,
        uds: uds.or_else(|| args.uds_target.as_ref().map(Endpoint::unix)),
        udp,
        stack: None,
        compressed: Vec::new(),
    })
}

/// The rows a group can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    RawTcp,
    RawTcpPipelined,
    RawUdp,
    SockrpcTcp,
    SockrpcUdp,
    SockrpcUds,
    SockrpcAuto,
    SockrpcStream,
    RawTls,
    SockrpcTls,
    SockrpcStack,
    SockrpcGzip,
    SockrpcZstd,
    SockrpcIdle,
    SockrpcUdsIdle,
}

impl Kind {
    /// The compression row for `encoding`.
    pub(super) fn compressed(encoding: CompressionEncoding) -> Option<Kind> {
        match encoding {
            CompressionEncoding::Gzip => Some(Kind::SockrpcGzip),
            CompressionEncoding::Zstd => Some(Kind::SockrpcZstd),
            CompressionEncoding::Deflate => None,
        }
    }

    /// The encoding a compression row measures.
    pub(super) fn encoding(self) -> Option<CompressionEncoding> {
        match self {
            Kind::SockrpcGzip => Some(CompressionEncoding::Gzip),
            Kind::SockrpcZstd => Some(CompressionEncoding::Zstd),
            _ => None,
        }
    }

    /// The row's name in tables, JSON and plots.
    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::RawTcp => FLOOR,
            Kind::RawTcpPipelined => "raw-tcp-pipelined",
            Kind::RawUdp => "raw-udp",
            Kind::SockrpcTcp => "sockrpc-tcp",
            Kind::SockrpcUdp => "sockrpc-udp",
            Kind::SockrpcUds => "sockrpc-uds",
            Kind::SockrpcAuto => "sockrpc-auto",
            Kind::SockrpcStream => "sockrpc-stream",
            Kind::RawTls => "raw-tls",
            Kind::SockrpcTls => "sockrpc-tls",
            Kind::SockrpcStack => "sockrpc-stack",
            Kind::SockrpcGzip => "sockrpc-gzip",
            Kind::SockrpcZstd => "sockrpc-zstd",
            Kind::SockrpcIdle => "sockrpc-tcp-idle",
            Kind::SockrpcUdsIdle => "sockrpc-uds-idle",
        }
    }

    /// The transport in the JSON.
    pub(super) fn transport(self) -> &'static str {
        match self {
            Kind::RawUdp | Kind::SockrpcUdp => "udp",
            Kind::SockrpcUds | Kind::SockrpcUdsIdle => "uds",
            Kind::SockrpcAuto => "auto",
            Kind::RawTls | Kind::SockrpcTls => "tls",
            Kind::RawTcp
            | Kind::RawTcpPipelined
            | Kind::SockrpcTcp
            | Kind::SockrpcStream
            | Kind::SockrpcStack
            | Kind::SockrpcGzip
            | Kind::SockrpcZstd
            | Kind::SockrpcIdle => "tcp",
        }
    }
}

/// Why a raw row that needs `concurrency` connections is skipped.
fn raw_past_cap(row: &str, concurrency: usize) -> String {
    format!(
        "{row} skipped: it needs one connection per call in flight ({concurrency}), and the raw \
         echo serves at most {} at once",
        raw_echo::MAX_CONNECTIONS
    )
}

/// The rows `wanted` asks for at one payload and concurrency, in the order they run, in
/// `group.rows`' stead; those skipped, and why, in `group.skipped`. `sockrpc bench --help`
/// lists the default run's rows from it too.
pub(super) fn kinds(
    wanted: &[Transport],
    targets: &Targets,
    payload: usize,
    concurrency: usize,
    group: &mut Group,
) -> Vec<Kind> {
    let tcp = wanted.contains(&Transport::Tcp);
    let udp = wanted.contains(&Transport::Udp);
    let auto = wanted.contains(&Transport::Auto);
    let mut kinds = Vec::new();
    // raw-tcp runs whatever was asked for: it is what every other row is quoted against.
    // Raw TCP and TLS cannot multiplex: a row opens one connection per call in flight, and
    // the raw echo serves at most `raw_echo::MAX_CONNECTIONS` (past it each would fail its row
    // with a bare "early eof").
    let raw_fits = concurrency <= raw_echo::MAX_CONNECTIONS;
    match targets.raw_tcp {
        Some(_) if raw_fits => kinds.push(Kind::RawTcp),
        Some(_) => group.skipped.push(raw_past_cap("raw-tcp", concurrency)),
        None => group
            .skipped
            .push("raw rows skipped: no --raw-target (the raw= address of `sockrpc serve`)".into()),
    }
    if tcp && concurrency > 1 && targets.raw_tcp.is_some() {
        kinds.push(Kind::RawTcpPipelined);
    }
    if udp && targets.raw_udp.is_none() {
        group.skipped.push(
            "raw-udp skipped: no --raw-udp-target (the raw-udp= address of `sockrpc serve \
             --raw-udp`)"
                .into(),
        );
    }
    if udp && targets.raw_udp.is_some() {
        if payload <= MAX_UDP_PAYLOAD {
            kinds.push(Kind::RawUdp);
        } else {
            group.skipped.push(format!(
                "raw-udp skipped: {payload} B is over {MAX_UDP_PAYLOAD} B, the most one datagram \
                 carries on any path without fragmentation"
            ));
        }
    }
    if tcp {
        match targets.rpc {
            Some(_) => kinds.push(Kind::SockrpcTcp),
            None if targets.over_unix() => group
                .skipped
                .push("sockrpc-tcp skipped: the target is a Unix socket (see sockrpc-uds)".into()),
            None => group
                .skipped
                .push("sockrpc-tcp skipped: the target speaks TLS (see sockrpc-tls)".into()),
        }
    }
    if wanted.contains(&Transport::Tls) {
        match targets.raw_tls {
            Some(_) if raw_fits => kinds.push(Kind::RawTls),
            Some(_) => group.skipped.push(raw_past_cap("raw-tls", concurrency)),
            None => group.skipped.push(
                "raw-tls skipped: no --raw-tls-target (the raw-tls= address of `sockrpc serve \
                 --tls-cert`)"
                    .into(),
            ),
        }
        match targets.tls {
            Some(_) => kinds.push(Kind::SockrpcTls),
            None => group.skipped.push(
                "sockrpc-tls skipped: no tls:// --target (the tls= address of `sockrpc serve \
                 --tls-cert`)"
                    .into(),
            ),
        }
    }
    if wanted.contains(&Transport::Stack) {
        match targets.stack {
            // Right after sockrpc-tcp, which it is compared with.
            Some(_) => kinds.push(Kind::SockrpcStack),
            None => group
                .skipped
                .push("sockrpc-stack skipped: it needs the embedded server (no --target)".into()),
        }
    }
    if (udp || auto) && targets.udp.is_none() {
        group.skipped.push(
            "sockrpc-udp and sockrpc-auto skipped: no --udp-target (the udp= address of \
             `sockrpc serve --udp`)"
                .into(),
        );
    }
    if udp && targets.udp.is_some() {
        if payload <= MAX_SOCKRPC_UDP_PAYLOAD {
            kinds.push(Kind::SockrpcUdp);
        } else {
            group.skipped.push(format!(
                "sockrpc-udp skipped: {payload} B is over {MAX_SOCKRPC_UDP_PAYLOAD} B, the most \
                 a sockrpc request datagram of 1232 B carries (sockrpc-auto sends it over TCP)"
            ));
        }
    }
    if wanted.contains(&Transport::Uds) {
        match targets.uds {
            Some(_) => kinds.push(Kind::SockrpcUds),
            None => group.skipped.push(
                "sockrpc-uds skipped: no --uds-target (the uds= path of `sockrpc serve --uds`)"
                    .into(),
            ),
        }
    }
    if auto && targets.udp.is_some() {
        kinds.push(Kind::SockrpcAuto);
    }
    if wanted.contains(&Transport::Stream) {
        kinds.push(Kind::SockrpcStream);
    }
    if wanted.contains(&Transport::Compression) {
        if targets.compressed.is_empty() {
            group.skipped.push(
                "sockrpc-gzip and sockrpc-zstd skipped: they need the embedded server (no \
                 --target)"
                    .into(),
            );
        }
        kinds.extend(
            targets
                .compressed
                .iter()
                .filter_map(|(encoding, _)| Kind::compressed(*encoding)),
        );
    }
    if wanted.contains(&Transport::Idle) {
        match targets.rpc {
            Some(_) => kinds.push(Kind::SockrpcIdle),
            None if targets.over_unix() => kinds.push(Kind::SockrpcUdsIdle),
            None => group.skipped.push(
                "sockrpc-tcp-idle skipped: it needs a plain tcp:// (or a unix:) target".into(),
            ),
        }
    }
    kinds
}

/// Runs the rows `wanted` asks for, at one payload and concurrency, and notes those skipped.
pub(super) async fn run_group(
    wanted: &[Transport],
    targets: &Targets,
    plan: &Plan,
    payload: usize,
    concurrency: usize,
    progress: &ProgressBar,
) -> Group {
    let mut group = Group {
        payload_bytes: payload,
        concurrency,
        ..Group::default()
    };
    let kinds = kinds(wanted, targets, payload, concurrency, &mut group);
    for index in 0..plan.rounds.max(1) {
        let round = plan.round(index);
        for (at, kind) in kinds.iter().copied().enumerate() {
            let mut row = run_row(kind, targets, &round, payload, concurrency, progress).await;
            if index == 0 {
                note_handshakes(kind, targets, &mut row).await;
                group.rows.push(row);
            } else if let Some(merged) = group.rows.get_mut(at) {
                merged.absorb(row);
            }
        }
    }
    // The table's ratio is to raw-tcp; some rows are also quoted against a closer base.
    note_ratio(&mut group, "sockrpc-udp", "raw-udp");
    note_tls_ratios(&mut group);
    note_ratio(&mut group, "sockrpc-stack", "sockrpc-tcp");
    note_ratio(&mut group, "sockrpc-tcp-idle", "sockrpc-tcp");
    note_ratio(&mut group, "sockrpc-uds-idle", "sockrpc-uds");
    group
}

/// Notes on the TLS rows what setting up a connection costs: full handshakes to the raw TLS
/// echo, and sockrpc connects over TLS. Not on a row that failed: its note says why already,
/// and a server it could not reach fails every handshake the same way (the note said the
/// connect error twice).
async fn note_handshakes(kind: Kind, targets: &Targets, row: &mut Row) {
    if row.failed.is_some() {
        return;
    }
    let timed = match (kind, &targets.raw_tls, &targets.tls) {
        (Kind::RawTls, Some((addr, tls)), Some(endpoint)) => {
            crate::tls::raw_handshakes(*addr, tls, &endpoint.host).await
        }
        (Kind::SockrpcTls, _, Some(endpoint)) => crate::tls::sockrpc_connects(endpoint).await,
        _ => return,
    };
    add_note(
        row,
        timed.unwrap_or_else(|err| format!("handshakes not timed: {err}")),
    );
}

/// sockrpc-tls is also quoted against its own floor, raw-tls (p50), and against sockrpc-tcp
/// (throughput).
fn note_tls_ratios(group: &mut Group) {
    let clean = |name: &str| {
        group
            .rows
            .iter()
            .find(|row| row.name == name && row.errors == 0)
    };
    let p50 = |name: &str| clean(name).and_then(|row| row.quantile_us(0.5));
    let rate = |name: &str| clean(name).and_then(Row::throughput);
    let mut notes = Vec::new();
    if let (Some(raw), Some(rpc)) = (p50("raw-tls"), p50("sockrpc-tls")) {
        if raw > 0.0 {
            notes.push(format!("p50 {:.2}× raw-tls's", rpc / raw));
        }
    }
    if let (Some(plain), Some(tls)) = (rate("sockrpc-tcp"), rate("sockrpc-tls")) {
        if plain > 0.0 {
            notes.push(format!(
                "throughput {:.0} % of sockrpc-tcp's",
                100.0 * tls / plain
            ));
        }
    }
    if let Some(row) = group.rows.iter_mut().find(|row| row.name == "sockrpc-tls") {
        for note in notes {
            add_note(row, note);
        }
    }
}

/// Quotes row `name`'s p50 against row `base`'s of the same group.
fn note_ratio(group: &mut Group, name: &str, base: &str) {
    let p50 = |name: &str| {
        group
            .rows
            .iter()
            .find(|row| row.name == name && row.errors == 0)
            .and_then(|row| row.quantile_us(0.5))
    };
    let (Some(base_p50), Some(p50)) = (p50(base), p50(name)) else {
        return;
    };
    if base_p50 <= 0.0 {
        return;
    }
    if let Some(row) = group.rows.iter_mut().find(|row| row.name == name) {
        add_note(row, format!("p50 {:.2}× {base}'s", p50 / base_p50));
    }
}
