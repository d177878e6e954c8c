//! The route guide server the `call`/`bench --call` tests run in a child process: this test
//! binary re-run on its one `route_guide_child` entry, with `ROUTE_GUIDE_CHILD` set. It serves
//! all four call shapes with reflection (with `ROUTE_GUIDE_REFLECTION=none`, none; `=v1alpha`,
//! only under its v1alpha name), and, with `ROUTE_GUIDE_STALL` set, stalls the whole server for
//! 200 ms on every 100th `GetFeature` (the handler holds a lock every call takes, as a GC
//! pause or a full queue would) and otherwise answers after 2 ms. Also [`call`]: the `sockrpc`
//! binary run to completion with some stdin.
#![allow(dead_code, unreachable_pub, missing_docs)]

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use sockrpc::{BoxStream, Code, Request, Response, Server, Status, Streaming};
use sockrpc_reflection::{Reflection, ReflectionExt};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::support::{drain, sockrpc};
use std::thread;
use std::time::Duration;

pub mod routeguide {
    #![allow(missing_docs, unreachable_pub, dead_code, clippy::all)]
    sockrpc::include_proto!("routeguide");
}

use routeguide::route_guide_server::{RouteGuide, RouteGuideServer};
use routeguide::{Feature, Point, Rectangle, RouteNote, RouteSummary};

pub const CHILD_ENV: &str = "ROUTE_GUIDE_CHILD";
pub const STALL_ENV: &str = "ROUTE_GUIDE_STALL";
/// `none`: no reflection; `v1alpha`: reflection only as grpc.reflection.v1alpha.
pub const REFLECTION_ENV: &str = "ROUTE_GUIDE_REFLECTION";
const ADDR_LINE: &str = "ROUTE_GUIDE_ADDR=";

/// Every 100th `GetFeature` stalls the server this long (with `ROUTE_GUIDE_STALL`).
pub const STALL: Duration = Duration::from_millis(200);
/// `GetFeature` at this latitude takes 30 s (for the deadline test: far past the 10 s it
/// allows a 0.3 s deadline on a loaded machine, well within `wait_bounded`'s 60 s).
pub const SLOW_LATITUDE: i32 = 99;
/// `GetFeature` at this latitude fails INTERNAL with a message of two lines and an escape.
pub const MULTILINE_LATITUDE: i32 = 77;
/// Every other `GetFeature` takes this long (with `ROUTE_GUIDE_STALL`).
pub const SLOW: Duration = Duration::from_millis(2);

/// The features the server knows.
fn features() -> Vec<Feature> {
    [(1, 1, "One"), (2, 2, "Two"), (3, 3, "Three")]
        .into_iter()
        .map(|(latitude, longitude, name)| Feature {
            name: name.to_owned(),
            location: Some(Point {
                latitude,
                longitude,
            }),
        })
        .collect()
}

struct Guide {
    stall: bool,
    calls: AtomicU64,
    pause: tokio::sync::Mutex<()>,
}

impl RouteGuide for Guide {
    async fn get_feature(&self, request: Request<Point>) -> Result<Response<Feature>, Status> {
        if self.stall {
            let guard = self.pause.lock().await;
            let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
            if n % 100 == 0 {
                tokio::time::sleep(STALL).await;
            }
            drop(guard);
            tokio::time::sleep(SLOW).await;
        }
        // `x-feature-name` metadata names the feature (what the `-H` test reads back).
        let named = request
            .metadata()
            .get_str("x-feature-name")
            .map(str::to_owned);
        // `x-echo-bin` comes back as a response header (what `call -v` prints).
        let echo = request
            .metadata()
            .get_bin_bytes("x-echo-bin")
            .map(Bytes::copy_from_slice);
        let point = request.into_inner();
        if point.latitude == SLOW_LATITUDE {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        if point.latitude == MULTILINE_LATITUDE {
            return Err(Status::internal("first line\nsecond line\u{1b}[31m"));
        }
        if point.latitude < 0 {
            let mut status = Status::with_details(
                Code::NotFound,
                format!("no feature south of the equator ({})", point.latitude),
                Bytes::from_static(&[1, 2]),
            );
            let _ = status.metadata_mut().insert_str("x-where", "south");
            return Err(status);
        }
        let mut feature = features()
            .into_iter()
            .find(|f| f.location.as_ref() == Some(&point))
            .unwrap_or(Feature {
                name: String::new(),
                location: Some(point),
            });
        if let Some(name) = named {
            feature.name = name;
        }
        let mut response = Response::new(feature);
        if let Some(echo) = echo {
            let _ = response
                .metadata_mut()
                .insert_bin("x-echo-bin", echo.into());
        }
        Ok(response)
    }

    type ListFeaturesStream = BoxStream<Feature>;

    async fn list_features(
        &self,
        request: Request<Rectangle>,
    ) -> Result<Response<Self::ListFeaturesStream>, Status> {
        let rect = request.into_inner();
        let (Some(lo), Some(hi)) = (rect.lo, rect.hi) else {
            return Err(Status::invalid_argument("the rectangle needs both corners"));
        };
        let inside: Vec<_> = features()
            .into_iter()
            .filter(|f| {
                f.location.as_ref().is_some_and(|p| {
                    (lo.latitude..=hi.latitude).contains(&p.latitude)
                        && (lo.longitude..=hi.longitude).contains(&p.longitude)
                })
            })
            .map(Ok)
            .collect();
        Ok(Response::new(stream::iter(inside).boxed()))
    }

    async fn record_route(
        &self,
        request: Request<Streaming<Point>>,
    ) -> Result<Response<RouteSummary>, Status> {
        let mut points = request.into_inner();
        let mut summary = RouteSummary::default();
        let known = features();
        while let Some(point) = points.next().await {
            let point = point?;
            summary.point_count += 1;
            if known.iter().any(|f| f.location.as_ref() == Some(&point)) {
                summary.feature_count += 1;
            }
        }
        Ok(Response::new(summary))
    }

    type RouteChatStream = BoxStream<RouteNote>;

    async fn route_chat(
        &self,
        request: Request<Streaming<RouteNote>>,
    ) -> Result<Response<Self::RouteChatStream>, Status> {
        // Each note comes back with its message upper-cased, as it arrives.
        let notes = request.into_inner().map(|note| {
            note.map(|mut note| {
                note.message = note.message.to_uppercase();
                note
            })
        });
        Ok(Response::new(notes.boxed()))
    }
}

/// Serves until stdin closes (the parent ended or dropped the child). Called by the child.
pub fn serve_child() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!("{ADDR_LINE}{}", listener.local_addr().expect("addr"));
        let guide = Guide {
            stall: std::env::var_os(STALL_ENV).is_some(),
            calls: AtomicU64::new(0),
            pause: tokio::sync::Mutex::new(()),
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = std::io::stdin().read_line(&mut sink);
            let _ = stop_tx.send(());
        });
        let builder = Server::builder().add_service(RouteGuideServer::new(guide));
        let sets = [routeguide::FILE_DESCRIPTOR_SET];
        let builder = match std::env::var(REFLECTION_ENV).as_deref() {
            Ok("none") => builder,
            Ok("v1alpha") => builder.add_service(Reflection::from_sets(&sets).v1alpha()),
            _ => builder.add_reflection(&sets),
        };
        builder
            .serve_with_listener_and_shutdown(listener, async {
                let _ = stop_rx.await;
            })
            .await
            .expect("serve");
    });
}

