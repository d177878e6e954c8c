//! A server generated with `generate_default_stubs(true)`: an implementation that names only
//! one rpc serves it, and every other rpc, of any shape, answers `UNIMPLEMENTED` with its path.
//! The same output has the well-known types compiled in (`compile_well_known_types`): the
//! `google.protobuf.Empty` in the deprecated rpc's signature is a generated type, not
//! `prost-types`'.

use crate::support::bounded;
use futures_util::stream;
use sockrpc::{Channel, Code, Endpoint, Request, Response, Server, Status};
use sockrpc_tests::options::google::protobuf::Empty;
use sockrpc_tests::options::sockrpc::test::options::legacy_client::LegacyClient;
use sockrpc_tests::options::sockrpc::test::options::legacy_server::{Legacy, LegacyServer};
use sockrpc_tests::options::sockrpc::test::options::Ping;
use tokio::sync::oneshot;

/// Implements one rpc; the defaults answer the rest.
struct OnlyCurrent;

impl Legacy for OnlyCurrent {
    async fn current(&self, request: Request<Ping>) -> Result<Response<Ping>, Status> {
        Ok(Response::new(request.into_inner()))
    }
}

#[tokio::test]
async fn default_stubs_answer_unimplemented() {
    let listener =
        sockrpc::transport::bind_tcp("127.0.0.1:0".parse().expect("addr"), &Default::default())
            .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(
        Server::builder()
            .add_service(LegacyServer::new(OnlyCurrent))
            .serve_with_listener_and_shutdown(listener, async move {
                let _ = stopped.await;
            }),
    );
    let channel = bounded(
        "connect",
        Channel::connect(Endpoint::new("127.0.0.1", addr.port())),
    )
    .await
    .expect("connect");
    let mut client = LegacyClient::new(channel);
    let ping = Ping { seq: 7 };
    let answer = bounded("current", client.current(ping))
        .await
        .expect("served");
    assert_eq!(answer.into_inner().seq, 7);

    let unimplemented = |result: Result<(), Status>, path: &str| {
        let status = result.expect_err(path);
        assert_eq!(status.code(), Code::Unimplemented, "{path}: {status}");
        assert!(status.message().contains(path), "{status}");
    };
    #[allow(deprecated)]
    let old = bounded("old", client.old(Empty {})).await.map(|_| ());
    unimplemented(old, "/sockrpc.test.options.Legacy/Old");
    let watch = bounded("watch", client.watch(ping)).await.map(|_| ());
    unimplemented(watch, "/sockrpc.test.options.Legacy/Watch");
    let upload = bounded("upload", client.upload(stream::iter([ping, ping])))
        .await
        .map(|_| ());
    unimplemented(upload, "/sockrpc.test.options.Legacy/Upload");
    let chat = bounded("chat", client.chat(stream::iter([ping])))
        .await
        .map(|_| ());
    unimplemented(chat, "/sockrpc.test.options.Legacy/Chat");

    let _ = stop.send(());
    let _ = bounded("server stops", server).await;
}
