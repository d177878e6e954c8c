//! The service named like tower's trait (`Service`): acronym rpc names, every call shape, and
//! errors with their codes.

use futures_util::stream::{self, BoxStream, StreamExt};
use sockrpc::{Code, NamedService, Request, Response, Status, Streaming};
use sockrpc_tests::tricky::sockrpc::test::tricky as t;
use t::service_client::ServiceClient;
use t::service_server::{Service, ServiceServer};
use t::Msg;

use crate::support::{bounded, channel, collect, msg, start_all, tagged};

/// The service named like tower's trait.
pub(crate) struct Svc;

impl Service for Svc {
    async fn get_http_request(
        &self,
        request: Request<t::Request>,
    ) -> Result<Response<t::Response>, Status> {
        Ok(Response::new(t::Response {
            text: format!("GET {}", request.into_inner().text),
        }))
    }

    // tonic's name: the rpc's proto name as written, plus `Stream` (the method is prost's
    // snake_case, `list_ur_ls`).
    type ListURLsStream = BoxStream<'static, Result<Msg, Status>>;

    async fn list_ur_ls(
        &self,
        request: Request<Msg>,
    ) -> Result<Response<Self::ListURLsStream>, Status> {
        let request = request.into_inner();
        let urls: Vec<_> = request
            .text
            .split(' ')
            .enumerate()
            .map(|(i, url)| Ok(msg(&format!("https://{url}/"), i as i64)))
            .collect();
        Ok(Response::new(stream::iter(urls).boxed()))
    }

    async fn upload_ur_ls(
        &self,
        request: Request<Streaming<Msg>>,
    ) -> Result<Response<Msg>, Status> {
        let mut requests = request.into_inner();
        let mut texts = Vec::new();
        while let Some(m) = requests.message().await? {
            texts.push(m.text);
        }
        Ok(Response::new(msg(&texts.join(","), texts.len() as i64)))
    }

    type ChatStream = BoxStream<'static, Result<Msg, Status>>;

    async fn chat(
        &self,
        request: Request<Streaming<Msg>>,
    ) -> Result<Response<Self::ChatStream>, Status> {
        let answers = request.into_inner().map(|m| {
            let m = m?;
            Ok(msg(&m.text.to_uppercase(), m.n))
        });
        Ok(Response::new(answers.boxed()))
    }

    async fn fail(&self, request: Request<t::Status>) -> Result<Response<t::Result>, Status> {
        let code = request.into_inner().code;
        if code == 0 {
            return Ok(Response::new(t::Result { ok: true }));
        }
        let code = u32::try_from(code).map_err(|_| Status::invalid_argument("negative code"))?;
        Err(Status::new(
            Code::from_u32(code),
            format!("failed as asked: {code}"),
        ))
    }

    async fn get2_fa(&self, request: Request<Msg>) -> Result<Response<Msg>, Status> {
        Ok(tagged("Get2FA", request))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_named_service_all_call_shapes_and_errors() {
    let server = start_all();
    let mut client = ServiceClient::new(channel(&server).await);

    let reply = bounded(
        "GetHTTPRequest",
        client.get_http_request(t::Request {
            text: "/index.html".to_owned(),
        }),
    )
    .await
    .expect("GetHTTPRequest")
    .into_inner();
    assert_eq!(reply.text, "GET /index.html");

    let urls = bounded("ListURLs", client.list_ur_ls(msg("a.io b.io c.io", 0)))
        .await
        .expect("ListURLs")
        .into_inner();
    assert_eq!(
        collect("ListURLs stream", urls).await,
        [
            msg("https://a.io/", 0),
            msg("https://b.io/", 1),
            msg("https://c.io/", 2)
        ]
    );

    let joined = bounded(
        "UploadURLs",
        client.upload_ur_ls(stream::iter([msg("x", 0), msg("y", 0), msg("z", 0)])),
    )
    .await
    .expect("UploadURLs")
    .into_inner();
    assert_eq!(joined, msg("x,y,z", 3));
    let empty = bounded(
        "UploadURLs (no messages)",
        client.upload_ur_ls(stream::iter(Vec::<Msg>::new())),
    )
    .await
    .expect("UploadURLs with no messages")
    .into_inner();
    assert_eq!(empty, msg("", 0));

    let chat = bounded(
        "Chat",
        client.chat(stream::iter([msg("hi", 1), msg("there", 2)])),
    )
    .await
    .expect("Chat")
    .into_inner();
    assert_eq!(
        collect("Chat stream", chat).await,
        [msg("HI", 1), msg("THERE", 2)]
    );

    let ok = bounded("Fail(0)", client.fail(t::Status { code: 0 }))
        .await
        .expect("Fail with code 0 succeeds")
        .into_inner();
    assert!(ok.ok);
    for code in [Code::NotFound, Code::PermissionDenied, Code::Unavailable] {
        let err = bounded("Fail", client.fail(t::Status { code: code as i32 }))
            .await
            .expect_err("Fail fails");
        assert_eq!(err.code(), code, "{err:?}");
        assert_eq!(err.message(), format!("failed as asked: {}", code as i32));
    }

    let reply = bounded("Get2FA", client.get2_fa(msg("otp", 5)))
        .await
        .expect("Get2FA")
        .into_inner();
    assert_eq!(reply, msg("Get2FA:otp", 6));

    // The idempotency level reaches the server's list, under the wire name.
    assert_eq!(
        <ServiceServer<Svc> as NamedService>::IDEMPOTENT_METHODS,
        ["/sockrpc.test.tricky.Service/GetHTTPRequest"]
    );
    server.stop().await;
}
