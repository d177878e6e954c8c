//! Unix domain sockets: round trip, a stale socket file replaced, a foreign file left alone,
//! a file put at the path while a server ran never deleted when it stops, and silent
//! connections at the connection cap evicted for a real client; the `unix:` URIs gRPC names
//! connect, and one with a host (`unix://tmp/x.sock`) is refused saying which forms are taken;
//! a path URI is percent-decoded as grpc-go decodes it (a socket file with a space in its name),
//! and its `?query` and `#fragment` dropped; and a server on a Linux abstract name
//! (`unix-abstract:NAME`, or grpc-go's `unix:@NAME`) answers a client that names it.

use sockrpc::{Code, Request, Response, Server, Status};
use sockrpc_tests::helloworld::greeter_client::GreeterClient;
use sockrpc_tests::helloworld::greeter_server::{Greeter, GreeterServer};
use sockrpc_tests::helloworld::{HelloReply, HelloRequest};
use std::path::PathBuf;
use std::time::Duration;

struct Hi;

impl Greeter for Hi {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        Ok(Response::new(HelloReply {
            message: format!("Hello {}!", request.into_inner().name),
        }))
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sockrpc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Tells a server to stop, and waits (at most 10 s) for it to end without an error.
async fn stop_and_wait(
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server stops")
        .expect("task")
        .expect("serve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_over_a_unix_socket_with_a_stale_file() {
    let dir = temp_dir("uds");
    let path = dir.join("greeter.sock");
    // A socket file left by a server that died.
    drop(std::os::unix::net::UnixListener::bind(&path).expect("stale bind"));
    assert!(path.exists());

    let listener = sockrpc::transport::bind_unix(&path).expect("stale file replaced");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        Server::builder()
            .add_service(GreeterServer::new(Hi))
            .serve_unix_with_listener_and_shutdown(listener, async {
                let _ = stopped.await;
            }),
    );
    let uri = format!("unix://{}", path.display());
    let mut client = GreeterClient::connect(uri.as_str()).await.expect("connect");
    for i in 0..10 {
        let reply = client
            .say_hello(HelloRequest {
                name: format!("uds {i}"),
            })
            .await
            .expect("call");
        assert_eq!(reply.into_inner().message, format!("Hello uds {i}!"));
    }
    // A second server on the same live path is refused, not allowed to steal it.
    let err = sockrpc::transport::bind_unix(&path).expect_err("live socket");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);

    stop_and_wait(stop, server).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_socket_file_is_never_deleted() {
    let dir = temp_dir("uds-file");
    let path = dir.join("not-a-socket");
    std::fs::write(&path, b"precious data").expect("write");
    let err = Server::builder()
        .add_service(GreeterServer::new(Hi))
        .serve_unix_with_shutdown(&path, async {})
        .await
        .expect_err("refuses to clobber");
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read(&path).expect("kept"), b"precious data");

