//! Services out of the ordinary: one from a file without a package (bare wire name), one with
//! lower_snake_case service and rpc names, and one without methods.

use futures_util::stream::{self, BoxStream, StreamExt};
use sockrpc::{Code, NamedService, Request, Response, Status};
use sockrpc_tests::tricky::naked_client::NakedClient;
use sockrpc_tests::tricky::naked_server::{Naked, NakedServer};
use sockrpc_tests::tricky::sockrpc::test::tricky as t;
use sockrpc_tests::tricky::Bare;
use t::empty_server::{Empty, EmptyServer};
use t::snake_service_client::SnakeServiceClient;
use t::snake_service_server::{SnakeService, SnakeServiceServer};
use t::Msg;

use crate::support::{bounded, channel, collect, msg, start_all, tagged};

/// `Naked`, from the file without a package.
pub(crate) struct NoPackage;

impl Naked for NoPackage {
    async fn echo(&self, request: Request<Bare>) -> Result<Response<Bare>, Status> {
        Ok(Response::new(request.into_inner()))
    }

    async fn nothing(&self, _request: Request<()>) -> Result<Response<()>, Status> {
        Ok(Response::new(()))
    }

    type StreamStream = BoxStream<'static, Result<Bare, Status>>;

    async fn stream(&self, request: Request<Bare>) -> Result<Response<Self::StreamStream>, Status> {
        let text = request.into_inner().text;
        let parts: Vec<_> = text
            .chars()
            .map(|c| {
                Ok(Bare {
                    text: c.to_string(),
                })
            })
            .collect();
        Ok(Response::new(stream::iter(parts).boxed()))
    }
}

/// `snake_service`.
pub(crate) struct Snake;

impl SnakeService for Snake {
    async fn do_it(&self, request: Request<Msg>) -> Result<Response<Msg>, Status> {
        Ok(tagged("do_it", request))
    }

    async fn r#do(&self, request: Request<Msg>) -> Result<Response<Msg>, Status> {
        Ok(tagged("do", request))
    }

    // tonic's name, lower-case like the rpc.
    type getValueStream = BoxStream<'static, Result<Msg, Status>>;

    async fn get_value(
        &self,
        request: Request<Msg>,
    ) -> Result<Response<Self::getValueStream>, Status> {
        let request = request.into_inner();
        Ok(Response::new(
            stream::iter([Ok(msg(&request.text, 1)), Ok(msg(&request.text, 2))]).boxed(),
        ))
    }
}

/// The service without methods.
pub(crate) struct Hollow;

impl Empty for Hollow {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_package_snake_case_and_empty_services() {
    let server = start_all();

    // No package: the wire name is the bare service name.
    let mut naked = NakedClient::new(channel(&server).await);
    let reply = bounded(
        "Naked.Echo",
        naked.echo(Bare {
            text: "n".to_owned(),
        }),
    )
    .await
    .expect("Naked.Echo")
    .into_inner();
    assert_eq!(reply.text, "n");
    let () = bounded("Naked.Nothing", naked.nothing(()))
        .await
        .expect("Naked.Nothing")
        .into_inner();
    let parts = bounded(
        "Naked.Stream",
        naked.stream(Bare {
            text: "abc".to_owned(),
        }),
    )
    .await
    .expect("Naked.Stream")
    .into_inner();
    let parts: Vec<String> = collect("Naked.Stream stream", parts)
        .await
        .into_iter()
        .map(|b| b.text)
        .collect();
    assert_eq!(parts, ["a", "b", "c"]);
    assert_eq!(<NakedServer<NoPackage> as NamedService>::NAME, "Naked");
    let mut raw = sockrpc::Client::new(channel(&server).await);
    let reply = bounded(
        "/Naked/Echo",
        raw.unary::<Bare, Bare, _>(
            Request::new(Bare {
                text: "raw".to_owned(),
            }),
            "/Naked/Echo",
            sockrpc::ProstCodec,
        ),
    )
    .await
    .expect("/Naked/Echo by path");
    assert_eq!(reply.into_inner().text, "raw");

    // lower_snake_case service and rpc names.
    let mut snake = SnakeServiceClient::new(channel(&server).await);
    let reply = bounded("do_it", snake.do_it(msg("s", 0)))
        .await
        .expect("do_it")
        .into_inner();
    assert_eq!(reply, msg("do_it:s", 1));
    let reply = bounded("do", snake.r#do(msg("s", 0)))
        .await
        .expect("do")
        .into_inner();
    assert_eq!(reply, msg("do:s", 1));
    let values = bounded("getValue", snake.get_value(msg("v", 0)))
        .await
        .expect("getValue")
        .into_inner();
    assert_eq!(
        collect("getValue stream", values).await,
        [msg("v", 1), msg("v", 2)]
    );
    assert_eq!(
        <SnakeServiceServer<Snake> as NamedService>::NAME,
        "sockrpc.test.tricky.snake_service"
    );

    // The service without methods is mounted and answers UNIMPLEMENTED with the path.
    assert_eq!(
        <EmptyServer<Hollow> as NamedService>::NAME,
        "sockrpc.test.tricky.Empty"
    );
    let path = "/sockrpc.test.tricky.Empty/Anything";
    let err = bounded(
        path,
        raw.unary::<Msg, Msg, _>(Request::new(msg("", 0)), path, sockrpc::ProstCodec),
    )
    .await
    .expect_err("a service without methods has nothing to call");
    assert_eq!(err.code(), Code::Unimplemented, "{err:?}");
    assert!(err.message().contains(path), "{err:?}");
    server.stop().await;
}
