//! The route guide server, with all four call shapes:
//! `cargo run -p sockrpc-examples --example routeguide-server [ADDR]` (default `127.0.0.1:10000`).

mod data;

use futures_util::stream::{self, StreamExt};
use sockrpc::{BoxStream, Request, Response, Server, Status, Streaming};
use sockrpc_examples::routeguide::route_guide_server::{RouteGuide, RouteGuideServer};
use sockrpc_examples::routeguide::{Feature, Point, Rectangle, RouteNote, RouteSummary};
use sockrpc_reflection::ReflectionExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Notes received by `RouteChat`, by `(latitude, longitude)`.
type Notes = HashMap<(i32, i32), Vec<RouteNote>>;

struct RouteGuideService {
    features: Arc<Vec<Feature>>,
    /// Every note received by `RouteChat`, across all calls.
    notes: Arc<Mutex<Notes>>,
}

impl RouteGuide for RouteGuideService {
    /// Unary: the feature at a point, or one with an empty name.
    async fn get_feature(&self, request: Request<Point>) -> Result<Response<Feature>, Status> {
        let point = request.into_inner();
        let feature = self
            .features
            .iter()
            .find(|f| f.location.as_ref() == Some(&point))
            .cloned()
            .unwrap_or(Feature {
                name: String::new(),
                location: Some(point),
            });
        Ok(Response::new(feature))
    }

    type ListFeaturesStream = BoxStream<Feature>;

    /// Server streaming: every feature inside a rectangle, one message each.
    async fn list_features(
        &self,
        request: Request<Rectangle>,
    ) -> Result<Response<Self::ListFeaturesStream>, Status> {
        let rect = request.into_inner();
        let (Some(lo), Some(hi)) = (rect.lo, rect.hi) else {
            return Err(Status::invalid_argument("the rectangle needs both corners"));
        };
        let inside: Vec<_> = self
            .features
            .iter()
            .filter(|f| f.location.as_ref().is_some_and(|p| in_range(p, &lo, &hi)))
            .cloned()
            .map(Ok)
            .collect();
        Ok(Response::new(stream::iter(inside).boxed()))
    }

    /// Client streaming: reads the whole route, then answers with its summary.
    async fn record_route(
        &self,
        request: Request<Streaming<Point>>,
    ) -> Result<Response<RouteSummary>, Status> {
        let mut points = request.into_inner();
        let started = Instant::now();
        let mut summary = RouteSummary::default();
        let mut last: Option<Point> = None;
        while let Some(point) = points.message().await? {
            summary.point_count += 1;
            if self
                .features
                .iter()
                .any(|f| f.location.as_ref() == Some(&point) && !f.name.is_empty())
            {
                summary.feature_count += 1;
            }
            if let Some(last) = &last {
                summary.distance += distance(last, &point);
            }
            last = Some(point);
        }
        summary.elapsed_time = i32::try_from(started.elapsed().as_secs()).unwrap_or(i32::MAX);
        Ok(Response::new(summary))
    }

    type RouteChatStream = BoxStream<RouteNote>;

    /// Bidi: for each note received, answers with every note sent earlier at the same location,
    /// then remembers it.
    async fn route_chat(
        &self,
        request: Request<Streaming<RouteNote>>,
    ) -> Result<Response<Self::RouteChatStream>, Status> {
        let notes = Arc::clone(&self.notes);
        let replies = request.into_inner().flat_map(move |note| {
            let replies: Vec<Result<RouteNote, Status>> = match note {
                Err(status) => vec![Err(status)],
                Ok(note) => {
                    let key = note
                        .location
                        .as_ref()
                        .map_or((0, 0), |p| (p.latitude, p.longitude));
                    let mut notes = notes.lock().unwrap_or_else(|p| p.into_inner());
                    let earlier = notes.entry(key).or_default();
                    let replies = earlier.iter().cloned().map(Ok).collect();
                    earlier.push(note);
                    replies
                }
            };
            stream::iter(replies)
        });
        Ok(Response::new(replies.boxed()))
    }
}

fn in_range(point: &Point, a: &Point, b: &Point) -> bool {
    let (left, right) = (a.longitude.min(b.longitude), a.longitude.max(b.longitude));
    let (bottom, top) = (a.latitude.min(b.latitude), a.latitude.max(b.latitude));
    (left..=right).contains(&point.longitude) && (bottom..=top).contains(&point.latitude)
}

/// Great-circle distance in metres between two E7 points (the haversine formula).
fn distance(a: &Point, b: &Point) -> i32 {
    const E7: f64 = 1e7;
    const EARTH_RADIUS_M: f64 = 6_371_000.0;
    let lat1 = (f64::from(a.latitude) / E7).to_radians();
    let lat2 = (f64::from(b.latitude) / E7).to_radians();
    let dlat = lat2 - lat1;
    let dlon = ((f64::from(b.longitude) - f64::from(a.longitude)) / E7).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    let c = 2.0 * h.sqrt().atan2((1.0 - h).sqrt());
    (EARTH_RADIUS_M * c) as i32
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:10000".into());
    let addr = addr.parse().map_err(|err| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{addr}: {err}"))
    })?;
    let listener = sockrpc::transport::bind_tcp(addr, &sockrpc::SocketConfig::default())?;
    let service = RouteGuideService {
        features: Arc::new(data::features()),
        notes: Arc::default(),
    };
    println!(
        "route guide listening on {} with {} features",
        listener.local_addr()?,
        service.features.len()
    );
    Server::builder()
        .add_service(RouteGuideServer::new(service))
        // grpc.reflection.v1 and v1alpha: `sockrpc list/describe/call` need no .proto.
        .add_reflection(&[sockrpc_examples::routeguide::FILE_DESCRIPTOR_SET])
        .serve_with_listener_and_shutdown(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
