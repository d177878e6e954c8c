//! The route guide client: calls each of the four shapes once and prints what comes back.
//! `cargo run -p sockrpc-examples --example routeguide-client [ADDR]`
//! (default `tcp://127.0.0.1:10000`; start `routeguide-server` first).

mod data;

use futures_util::stream::{self, StreamExt};
use sockrpc::Request;
use sockrpc_examples::routeguide::route_guide_client::RouteGuideClient;
use sockrpc_examples::routeguide::{Point, Rectangle, RouteNote};
use std::time::Duration;

type Error = Box<dyn std::error::Error>;

/// Every call gets a deadline, so the example never hangs on a server that went away.
const TIMEOUT: Duration = Duration::from_secs(10);

fn point(latitude: i32, longitude: i32) -> Point {
    Point {
        latitude,
        longitude,
    }
}

fn with_timeout<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(TIMEOUT);
    request
}

fn show(p: &Point) -> String {
    format!(
        "({:.4}, {:.4})",
        f64::from(p.latitude) / 1e7,
        f64::from(p.longitude) / 1e7
    )
}

/// Unary: a point with a feature, and one without.
async fn get_feature(client: &mut RouteGuideClient<sockrpc::Channel>) -> Result<(), Error> {
    println!("*** GetFeature (unary)");
    for p in [point(407838351, -746143763), point(0, 0)] {
        let feature = client.get_feature(with_timeout(p)).await?.into_inner();
        if feature.name.is_empty() {
            println!("no feature at {}", show(&p));
        } else {
            println!("feature {:?} at {}", feature.name, show(&p));
        }
    }
    Ok(())
}

/// Server streaming: every feature in a rectangle (northern New Jersey and the Hudson valley),
/// as it arrives.
async fn list_features(client: &mut RouteGuideClient<sockrpc::Channel>) -> Result<(), Error> {
    println!("*** ListFeatures (server streaming)");
    let rect = Rectangle {
        lo: Some(point(405_000_000, -750_000_000)),
        hi: Some(point(415_000_000, -740_000_000)),
    };
    let mut features = client.list_features(with_timeout(rect)).await?.into_inner();
    let mut count = 0;
    while let Some(feature) = features.message().await? {
        count += 1;
        let at = feature.location.as_ref().map(show).unwrap_or_default();
        println!("  {:?} at {at}", feature.name);
    }
    println!("{count} features in the rectangle");
    Ok(())
}

/// Client streaming: a route of ten points (known features and a few places in between),
/// sent one by one with a short pause, then the server's summary.
async fn record_route(client: &mut RouteGuideClient<sockrpc::Channel>) -> Result<(), Error> {
    println!("*** RecordRoute (client streaming)");
    let features = data::features();
    // A fixed pseudo-random walk over the database, so every run sends the same route.
    let mut state: u32 = 0x2545_f491;
    let mut route = Vec::new();
    for _ in 0..10 {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let index = (state >> 16) as usize % features.len();
        let mut p = features[index].location.unwrap_or_default();
        if state & 0x8000 != 0 {
            p.latitude += 1000; // near, not at, the feature
        }
        route.push(p);
    }
    for p in &route {
        println!("  visiting {}", show(p));
    }
    let points = stream::iter(route).then(|p| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        p
    });
    let summary = client
        .record_route(with_timeout(points))
        .await?
        .into_inner();
    println!(
        "finished trip: {} points, {} features, {} m, {} s",
        summary.point_count, summary.feature_count, summary.distance, summary.elapsed_time
    );
    Ok(())
}

/// Bidi: sends notes at three locations, twice each, and prints the earlier notes at the same
/// location that the server answers with (more on every run: the server keeps them).
async fn route_chat(client: &mut RouteGuideClient<sockrpc::Channel>) -> Result<(), Error> {
    println!("*** RouteChat (bidirectional streaming)");
    let notes = [
        ("First message", point(0, 0)),
        ("Second message", point(0, 10_000_000)),
        ("Third message", point(10_000_000, 0)),
        ("Fourth message", point(0, 0)),
        ("Fifth message", point(0, 10_000_000)),
        ("Sixth message", point(10_000_000, 0)),
    ]
    .map(|(message, location)| RouteNote {
        location: Some(location),
        message: message.to_owned(),
    });
    for note in &notes {
        let at = note.location.as_ref().map(show).unwrap_or_default();
        println!("  sending {:?} at {at}", note.message);
    }
    let mut replies = client
        .route_chat(with_timeout(stream::iter(notes)))
        .await?
        .into_inner();
    while let Some(note) = replies.message().await? {
        let at = note.location.as_ref().map(show).unwrap_or_default();
        println!("  got {:?} at {at}", note.message);
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tcp://127.0.0.1:10000".into());
    let mut client = RouteGuideClient::connect(addr.as_str()).await?;
    get_feature(&mut client).await?;
    list_features(&mut client).await?;
    record_route(&mut client).await?;
    route_chat(&mut client).await?;
    Ok(())
}
