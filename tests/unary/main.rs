//! Unary calls end to end over loopback TCP: success, metadata, status codes, deadlines,
//! cancellation, concurrency, size limits, codecs.

use bytes::Bytes;
use sockrpc::{Code, Endpoint, Limits, Request, Response, Server, Status};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::{Echo, EchoServer};
use sockrpc_tests::echo::{EchoReply, EchoRequest, FailRequest, GrowRequest, SleepRequest};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// What became of each `Sleep` call, by token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Running,
    Finished,
    Cancelled,
}

#[derive(Default, Clone)]
struct TestEcho {
    fates: Arc<Mutex<HashMap<String, Fate>>>,
}

impl TestEcho {
    fn fate(&self, token: &str) -> Option<Fate> {
        self.fates.lock().expect("lock").get(token).copied()
    }
}

/// Records `Cancelled` if the handler's future is dropped before it finishes.
struct Guard {
    fates: Arc<Mutex<HashMap<String, Fate>>>,
    token: String,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let mut fates = self.fates.lock().expect("lock");
        if fates.get(&self.token) == Some(&Fate::Running) {
            fates.insert(self.token.clone(), Fate::Cancelled);
        }
    }
}

impl Echo for TestEcho {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let mut leading = sockrpc::MetadataMap::new();
        let mut trailing = sockrpc::MetadataMap::new();
        for (key, value) in request.metadata().iter() {
            let target = if key.starts_with("x-trailer") {
                &mut trailing
            } else if key.starts_with("x-echo") {
                &mut leading
            } else {
                continue;
            };
            if sockrpc::protocol::is_bin_key(key) {
                target
                    .insert_bin(key, value.to_vec().into())
                    .expect("valid");
            } else {
                target
                    .insert_str(key, std::str::from_utf8(value).expect("ascii"))
                    .expect("valid");
            }
        }
        let message = request.into_inner();
        let reply = EchoReply {
            payload: message.payload,
            id: message.id,
        };
        Ok(Response::from_parts(leading, reply, trailing))
    }

    async fn sleep(&self, request: Request<SleepRequest>) -> Result<Response<EchoReply>, Status> {
        let SleepRequest { millis, token } = request.into_inner();
        self.fates
            .lock()
            .expect("lock")
            .insert(token.clone(), Fate::Running);
        let guard = Guard {
            fates: Arc::clone(&self.fates),
            token: token.clone(),
        };
        tokio::time::sleep(Duration::from_millis(millis)).await;
        self.fates
            .lock()
            .expect("lock")
            .insert(token, Fate::Finished);
        drop(guard);
        Ok(Response::new(EchoReply::default()))
    }

    async fn fail(&self, request: Request<FailRequest>) -> Result<Response<EchoReply>, Status> {
        let FailRequest {
            code,
            message,
            details,
        } = request.into_inner();
        Err(Status::with_details(
            Code::from_u32(code as u32),
            message,
            details,
        ))
    }

    async fn grow(&self, request: Request<GrowRequest>) -> Result<Response<EchoReply>, Status> {
        let size = request.into_inner().size as usize;
        Ok(Response::new(EchoReply {
            payload: Bytes::from(vec![7u8; size]),
            id: 0,
        }))
    }
}

struct TestServer {
    addr: SocketAddr,
    echo: TestEcho,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    async fn start() -> TestServer {
        TestServer::start_with(Limits::default(), "127.0.0.1:0").await
    }

    async fn start_with(limits: Limits, addr: &str) -> TestServer {
        let echo = TestEcho::default();
        let listener = sockrpc::transport::bind_tcp(
            addr.parse().expect("addr"),
            &sockrpc::SocketConfig::default(),
        )
        .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let service = EchoServer::new(echo.clone());
        let task = tokio::spawn(
            Server::builder()
                .limits(limits)
                .grace_period(Duration::from_secs(5))
                .add_service(service)
                .serve_with_listener_and_shutdown(listener, async {
                    let _ = stopped.await;
                }),
        );
        TestServer {
            addr,
            echo,
            stop: Some(stop),
            task,
        }
    }