/// A route guide server in a child process, killed when dropped.
pub struct GuideChild {
    child: Child,
    /// `tcp://127.0.0.1:PORT`.
    pub addr: String,
}

impl Drop for GuideChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the route guide child (`stall`: the stalling `GetFeature`); waits ≤ 30 s for it.
pub fn spawn_guide(stall: bool) -> GuideChild {
    spawn_guide_with(stall, "v1")
}

/// [`spawn_guide`] with `reflection` as [`REFLECTION_ENV`]: `v1` (both names), `v1alpha`, or
/// `none`.
pub fn spawn_guide_with(stall: bool, reflection: &str) -> GuideChild {
    let exe = std::env::current_exe().expect("current exe");
    let mut command = Command::new(exe);
    command
        .args([
            "route_guide_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .env(REFLECTION_ENV, reflection)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if stall {
        command.env(STALL_ENV, "1");
    }
    let mut child = command.spawn().expect("spawn the route guide");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some((_, addr)) = line.split_once(ADDR_LINE) {
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the route guide printed its address");
    GuideChild {
        child,
        addr: format!("tcp://{addr}"),
    }
}

/// The route guide's `.proto`, for `--proto`.
pub fn route_guide_proto() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../proto/routeguide/route_guide.proto")
}

/// Runs `sockrpc ARGS` with `stdin` written to its standard input; (exit code, stdout, stderr).
pub fn call(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = sockrpc()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sockrpc");
    let mut input = child.stdin.take().expect("stdin");
    let text = stdin.to_owned();
    let writer = thread::spawn(move || {
        use std::io::Write;
        let _ = input.write_all(text.as_bytes());
    });
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let status = crate::support::wait_bounded(&mut child, &format!("sockrpc {args:?}"));
    let _ = writer.join();
    let stdout = String::from_utf8_lossy(&stdout.join().expect("stdout")).into_owned();
    let stderr = String::from_utf8_lossy(&stderr.join().expect("stderr")).into_owned();
    assert!(
        !stderr.contains("panicked"),
        "sockrpc {args:?} panicked:\n{stderr}"
    );
    (
        status.code().expect("an exit code, not a signal"),
        stdout,
        stderr,
    )
}

/// Runs `sockrpc ARGS` with `stdin`, which must succeed; each stdout line as JSON.
pub fn json_lines(args: &[&str], stdin: &str) -> Vec<serde_json::Value> {
    let (code, stdout, stderr) = call(args, stdin);
    assert_eq!(code, 0, "{args:?} failed: {stderr}");
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}")))
        .collect()
}

/// Serves `builder` on `127.0.0.1:0` on a runtime of its own (the CLI runs as a child process
/// from the test's thread): the runtime, to keep, and `tcp://ADDR`.
pub fn serve_on_runtime(
    builder: sockrpc::server::ServerBuilder<tower::layer::util::Identity>,
) -> (tokio::runtime::Runtime, String) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    runtime.spawn(builder.serve_with_listener(listener));
    (runtime, format!("tcp://{addr}"))
}
