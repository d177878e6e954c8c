//! A server that takes calls and never answers them: the client's deadlines alone end the
//! calls. The client keeps one timer per connection for its unary calls' deadlines, armed for
//! the soonest; these tests show it fires for each call (not early, not only for the first),
//! re-arms when a sooner deadline arrives, and cancels the expired call on the server.

use crate::raw::{frame, server_frames, END, OPEN, PREFACE};
use crate::support::{bounded, BOUND};
use sockrpc::{Code, Request};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::EchoRequest;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const CANCEL: u8 = 5;

/// What the fake server has read, and a switch: answer the first call at once or not.
#[derive(Clone, Default)]
struct Seen {
    bytes: Arc<Mutex<Vec<u8>>>,
}

impl Seen {
    /// The frames read so far, as (kind, call id).
    fn frames(&self) -> Vec<(u8, u32)> {
        let bytes = self.bytes.lock().expect("lock").clone();
        server_frames(&bytes)
            .into_iter()
            .map(|f| (f.kind, f.call_id))
            .collect()
    }

    /// Waits (bounded) until `check` holds for the frames read.
    async fn wait_for(&self, what: &str, check: impl Fn(&[(u8, u32)]) -> bool) -> Vec<(u8, u32)> {
        let started = Instant::now();
        loop {
            let frames = self.frames();
            if check(&frames) {
                return frames;
            }
            assert!(
                started.elapsed() < BOUND,
                "{what}: not seen within {BOUND:?}; frames {frames:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// An END with `NOT_FOUND`, no message, details or trailers.
fn end_not_found(call_id: u32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&5u32.to_be_bytes());
    body.extend_from_slice(&0u32.to_be_bytes());
    body.extend_from_slice(&0u32.to_be_bytes());
    body.extend_from_slice(&0u16.to_be_bytes());
    frame(END, 0, call_id, &body)
}

/// A server that sends its preface, records everything it reads, and answers nothing, or only
/// the first call (with `NOT_FOUND`) when `answer_first`.
async fn silent_server(answer_first: bool) -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let seen = Seen::default();
    let record = seen.clone();
    tokio::spawn(async move {
        let Ok(Ok((mut stream, _))) = tokio::time::timeout(BOUND, listener.accept()).await else {
            return;
        };
        let _ = stream.write_all(PREFACE).await;
        let mut answered = !answer_first;
        let mut buf = [0u8; 4096];
        // Bounded in time (the tests end well before) and in bytes.
        let _ = tokio::time::timeout(BOUND * 4, async {
            loop {
                let n = match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let first_open = {
                    let mut bytes = record.bytes.lock().expect("lock");
                    if bytes.len() > 1 << 20 {
                        return;
                    }
                    bytes.extend_from_slice(&buf[..n]);
                    server_frames(&bytes)
                        .into_iter()
                        .find(|f| f.kind == OPEN)
                        .map(|f| f.call_id)
                };
                if let (false, Some(id)) = (answered, first_open) {
                    answered = true;
                    let _ = stream.write_all(&end_not_found(id)).await;
                }
            }
        })
        .await;
    });
    (addr, seen)
}

fn echo_with_timeout(timeout: Duration) -> Request<EchoRequest> {
    let mut request = Request::new(EchoRequest::default());
    request.set_timeout(timeout);
    request
}

async fn connect(addr: SocketAddr) -> EchoClient<sockrpc::Channel> {
    bounded("connect", EchoClient::connect(format!("tcp://{addr}")))
        .await
        .expect("connect")
}

/// Makes a call that nobody answers: it must fail `DEADLINE_EXCEEDED`, and not before
/// `timeout` (within the test's bound, so not much after either).
async fn expire(what: &str, client: &mut EchoClient<sockrpc::Channel>, timeout: Duration) {
    let started = Instant::now();
    let err = bounded(what, client.echo(echo_with_timeout(timeout)))
        .await
        .expect_err("nobody answers");
    assert_eq!(err.code(), Code::DeadlineExceeded, "{what}: {err:?}");
    assert!(
        started.elapsed() >= timeout,
        "{what} ended before its own deadline: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_ends_an_unanswered_call_and_cancels_it() {
    let (addr, seen) = silent_server(false).await;
    let mut client = connect(addr).await;
    expire("the call", &mut client, Duration::from_millis(200)).await;
    let frames = seen
        .wait_for("the CANCEL", |frames| {
            frames.iter().any(|(kind, _)| *kind == CANCEL)
        })
        .await;
    let open = frames.iter().find(|(kind, _)| *kind == OPEN).expect("OPEN");
    let cancel = frames
        .iter()
        .find(|(kind, _)| *kind == CANCEL)
        .expect("CANCEL");
    assert_eq!(
        open.1, cancel.1,
        "the CANCEL names the expired call: {frames:?}"
    );
    assert_eq!(
        frames.iter().filter(|(kind, _)| *kind == CANCEL).count(),
        1,
        "one CANCEL, not one from the timer and another when the call is dropped: {frames:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sooner_deadline_re_arms_the_timer() {
    let (addr, seen) = silent_server(false).await;
    let client = connect(addr).await;
    // A call with a long deadline arms the connection's timer far ahead...
    let mut long_client = client.clone();
    let long = tokio::spawn(async move {
        long_client
            .echo(echo_with_timeout(Duration::from_secs(600)))
            .await
    });
    seen.wait_for("the first OPEN", |frames| {
        frames.iter().any(|(kind, _)| *kind == OPEN)
    })
    .await;
    // ...and a later call with a short one must still end on time: within the bound, not
    // after ten minutes.
    let mut short_client = client.clone();
    expire(
        "the short call",
        &mut short_client,
        Duration::from_millis(100),
    )
    .await;
    assert!(!long.is_finished(), "the long call is still waiting");
    long.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_armed_for_an_answered_call_re_arms_for_the_next() {
    // The first call is answered at once, so the timer is left armed for a deadline nobody
    // waits for; the second call's later deadline must still be kept, neither early nor never.
    let (addr, _seen) = silent_server(true).await;
    let mut client = connect(addr).await;
    let first = bounded(
        "the first call",
        client.echo(echo_with_timeout(Duration::from_millis(150))),
    )
    .await
    .expect_err("answered NOT_FOUND");
    assert_eq!(first.code(), Code::NotFound, "{first:?}");
    // Not at the first call's deadline, and not never.
    expire("the second call", &mut client, Duration::from_millis(600)).await;
    // Calls keep working on the connection after a deadline.
    expire("a third call", &mut client, Duration::from_millis(100)).await;
}
