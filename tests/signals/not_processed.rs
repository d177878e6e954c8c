//! "Not processed" is the protocol's flag, set only by a server connection that refused a call
//! unstarted.

use super::support::*;

use bytes::Bytes;
use prost::Message as _;
use sockrpc::{Channel, Code, Endpoint, MethodPath};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::{EchoReply, EchoRequest, FailRequest, SleepRequest};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------------------------
// (1) A handler cannot forge "not processed".

/// A handler that ran and returns `Status::not_processed` must not make the client send the
/// call again: the client sees a plain `UNAVAILABLE`, the handler ran once, although the pool
/// had a second connection to retry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_cannot_forge_not_processed_to_make_the_client_resend_a_call_that_ran() {
    let server = Running::echo(false).await;
    let endpoint = Endpoint::from_uri(&format!("tcp://{}", server.tcp))
        .expect("endpoint")
        .pool_size(2)
        .timeout(BOUND);
    let channel = bounded("connect", Channel::connect(endpoint))
        .await
        .expect("connect");
    assert_eq!(
        channel.connections().len(),
        2,
        "a second connection to retry on"
    );
    let mut client = EchoClient::new(channel);

    let status = bounded("call", client.fail(FailRequest::default()))
        .await
        .expect_err("the handler fails the call");
    assert_eq!(
        server.handlers.fails.load(Ordering::SeqCst),
        1,
        "the call ran once and was not sent again"
    );
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        !status.is_not_processed(),
        "a handler's status is never a refusal: {status:?}"
    );
    // Nothing arrives later either.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.handlers.fails.load(Ordering::SeqCst), 1);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// (2) A draining server's refusal is still "not processed", and the client retries it.

/// After GOAWAY, a call that crosses it is refused unstarted with END's `NOT_PROCESSED` flag
/// (a protocol field, not a trailer), while the call already running finishes normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_server_refuses_late_calls_with_the_not_processed_flag() {
    let mut server = Running::echo(false).await;
    let mut raw = raw_connect(server.tcp).await;
    let mut out = Vec::new();
    let sleep = SleepRequest {
        millis: 1_000,
        token: String::new(),
    };
    put_unary(
        &mut out,
        1,
        &MethodPath::from_static("/sockrpc.test.Echo/Sleep"),
        &[],
        &sleep,
    );
    raw.write_all(&out).await.expect("write");
    let sleeps = Arc::clone(&server.handlers.sleeps);
    eventually("the first call running", || {
        sleeps.load(Ordering::SeqCst) == 1
    })
    .await;

    server.signal_stop();
    let (goaway, _) = read_until(&mut raw, GOAWAY, 0).await;
    let last = u32::from_be_bytes(goaway.body[0..4].try_into().expect("4 bytes"));
    assert_eq!(last, 1, "GOAWAY keeps the running call");

    // A call the client sent before it read the GOAWAY.
    let mut out = Vec::new();
    put_unary(&mut out, 3, &ECHO, &[], &EchoRequest::default());
    raw.write_all(&out).await.expect("write");
    let (end, _) = read_until(&mut raw, END, 3).await;
    let refused = parse_end(&end.body);
    assert_eq!(
        refused.code,
        Code::Unavailable.as_u32(),
        "{}",
        refused.message
    );
    assert_ne!(
        end.flags & FLAG_NOT_PROCESSED,
        0,
        "refused unstarted: the END carries the NOT_PROCESSED flag"
    );
    assert!(
        refused.trailers.iter().all(|k| !k.starts_with("sockrpc-")),
        "no signal in the trailers: {:?}",
        refused.trailers
    );
    assert_eq!(server.handlers.echoes.load(Ordering::SeqCst), 0);

    // The running call still finishes, without the flag.
    let (end, _) = read_until(&mut raw, END, 1).await;
    assert_eq!(parse_end(&end.body).code, 0);
    assert_eq!(end.flags & FLAG_NOT_PROCESSED, 0);
    drop(raw);
    server.stop().await;
}

/// How the hand-written server below refuses the first call it gets.
#[derive(Clone, Copy)]
enum Refusal {
    /// As a draining server does: END(UNAVAILABLE) with the `NOT_PROCESSED` flag, then GOAWAY.
    Flag,
    /// END(UNAVAILABLE) with the old trailer `sockrpc-not-processed: 1` and no flag.
    Trailer,
}

#[derive(Default)]
struct FakeLog {
    /// Connection index of each refused call.
    refused: Vec<usize>,
    /// Connection index of each answered call.
    served: Vec<usize>,
    accepted: usize,
}