    let missing = dir.join("nobody-home.sock");
    let err = GreeterClient::connect(format!("unix://{}", missing.display()))
        .await
        .expect_err("nothing listens");
    assert_eq!(err.code(), Code::Unavailable);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A server's socket file deleted while it serves, and a file of data put at the path: when the
/// server stops, it removes its own socket file only, never that file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_put_at_the_path_while_serving_is_not_deleted_at_the_end() {
    let dir = temp_dir("uds-replaced");
    let path = dir.join("greeter.sock");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = path.clone();
    let server = tokio::spawn(async move {
        Server::builder()
            .add_service(GreeterServer::new(Hi))
            .serve_unix_with_shutdown(&serving, async {
                let _ = stopped.await;
            })
            .await
    });
    let uri = format!("unix://{}", path.display());
    let mut connected = None;
    for _ in 0..500 {
        if let Ok(client) = GreeterClient::connect(uri.as_str()).await {
            connected = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut client = connected.expect("the server listens within 5 s");
    client
        .say_hello(HelloRequest { name: "a".into() })
        .await
        .expect("call");
    std::fs::remove_file(&path).expect("remove the socket file");
    std::fs::write(&path, b"precious data").expect("write");

    stop_and_wait(stop, server).await;
    assert_eq!(std::fs::read(&path).expect("kept"), b"precious data");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Unix socket connections that never send a preface cannot keep real clients out: at the
/// connection cap, the oldest of them (once 100 ms old) is evicted for a newcomer. Before the
/// fix the client below was refused at the connection limit until the handshake timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_unix_connections_at_the_cap_are_evicted_for_a_real_client() {
    const CAP: usize = 4;
    let dir = temp_dir("uds-evict");
    let path = dir.join("greeter.sock");
    let listener = sockrpc::transport::bind_unix(&path).expect("bind");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        Server::builder()
            .max_connections(CAP)
            .handshake_timeout(Duration::from_secs(60))
            .add_service(GreeterServer::new(Hi))
            .serve_unix_with_listener_and_shutdown(listener, async {
                let _ = stopped.await;
            }),
    );
    let mut silent = Vec::new();
    for _ in 0..CAP {
        silent.push(
            tokio::net::UnixStream::connect(&path)
                .await
                .expect("connect"),
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let uri = format!("unix://{}", path.display());
    let reply = tokio::time::timeout(Duration::from_secs(5), async {
        let mut client = GreeterClient::connect(uri.as_str()).await?;
        client
            .say_hello(HelloRequest {
                name: "at the cap".into(),
            })
            .await
    })
    .await
    .expect("answered in time")
    .expect("served at the cap");
    assert_eq!(reply.into_inner().message, "Hello at the cap!");
    // The oldest silent connection was closed for it (the server's preface, then the end).
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 256];
        while silent[0].read(&mut buf).await.is_ok_and(|n| n > 0) {}
    })
    .await;
    assert!(closed.is_ok(), "the oldest silent connection was left open");
    drop(silent);
    stop_and_wait(stop, server).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The Unix socket URIs gRPC names connect (`unix:/abs`, `unix:///abs`), and `unix://tmp/x.sock`
/// — a host `tmp`, which a Unix socket cannot have — is refused before any connect, with
/// `INVALID_ARGUMENT` naming the forms taken. Before the fix it was read as the relative path
/// `tmp/x.sock` and failed `UNAVAILABLE` with only "No such file or directory".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_uris_as_grpc_names_them_and_an_authority_refused() {
    let dir = temp_dir("uds-uris");
    let path = dir.join("greeter.sock");
    let listener = sockrpc::transport::bind_unix(&path).expect("bind");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        Server::builder()
            .add_service(GreeterServer::new(Hi))
            .serve_unix_with_listener_and_shutdown(listener, async {
                let _ = stopped.await;
            }),
    );
    assert!(path.is_absolute(), "{}", path.display());
    for uri in [
        format!("unix:{}", path.display()),
        format!("unix://{}", path.display()),
        // A query and a fragment are no part of the name, as grpc-go parses the URL.
        format!("unix://{}?x=1#frag", path.display()),
        format!("unix:{}#frag", path.display()),
    ] {
        let reply = tokio::time::timeout(Duration::from_secs(10), async {
            let mut client = GreeterClient::connect(uri.as_str()).await?;
            client.say_hello(HelloRequest { name: uri.clone() }).await
        })
        .await
        .unwrap_or_else(|_| panic!("{uri}: answered within 10 s"))
        .unwrap_or_else(|err| panic!("{uri}: {err}"));
        assert_eq!(reply.into_inner().message, format!("Hello {uri}!"));
    }
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        GreeterClient::connect("unix://tmp/x.sock"),
    )
    .await
    .expect("refused within 10 s")
    .expect_err("a Unix socket URI with a host");
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    for part in [
        "\"unix://tmp/x.sock\"",
        "invalid (non-empty) authority \"tmp\"",
        "unix:PATH (relative or absolute) or unix:///ABSOLUTE/PATH",
        "\"unix:///tmp/x.sock\"",
        "\"unix:tmp/x.sock\"",
    ] {
        assert!(err.message().contains(part), "no {part:?} in {err}");
    }
    stop_and_wait(stop, server).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A path URI is percent-decoded, as grpc-go takes it from the URL's path: `%20` reaches the