    fn uri(&self) -> String {
        format!("tcp://{}", self.addr)
    }

    async fn client(&self) -> EchoClient {
        EchoClient::connect(self.uri()).await.expect("connect")
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("server stops within its grace period")
            .expect("server task")
            .expect("serve");
    }
}

fn echo_request(payload: impl Into<Bytes>, id: u64) -> EchoRequest {
    EchoRequest {
        payload: payload.into(),
        id,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_success_with_metadata_both_ways() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let mut request = Request::new(echo_request(&b"hello"[..], 42));
    request
        .metadata_mut()
        .insert_str("x-echo-text", "some value")
        .expect("valid");
    request
        .metadata_mut()
        .insert_bin("x-echo-raw-bin", vec![0u8, 159, 255, 10].into())
        .expect("valid");
    request
        .metadata_mut()
        .insert_str("x-trailer-note", "in the trailers")
        .expect("valid");
    request
        .metadata_mut()
        .insert_str("not-echoed", "x")
        .expect("valid");
    let response = client.echo(request).await.expect("call");
    assert_eq!(
        response.metadata().get_str("x-echo-text"),
        Some("some value")
    );
    assert_eq!(
        response.metadata().get_bin_bytes("x-echo-raw-bin"),
        Some(&[0u8, 159, 255, 10][..])
    );
    assert!(!response.metadata().contains_key("not-echoed"));
    assert_eq!(
        response.trailers().get_str("x-trailer-note"),
        Some("in the trailers")
    );
    let reply = response.into_inner();
    assert_eq!(reply.payload, Bytes::from_static(b"hello"));
    assert_eq!(reply.id, 42);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_loopback_round_trip() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback on this host; nothing to test");
        return;
    }
    let server = TestServer::start_with(Limits::default(), "[::1]:0").await;
    let mut client = server.client().await;
    let reply = client
        .echo(echo_request(&b"v6"[..], 6))
        .await
        .expect("call");
    assert_eq!(reply.into_inner().id, 6);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_code_message_and_details_round_trip() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let message = "tab\there, crlf\r\nthere, astral 𝄞 😀, quotes \" and % and \u{0}";
    for code in Code::ALL.into_iter().filter(|c| *c != Code::Ok) {
        let err = client
            .fail(FailRequest {
                code: code.as_u32() as i32,
                message: message.into(),
                details: Bytes::from_static(b"\x00\x01binary"),
            })
            .await
            .expect_err("fails");
        assert_eq!(err.code(), code);
        assert_eq!(err.message(), message);
        assert_eq!(err.details(), b"\x00\x01binary");
    }
    // An out-of-range code from a handler arrives as Unknown, as gRPC clients treat it.
    let err = client
        .fail(FailRequest {
            code: 99,
            message: "odd".into(),
            details: Bytes::new(),
        })
        .await
        .expect_err("fails");
    assert_eq!(err.code(), Code::Unknown);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_method_and_service_are_unimplemented() {
    let server = TestServer::start().await;
    let channel = sockrpc::Channel::connect(server.uri())
        .await
        .expect("connect");
    let mut client = sockrpc::Client::new(channel);
    for path in ["/sockrpc.test.Echo/Nope", "/no.such.Service/Echo"] {
        let err = client
            .unary::<EchoRequest, EchoReply, _>(
                Request::new(echo_request(&b""[..], 0)),
                path,
                sockrpc::ProstCodec,
            )
            .await
            .expect_err("unimplemented");
        assert_eq!(err.code(), Code::Unimplemented, "{path}: {err:?}");
        assert!(err.message().contains(path), "{path} not in {err:?}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_exceeded_and_handler_cancelled() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    // The handler would take 60 s: far past the 10 s bound below, so a deadline that only
    // fired once the handler answered fails the test.
    let mut request = Request::new(SleepRequest {
        millis: 60_000,
        token: "deadline".into(),
    });
    request.set_timeout(Duration::from_millis(50));
    let started = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(20), client.sleep(request))
        .await
        .expect("the call outlived its deadline by 20 s")
        .expect_err("deadline");
    let elapsed = started.elapsed();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(elapsed >= Duration::from_millis(45), "{elapsed:?}");
    // Not the handler's 60 s. 10 s, not less: `cargo test` runs this binary's tests at once on
    // CI's 2 cores, and a stall of a few seconds there must not fail a correct deadline.
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    // The server's own deadline fires at the same moment; give it a bounded while (10 s) to
    // show.
    let shown = Instant::now() + Duration::from_secs(10);
    let mut fate = server.echo.fate("deadline");
    while fate != Some(Fate::Cancelled) && Instant::now() < shown {
        tokio::time::sleep(Duration::from_millis(10)).await;
        fate = server.echo.fate("deadline");
    }
    assert_eq!(fate, Some(Fate::Cancelled));
    // The connection still serves.
    client
        .echo(echo_request(&b"after"[..], 1))
        .await
        .expect("after");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_call_cancels_the_handler() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let mut sleeper = client.clone();
    let call = tokio::spawn(async move {
        sleeper
            .sleep(SleepRequest {
                millis: 10_000,
                token: "dropped".into(),
            })
            .await
    });
    for _ in 0..100 {
        if server.echo.fate("dropped") == Some(Fate::Running) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.echo.fate("dropped"), Some(Fate::Running));
    call.abort();
    let mut fate = None;
    for _ in 0..200 {
        fate = server.echo.fate("dropped");
        if fate == Some(Fate::Cancelled) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(fate, Some(Fate::Cancelled));
    client
        .echo(echo_request(&b"after"[..], 1))
        .await
        .expect("after");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_calls_on_one_connection() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let mut calls = tokio::task::JoinSet::new();
    for id in 0..1_000u64 {
        let mut client = client.clone();
        calls.spawn(async move {
            // Distinct sizes and contents, so a crossed reply cannot pass by accident.
            let payload: Vec<u8> = (0..(id % 97) as usize + 1)
                .map(|i| (id as usize * 31 + i) as u8)
                .collect();
            let reply = client
                .echo(echo_request(payload.clone(), id))
                .await
                .expect("call")
                .into_inner();
            assert_eq!(reply.id, id);
            assert_eq!(reply.payload.as_ref(), &payload[..]);
            id
        });
    }
    let mut seen = 0;
    let all = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(result) = calls.join_next().await {
            result.expect("task");
            seen += 1;
        }
    })
    .await;
    assert!(all.is_ok(), "calls did not finish");
    assert_eq!(seen, 1_000);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_size_limits_fail_only_the_call() {
    let server = TestServer::start().await;
    let limit = Limits::default().max_message_size;
    let mut client = server.client().await;
    // Just under: field tag + length prefix take a few bytes.
    let under = vec![1u8; limit - 16];
    let reply = client
        .echo(echo_request(under.clone(), 1))
        .await
        .expect("just under the limit");
    assert_eq!(reply.into_inner().payload.len(), under.len());

    // Over, caught by the client before sending.
    let err = client
        .echo(echo_request(vec![1u8; limit + 1], 2))
        .await
        .expect_err("over");
    assert_eq!(err.code(), Code::ResourceExhausted);

    // Over, caught by the server: a client that allows more than the server does.
    let big = Endpoint::from_uri(&server.uri())
        .expect("endpoint")
        .limits(Limits::default().with_max_message_size(limit * 2));
    let mut generous = EchoClient::connect(big).await.expect("connect");
    let err = generous
        .echo(echo_request(vec![1u8; limit + 100], 3))
        .await
        .expect_err("server refuses");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    // The same connection keeps serving.
    let reply = generous
        .echo(echo_request(&b"still here"[..], 4))
        .await
        .expect("after");
    assert_eq!(reply.into_inner().id, 4);

    // A response over the server's limit fails that call on the server side.
    let err = client
        .grow(GrowRequest {
            size: limit as u64 + 1,
        })
        .await
        .expect_err("too big to send");
    assert_eq!(err.code(), Code::ResourceExhausted);
    client
        .echo(echo_request(&b"ok"[..], 5))
        .await
        .expect("after");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_over_the_client_limit_fails_only_the_call() {
    let server = TestServer::start().await;
    let small = Endpoint::from_uri(&server.uri())
        .expect("endpoint")
        .limits(Limits::default().with_max_message_size(1024));
    let mut client = EchoClient::connect(small).await.expect("connect");
    let err = client
        .grow(GrowRequest { size: 64 * 1024 })
        .await
        .expect_err("too big to receive");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let reply = client.grow(GrowRequest { size: 100 }).await.expect("small");
    assert_eq!(reply.into_inner().payload.len(), 100);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_shutdown_lets_calls_finish_then_refuses() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let mut sleeper = client.clone();
    let in_flight = tokio::spawn(async move {
        sleeper
            .sleep(SleepRequest {
                millis: 300,
                token: "graceful".into(),
            })
            .await
    });
    for _ in 0..100 {
        if server.echo.fate("graceful").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let uri = server.uri();
    server.shutdown().await;
    let result = tokio::time::timeout(Duration::from_secs(5), in_flight)
        .await
        .expect("bounded")
        .expect("task");
    assert!(result.is_ok(), "in-flight call was lost: {result:?}");
    let err = client
        .echo(echo_request(&b"late"[..], 1))
        .await
        .expect_err("server gone");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let err = EchoClient::connect(uri).await.expect_err("refused");
    assert_eq!(err.code(), Code::Unavailable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_default_timeout_applies() {
    let server = TestServer::start().await;
    let endpoint = Endpoint::from_uri(&server.uri())
        .expect("endpoint")
        .timeout(Duration::from_millis(50));
    let mut client = EchoClient::connect(endpoint).await.expect("connect");
    let err = client
        .sleep(SleepRequest {
            millis: 2_000,
            token: "default-timeout".into(),
        })
        .await
        .expect_err("times out");
    assert_eq!(err.code(), Code::DeadlineExceeded);
    server.shutdown().await;
}

#[cfg(feature = "bincode")]
mod bincode_codec;

mod deadline_attempts;
mod deadline_below;
mod deadline_encode;
mod deadline_entry_bounded;
mod deadline_lift;
mod large_request;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tower_layers_wrap_both_sides() {
    use sockrpc::Call;
    use tower::ServiceBuilder;

    fn tag(mut call: Call, key: &str) -> Call {
        call.request_mut()
            .metadata_mut()
            .insert_str(key, "seen")
            .expect("valid key");
        call
    }

    let listener = sockrpc::transport::bind_tcp(
        "127.0.0.1:0".parse().expect("addr"),
        &sockrpc::SocketConfig::default(),
    )
    .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(
        Server::builder()
            .layer(tower::util::MapRequestLayer::new(|call: Call| {
                tag(call, "x-echo-server-layer")
            }))
            .add_service(EchoServer::new(TestEcho::default()))
            .serve_with_listener(listener),
    );
    let channel = sockrpc::Channel::connect(addr).await.expect("connect");
    let layered = ServiceBuilder::new()
        .map_request(|call: Call| tag(call, "x-echo-client-layer"))
        .service(channel);
    let mut client = EchoClient::new(layered);
    let response = client
        .echo(echo_request(&b"layered"[..], 9))
        .await
        .expect("call");
    assert_eq!(
        response.metadata().get_str("x-echo-client-layer"),
        Some("seen")
    );
    assert_eq!(
        response.metadata().get_str("x-echo-server-layer"),
        Some("seen")
    );
    assert_eq!(response.into_inner().id, 9);
    server.abort();
}
