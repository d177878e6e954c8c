//! The deprecated service named `Server`: well-known types (`Empty`, `Timestamp`, `Any`, the
//! wrappers, `Duration`, `Struct`, `FieldMask`, `Value`) as requests, answers and streams, built
//! through the facade's `sockrpc::prost_types` as a user's crate builds them.

use futures_util::stream::{self, BoxStream, StreamExt};
use sockrpc::prost_types::value::Kind;
use sockrpc::prost_types::{Any, Duration, FieldMask, Struct, Timestamp, Value};
use sockrpc::{Request, Response, Status, Streaming};
use sockrpc_tests::tricky::sockrpc::test::tricky as t;
// The service is deprecated as a whole, and so is its client.
#[allow(deprecated)]
use t::server_client::ServerClient;
use t::server_server::Server;
use t::Msg;

use crate::support::{bounded, channel, collect, msg, start_all, tagged};

/// The deprecated service named `Server`, all well-known types.
pub(crate) struct Wkt;

fn later(t: &Timestamp, by: i64) -> Timestamp {
    Timestamp {
        seconds: t.seconds + by,
        nanos: t.nanos,
    }
}

#[allow(deprecated)]
impl Server for Wkt {
    async fn nothing(&self, request: Request<()>) -> Result<Response<()>, Status> {
        let () = request.into_inner();
        Ok(Response::new(()))
    }

    async fn now(&self, _request: Request<()>) -> Result<Response<Timestamp>, Status> {
        Ok(Response::new(Timestamp {
            seconds: 1_700_000_000,
            nanos: 7,
        }))
    }

    async fn later(&self, request: Request<Timestamp>) -> Result<Response<Timestamp>, Status> {
        Ok(Response::new(later(&request.into_inner(), 60)))
    }

    async fn wrap(&self, request: Request<Any>) -> Result<Response<Any>, Status> {
        let any = request.into_inner();
        let mut value = any.value;
        value.reverse();
        Ok(Response::new(Any {
            type_url: format!("{}.wrapped", any.type_url),
            value,
        }))
    }

    async fn old(&self, request: Request<Msg>) -> Result<Response<Msg>, Status> {
        Ok(tagged("Old", request))
    }

    type TicksStream = BoxStream<'static, Result<Timestamp, Status>>;

    async fn ticks(&self, _request: Request<()>) -> Result<Response<Self::TicksStream>, Status> {
        let start = Timestamp {
            seconds: 10,
            nanos: 0,
        };
        let ticks: Vec<_> = (0..3).map(|i| Ok(later(&start, i))).collect();
        Ok(Response::new(stream::iter(ticks).boxed()))
    }

    async fn shout(&self, request: Request<String>) -> Result<Response<String>, Status> {
        Ok(Response::new(request.into_inner().to_uppercase()))
    }

    async fn negate(&self, request: Request<bool>) -> Result<Response<bool>, Status> {
        Ok(Response::new(!request.into_inner()))
    }

    async fn double(&self, request: Request<i32>) -> Result<Response<i64>, Status> {
        Ok(Response::new(i64::from(request.into_inner()) * 2))
    }

    async fn halve(&self, request: Request<f64>) -> Result<Response<f32>, Status> {
        Ok(Response::new((request.into_inner() / 2.0) as f32))
    }