/// socket file whose name has a space. Before the fix `%20` was taken as written and the call
/// failed `UNAVAILABLE` with "No such file or directory". A bad escape is refused when parsed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_percent_encoded_path_reaches_a_socket_file_with_a_space() {
    let dir = temp_dir("uds-space");
    let path = dir.join("greeter sock.sock");
    let listener = sockrpc::transport::bind_unix(&path).expect("bind");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        Server::builder()
            .add_service(GreeterServer::new(Hi))
            .serve_unix_with_listener_and_shutdown(listener, async {
                let _ = stopped.await;
            }),
    );
    let shown = path.display().to_string();
    assert!(shown.starts_with('/') && !shown.contains('%'), "{shown}");
    let encoded = shown.replace(' ', "%20");
    for uri in [
        format!("unix://{encoded}"),
        format!("unix:{encoded}"),
        format!("unix://{shown}"),
    ] {
        let reply = tokio::time::timeout(Duration::from_secs(10), async {
            let mut client = GreeterClient::connect(uri.as_str()).await?;
            client.say_hello(HelloRequest { name: uri.clone() }).await
        })
        .await
        .unwrap_or_else(|_| panic!("{uri}: answered within 10 s"))
        .unwrap_or_else(|err| panic!("{uri}: {err}"));
        assert_eq!(reply.into_inner().message, format!("Hello {uri}!"));
    }
    for (uri, escape) in [
        (format!("unix://{}%2", dir.display()), "%2"),
        (format!("unix://{}/a%zz.sock", dir.display()), "%zz"),
    ] {
        let err =
            tokio::time::timeout(Duration::from_secs(10), GreeterClient::connect(uri.clone()))
                .await
                .expect("refused within 10 s")
                .expect_err("a bad escape");
        assert_eq!(err.code(), Code::InvalidArgument, "{uri}: {err}");
        assert!(
            err.message()
                .contains(&format!("invalid percent-escape {escape:?}")),
            "{uri}: {err}"
        );
    }
    stop_and_wait(stop, server).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Says where a call came from, as the server saw its connection.
#[cfg(any(target_os = "linux", target_os = "android"))]
struct Seen;

#[cfg(any(target_os = "linux", target_os = "android"))]
impl Greeter for Seen {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let transport = request.conn_info().map(|conn| conn.transport);
        let peer = request.remote_addr();
        Ok(Response::new(HelloReply {
            message: format!(
                "Hello {}! {transport:?} {peer:?}",
                request.into_inner().name
            ),
        }))
    }
}

/// A server on a Linux abstract name (`serve_unix_abstract_with_shutdown`) answers unary calls
/// from clients that name it as gRPC does (`unix-abstract:NAME`) or build the endpoint
/// (`Endpoint::unix_abstract`); the call knows it came over a Unix socket and has no peer
/// address. Nothing is left on disk, and the name is free again once the server stops. Before
/// the fix `unix-abstract:` was refused as not supported.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_an_abstract_name_answers_a_unary_call() {
    let name = format!("sockrpc-tests-abstract-{}", std::process::id());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = name.clone();
    let server = tokio::spawn(async move {
        Server::builder()
            .add_service(GreeterServer::new(Seen))
            .serve_unix_abstract_with_shutdown(serving, async {
                let _ = stopped.await;
            })
            .await
    });
    let uri = format!("unix-abstract:{name}");
    let mut connected = None;
    for _ in 0..500 {
        if let Ok(client) = GreeterClient::connect(uri.as_str()).await {
            connected = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut client = connected.expect("the server listens within 5 s");
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        client.say_hello(HelloRequest { name: "abs".into() }),
    )
    .await
    .expect("answered within 10 s")
    .expect("call");
    assert_eq!(reply.into_inner().message, "Hello abs! Some(Unix) None");

    // grpc-go's `unix:@NAME` (Go's `net` reads `@` first as abstract) names the same socket.
    let at = format!("unix:@{name}");
    let mut by_at = GreeterClient::connect(at.as_str()).await.expect("connect");
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        by_at.say_hello(HelloRequest { name: "at".into() }),
    )
    .await
    .expect("answered within 10 s")
    .expect("call");
    assert_eq!(reply.into_inner().message, "Hello at! Some(Unix) None");
    drop(by_at);

    let endpoint = sockrpc::Endpoint::unix_abstract(&name).expect("a name");
    assert_eq!(endpoint.to_string(), uri);
    let mut built = GreeterClient::connect(endpoint).await.expect("connect");
    let reply = built
        .say_hello(HelloRequest { name: "too".into() })
        .await
        .expect("call");
    assert_eq!(reply.into_inner().message, "Hello too! Some(Unix) None");

    // A second server is refused the name while the first holds it.
    let err = sockrpc::transport::bind_unix_abstract(&name).expect_err("in use");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    drop((client, built));
    stop_and_wait(stop, server).await;
    drop(sockrpc::transport::bind_unix_abstract(&name).expect("free once the server stopped"));
}
