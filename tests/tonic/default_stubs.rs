//! tonic's `default_stubs/tests/default.rs`: two servers of one service generated with
//! `generate_default_stubs(true)`, one whose implementation answers every rpc itself
//! (`PERMISSION_DENIED`), one that leaves them all to the stubs (`UNIMPLEMENTED`), called in
//! all four shapes, over TCP (`test_default_stubs_tcp`) and over Unix sockets
//! (`test_default_stubs_uds`: served from a stream of accepted Unix connections, reached at
//! `unix:///path`, as tonic's test serves and connects). tonic generates two services (the
//! stubbed one under its own name); sockrpc's test protos have one, served twice.

use crate::support::bounded;
use futures_util::stream::{self, Stream, StreamExt};
use sockrpc::{BoxStream, Code, Request, Response, Server, Status, Streaming};
use sockrpc_tests::options::google::protobuf::Empty;
use sockrpc_tests::options::sockrpc::test::options::legacy_client::LegacyClient;
use sockrpc_tests::options::sockrpc::test::options::legacy_server::{Legacy, LegacyServer};
use sockrpc_tests::options::sockrpc::test::options::Ping;
use tokio::net::{TcpListener, UnixListener};

/// Implements every rpc, refusing each (tonic's `Svc`).
struct Svc;

impl Legacy for Svc {
    async fn old(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        Err(Status::permission_denied(""))
    }

    async fn current(&self, _: Request<Ping>) -> Result<Response<Ping>, Status> {
        Err(Status::permission_denied(""))
    }

    async fn watch(&self, _: Request<Ping>) -> Result<Response<BoxStream<Ping>>, Status> {
        Err(Status::permission_denied(""))
    }

    async fn upload(&self, _: Request<Streaming<Ping>>) -> Result<Response<Ping>, Status> {
        Err(Status::permission_denied(""))
    }

    async fn chat(&self, _: Request<Streaming<Ping>>) -> Result<Response<BoxStream<Ping>>, Status> {
        Err(Status::permission_denied(""))
    }
}

/// Implements nothing: the generated stubs answer every rpc.
struct Stubbed;

impl Legacy for Stubbed {}

fn echo_requests_iter() -> impl Stream<Item = Ping> + Send + 'static {
    stream::iter(1..u64::MAX).map(|seq| Ping { seq })
}

/// The code each of the four shapes (and the deprecated rpc) fails with.
async fn codes<T: sockrpc::codegen::ClientService>(client: &mut LegacyClient<T>) -> [Code; 5] {
    let code = |result: Result<(), Status>| result.expect_err("refused").code();
    #[allow(deprecated)]
    let old = bounded("old", client.old(Empty {})).await.map(|_| ());
    let unary = bounded("unary", client.current(Ping { seq: 1 }))
        .await
        .map(|_| ());
    let server_stream = bounded("server stream", client.watch(Ping { seq: 1 }))
        .await
        .map(|_| ());
    let client_stream = bounded("client stream", client.upload(echo_requests_iter().take(5)))
        .await
        .map(|_| ());
    let bidirectional = bounded("bidirectional", client.chat(echo_requests_iter().take(5)))
        .await
        .map(|_| ());
    [
        code(old),
        code(unary),
        code(server_stream),
        code(client_stream),
        code(bidirectional),
    ]
}

async fn test_default_stubs<T: sockrpc::codegen::ClientService>(
    mut client: LegacyClient<T>,
    mut client_default_stubs: LegacyClient<T>,
) {
    // First the implementation's own answers, then the stubs'.
    assert_eq!(codes(&mut client).await, [Code::PermissionDenied; 5]);
    assert_eq!(
        codes(&mut client_default_stubs).await,
        [Code::Unimplemented; 5]
    );
}

#[tokio::test]
async fn test_default_stubs_tcp() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let listener_default_stubs = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr_default_stubs = listener_default_stubs.local_addr().expect("addr");
    let served = [
        tokio::spawn(
            Server::builder()
                .add_service(LegacyServer::new(Svc))
                .serve_with_listener(listener),
        ),
        tokio::spawn(
            Server::builder()
                .add_service(LegacyServer::new(Stubbed))
                .serve_with_listener(listener_default_stubs),
        ),
    ];
    let client = bounded("connect", LegacyClient::connect(format!("http://{addr}")))
        .await
        .expect("connects");
    let client_default_stubs = bounded(
        "connect",
        LegacyClient::connect(format!("http://{addr_default_stubs}")),
    )
    .await
    .expect("connects");
    test_default_stubs(client, client_default_stubs).await;
    served.iter().for_each(|task| task.abort());
}

/// Unix connections accepted from `listener`, as a stream of them (tonic's
/// `UnixListenerStream`).
fn accepted(listener: UnixListener) -> impl Stream<Item = std::io::Result<tokio::net::UnixStream>> {
    stream::unfold(listener, |listener| async move {
        let next = listener.accept().await.map(|(stream, _)| stream);
        Some((next, listener))
    })
}

#[tokio::test]
async fn test_default_stubs_uds() {
    let dir = std::env::temp_dir().join(format!("sockrpc-default-stubs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a directory for the sockets");
    let path = dir.join("impl.sock");
    let path_default_stubs = dir.join("stub.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    let listener_default_stubs = UnixListener::bind(&path_default_stubs).expect("bind");
    let served = [
        tokio::spawn(
            Server::builder()
                .add_service(LegacyServer::new(Svc))
                .serve_with_incoming(accepted(listener)),
        ),
        tokio::spawn(
            Server::builder()
                .add_service(LegacyServer::new(Stubbed))
                .serve_with_incoming(accepted(listener_default_stubs)),
        ),
    ];
    let uds_addr = format!("unix://{}", path.display());
    let uds_default_stubs_addr = format!("unix://{}", path_default_stubs.display());
    let client = bounded("connect", LegacyClient::connect(uds_addr))
        .await
        .expect("connects");
    let client_default_stubs = bounded("connect", LegacyClient::connect(uds_default_stubs_addr))
        .await
        .expect("connects");
    test_default_stubs(client, client_default_stubs).await;
    served.iter().for_each(|task| task.abort());
    let _ = std::fs::remove_dir_all(&dir);
}