    async fn reverse(&self, request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, Status> {
        let mut bytes = request.into_inner();
        bytes.reverse();
        Ok(Response::new(bytes))
    }

    async fn count(&self, request: Request<Streaming<()>>) -> Result<Response<u64>, Status> {
        let mut requests = request.into_inner();
        let mut count = 0;
        while let Some(()) = requests.message().await? {
            count += 1;
        }
        Ok(Response::new(count))
    }

    type SizesStream = BoxStream<'static, Result<u32, Status>>;

    async fn sizes(&self, request: Request<u32>) -> Result<Response<Self::SizesStream>, Status> {
        let n = request.into_inner();
        Ok(Response::new(stream::iter((0..n).map(Ok)).boxed()))
    }

    async fn since(&self, request: Request<Duration>) -> Result<Response<Struct>, Status> {
        let duration = request.into_inner();
        let seconds = Value {
            kind: Some(Kind::NumberValue(duration.seconds as f64)),
        };
        Ok(Response::new(Struct {
            fields: [("seconds".to_owned(), seconds)].into(),
        }))
    }

    async fn mask(&self, request: Request<FieldMask>) -> Result<Response<Value>, Status> {
        Ok(Response::new(Value {
            kind: Some(Kind::StringValue(request.into_inner().paths.join(","))),
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(deprecated)]
async fn well_known_types_on_a_deprecated_service() {
    let server = start_all();
    let mut client = ServerClient::new(channel(&server).await);

    let () = bounded("Nothing", client.nothing(()))
        .await
        .expect("Nothing")
        .into_inner();
    let now = bounded("Now", client.now(()))
        .await
        .expect("Now")
        .into_inner();
    assert_eq!(
        now,
        Timestamp {
            seconds: 1_700_000_000,
            nanos: 7
        }
    );
    let later = bounded("Later", client.later(now))
        .await
        .expect("Later")
        .into_inner();
    assert_eq!(
        later,
        Timestamp {
            seconds: 1_700_000_060,
            nanos: 7
        }
    );
    let wrapped = bounded(
        "Wrap",
        client.wrap(Any {
            type_url: "type.googleapis.com/x.Y".to_owned(),
            value: vec![1, 2, 3],
        }),
    )
    .await
    .expect("Wrap")
    .into_inner();
    assert_eq!(wrapped.type_url, "type.googleapis.com/x.Y.wrapped");
    assert_eq!(wrapped.value, [3, 2, 1]);

    let old = bounded("Old", client.old(msg("o", 0)))
        .await
        .expect("Old")
        .into_inner();
    assert_eq!(old, msg("Old:o", 1));

    let ticks = bounded("Ticks", client.ticks(()))
        .await
        .expect("Ticks")
        .into_inner();
    let seconds: Vec<i64> = collect("Ticks stream", ticks)
        .await
        .iter()
        .map(|t| t.seconds)
        .collect();
    assert_eq!(seconds, [10, 11, 12]);

    // Wrapper types, as prost maps them.
    let shouted = bounded("Shout", client.shout("hey".to_owned()))
        .await
        .expect("Shout")
        .into_inner();
    assert_eq!(shouted, "HEY");
    let negated = bounded("Negate", client.negate(true))
        .await
        .expect("Negate")
        .into_inner();
    assert!(!negated);
    let doubled = bounded("Double", client.double(i32::MAX))
        .await
        .expect("Double")
        .into_inner();
    assert_eq!(doubled, i64::from(i32::MAX) * 2);
    let halved = bounded("Halve", client.halve(5.0))
        .await
        .expect("Halve")
        .into_inner();
    assert_eq!(halved, 2.5);
    let reversed = bounded("Reverse", client.reverse(vec![1, 2, 3]))
        .await
        .expect("Reverse")
        .into_inner();
    assert_eq!(reversed, [3, 2, 1]);
    let count = bounded("Count", client.count(stream::iter([(), (), (), ()])))
        .await
        .expect("Count")
        .into_inner();
    assert_eq!(count, 4);
    let sizes = bounded("Sizes", client.sizes(3))
        .await
        .expect("Sizes")
        .into_inner();
    assert_eq!(collect("Sizes stream", sizes).await, [0, 1, 2]);
    let since = bounded(
        "Since",
        client.since(Duration {
            seconds: 90,
            nanos: 0,
        }),
    )
    .await
    .expect("Since")
    .into_inner();
    assert_eq!(
        since.fields.get("seconds").and_then(|v| v.kind.clone()),
        Some(Kind::NumberValue(90.0))
    );
    let mask = bounded(
        "Mask",
        client.mask(FieldMask {
            paths: vec!["a.b".to_owned(), "c".to_owned()],
        }),
    )
    .await
    .expect("Mask")
    .into_inner();
    assert_eq!(mask.kind, Some(Kind::StringValue("a.b,c".to_owned())));

    // The deprecated rpc is marked so in the generated code.
    let source = include_str!(concat!(env!("OUT_DIR"), "/tricky/sockrpc.test.tricky.rs"));
    let old_at = source
        .find("pub async fn old(")
        .expect("client method `old`");
    assert!(
        source[..old_at].trim_end().ends_with("#[deprecated]"),
        "client method `old` lacks #[deprecated]"
    );
    server.stop().await;
}
