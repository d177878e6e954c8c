//! A channel's UDP side used from one runtime after another: its socket was registered with
//! the reactor of the runtime that made it, and its send-coalescing task ran there. Calls on
//! the next runtime must still go over UDP and be answered, alone or many at once. A
//! `UdpClient` used directly stays its runtime's: once that ended, its calls must still end by
//! their deadline.

use super::support::{on_runtime, serving, Flavor};
use bytes::Bytes;
use prost::Message as _;
use sockrpc::service::udp::{UdpClient, UdpClientConfig, UdpOutcome, UdpServerConfig};
use sockrpc::{Channel, Endpoint, MethodPath, Request, Response, Status};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::{Echo, EchoServer};
use sockrpc_tests::echo::{EchoReply, EchoRequest, FailRequest, GrowRequest, SleepRequest};
use std::time::Duration;
use tokio::time::Instant;

static ECHO: MethodPath = MethodPath::from_static("/sockrpc.test.Echo/Echo");

/// Echoes the request's id.
struct Echoing;

impl Echo for Echoing {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let EchoRequest { payload, id } = request.into_inner();
        Ok(Response::new(EchoReply { payload, id }))
    }

    async fn sleep(&self, _: Request<SleepRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not used"))
    }

    async fn fail(&self, _: Request<FailRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not used"))
    }

    async fn grow(&self, _: Request<GrowRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not used"))
    }
}

/// Current-thread and multi-thread runtimes in turn.
fn flavor(turn: usize) -> Flavor {
    if turn % 2 == 0 {
        Flavor::Current
    } else {
        Flavor::Multi
    }
}

/// Calls made on each runtime: one alone, then these many at once (their requests leave
/// together, through the coalescer where the kernel has GSO).
const TOGETHER: u64 = 8;

async fn echo(channel: &Channel, id: u64) -> Result<u64, Status> {
    let mut client = EchoClient::new(channel.clone());
    let mut request = Request::new(EchoRequest {
        payload: Default::default(),
        id,
    });
    request.set_timeout(Duration::from_secs(5));
    Ok(client.echo(request).await?.into_inner().id)
}

#[test]
fn udp_calls_are_answered_on_each_runtime_that_uses_the_channel() {
    let serving = serving();
    let (tcp, udp, stop) = serving.block_on(async {
        let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let listener = sockrpc::transport::bind_tcp(any, &Default::default()).expect("bind tcp");
        let tcp = listener.local_addr().expect("addr");
        let socket = tokio::net::UdpSocket::bind(any).await.expect("bind udp");
        let udp = socket.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(
            sockrpc::Server::builder()
                .udp(socket, UdpServerConfig::default())
                .add_service(EchoServer::new(Echoing))
                .serve_with_listener_and_shutdown(listener, async {
                    let _ = stopped.await;
                }),
        );
        (tcp, udp, stop)
    });
    let endpoint = Endpoint::from_uri(&format!("tcp://{tcp}"))
        .expect("endpoint")
        .udp(udp);
    let channel = Channel::lazy(endpoint).expect("channel");

    for round in 0..4usize {
        on_runtime(flavor(round), &format!("round {round}"), || async {
            let base = round as u64 * 100;
            let alone = echo(&channel, base)
                .await
                .unwrap_or_else(|status| panic!("round {round}, a call alone: {status:?}"));
            assert_eq!(alone, base);
            let calls = (1..=TOGETHER).map(|n| echo(&channel, base + n));
            let answers = futures_util::future::join_all(calls).await;
            for (n, answer) in answers.into_iter().enumerate() {
                let id = answer
                    .unwrap_or_else(|status| panic!("round {round}, call {n} of many: {status:?}"));
                assert_eq!(id, base + 1 + n as u64);
            }
            // Every call went over UDP and was answered there, none by TCP instead (the
            // counters are those of this runtime's client).
            let stats = channel.udp_stats().expect("UDP set up");
            assert!(stats.replies > TOGETHER, "round {round}: {stats:?}");
        });
    }
    let _ = stop.send(());
    drop(channel);
    drop(serving);
}

/// A `UdpClient` used directly belongs to the runtime that made it (a channel makes one per
/// runtime): once that runtime shut down, its answers can no longer be read. A call on another
/// runtime must not hang (the reader's read failed every time, and it never looked at its own
/// call's timeout), nor wait out its deadline for an answer nobody can read: it is handed back
/// unsent (`NotSuitable`), to go over the stream.
#[test]
fn a_udp_client_whose_runtime_ended_hands_calls_back_unsent() {
    let serving = serving();
    let (udp, stop) = serving.block_on(async {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let udp = socket.local_addr().expect("addr");
        let listener =
            sockrpc::transport::bind_tcp("127.0.0.1:0".parse().expect("addr"), &Default::default())
                .expect("bind tcp");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(
            sockrpc::Server::builder()
                .udp(socket, UdpServerConfig::default())
                .add_service(EchoServer::new(Echoing))
                .serve_with_listener_and_shutdown(listener, async {
                    let _ = stopped.await;
                }),
        );
        (udp, stop)
    });
    let request = Request::new(Bytes::from(
        EchoRequest {
            payload: Default::default(),
            id: 7,
        }
        .encode_to_vec(),
    ));
    let call = |client: &UdpClient, turn: usize| {
        let outcome = on_runtime(flavor(turn), &format!("turn {turn}"), || async {
            let deadline = Instant::now() + Duration::from_millis(300);
            client.call(&ECHO, &request, Some(deadline)).await
        });
        match outcome {
            UdpOutcome::NotSuitable => None,
            UdpOutcome::Reply(Err(status)) => Some(status.code()),
            other => panic!("turn {turn}: {other:?}"),
        }
    };
    // Made on a runtime that lives on while the client is used there, then shut down.
    let home = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = home
        .block_on(UdpClient::connect(udp, UdpClientConfig::default()))
        .expect("client");
    let answered = home.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(5);
        client.call(&ECHO, &request, Some(deadline)).await
    });
    assert!(matches!(answered, UdpOutcome::Reply(Ok(_))), "{answered:?}");
    drop(home);
    for turn in 0..2 {
        assert_eq!(call(&client, turn), None, "turn {turn}");
        assert!(client.in_fallback(), "turn {turn}");
    }
    let _ = stop.send(());
}