/// A server written by hand: refuses the first call it is sent (as `refusal` says) and echoes
/// every later one, on whichever connection.
async fn fake_server(refusal: Refusal) -> (SocketAddr, Arc<Mutex<FakeLog>>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let log = Arc::new(Mutex::new(FakeLog::default()));
    let task = {
        let log = Arc::clone(&log);
        tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let index = {
                    let mut log = log.lock().expect("lock");
                    log.accepted += 1;
                    log.accepted - 1
                };
                conns.spawn(fake_connection(stream, index, refusal, Arc::clone(&log)));
            }
        })
    };
    (addr, log, task)
}

async fn fake_connection(
    mut stream: TcpStream,
    index: usize,
    refusal: Refusal,
    log: Arc<Mutex<FakeLog>>,
) {
    let mut preface = [0u8; 8];
    if stream.write_all(PREFACE).await.is_err() || stream.read_exact(&mut preface).await.is_err() {
        return;
    }
    while let Some(frame) = read_frame(&mut stream).await {
        if frame.kind != MESSAGE {
            continue;
        }
        let id = frame.call_id;
        let mut out = Vec::new();
        let refuse = {
            let mut log = log.lock().expect("lock");
            let first = log.refused.is_empty() && log.served.is_empty();
            if first {
                log.refused.push(index);
            } else {
                log.served.push(index);
            }
            first
        };
        if refuse {
            match refusal {
                Refusal::Flag => {
                    put_end(
                        &mut out,
                        id,
                        FLAG_NOT_PROCESSED,
                        Code::Unavailable,
                        "draining",
                        &[],
                    );
                    put_goaway(&mut out, id, Code::Unavailable, "draining");
                }
                Refusal::Trailer => put_end(
                    &mut out,
                    id,
                    0,
                    Code::Unavailable,
                    "trailer only",
                    &[("sockrpc-not-processed", "1")],
                ),
            }
        } else {
            let request = EchoRequest::decode(&frame.body[..]).expect("an EchoRequest");
            let reply = EchoReply {
                payload: request.payload,
                id: request.id,
            };
            put_frame(
                &mut out,
                MESSAGE,
                FLAG_END_STREAM,
                id,
                &reply.encode_to_vec(),
            );
            put_end(&mut out, id, 0, Code::Ok, "", &[]);
        }
        // One write: the client reads the END and the GOAWAY together.
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

async fn pooled_client(addr: SocketAddr, log: &Arc<Mutex<FakeLog>>) -> EchoClient {
    let endpoint = Endpoint::from_uri(&format!("tcp://{addr}"))
        .expect("endpoint")
        .pool_size(2)
        .timeout(BOUND);
    let channel = bounded("connect", Channel::connect(endpoint))
        .await
        .expect("connect");
    let log = Arc::clone(log);
    eventually("both pooled connections accepted", || {
        log.lock().expect("lock").accepted == 2
    })
    .await;
    EchoClient::new(channel)
}

/// END with the `NOT_PROCESSED` flag, as a draining server sends it, reaches the client as
/// `is_not_processed()`: the channel sends the call again on its other connection, and the
/// caller sees only the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_flagged_not_processed_is_retried_on_another_connection() {
    let (addr, log, task) = fake_server(Refusal::Flag).await;
    let mut client = pooled_client(addr, &log).await;
    let reply = bounded(
        "call",
        client.echo(EchoRequest {
            payload: Bytes::from_static(b"again"),
            id: 7,
        }),
    )
    .await
    .expect("retried transparently")
    .into_inner();
    assert_eq!(reply.id, 7);
    assert_eq!(&reply.payload[..], b"again");
    {
        let log = log.lock().expect("lock");
        assert_eq!(log.refused.len(), 1);
        assert_eq!(log.served.len(), 1, "sent once more, not more");
        assert_ne!(
            log.refused[0], log.served[0],
            "the retry went to the other connection"
        );
    }
    task.abort();
}

/// The old signal, a `sockrpc-not-processed` trailer, is user metadata: dropped off the wire and
/// never read as a refusal, so the call is not sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_not_processed_trailer_without_the_flag_is_not_a_refusal() {
    let (addr, log, task) = fake_server(Refusal::Trailer).await;
    let mut client = pooled_client(addr, &log).await;
    let status = bounded("call", client.echo(EchoRequest::default()))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(!status.is_not_processed(), "{status:?}");
    assert!(
        status
            .metadata()
            .iter()
            .all(|(k, _)| !k.starts_with("sockrpc-")),
        "reserved keys are dropped off the wire: {:?}",
        status.metadata()
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let log = log.lock().expect("lock");
    assert_eq!(log.refused.len(), 1);
    assert!(log.served.is_empty(), "not sent again: {:?}", log.served);
    drop(log);
    task.abort();
}
