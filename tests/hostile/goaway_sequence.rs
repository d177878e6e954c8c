//! GOAWAYs a hostile server strings together on one connection: one naming a last call id above
//! any call sent, ids that fall and then grow again (HTTP/2 forbids raising it), answers after
//! them for calls it refused and for calls never opened, and a last GOAWAY(`INTERNAL`). A
//! GOAWAY only ever takes calls away: a call once failed "not processed" (its caller may send
//! it elsewhere) stays failed whatever the server says later, a call below every id is still
//! answered, and nothing new is sent on the connection.
//!
//! The other GOAWAY attacks (every connection sent away or retired at once, reconnect storms)
//! are in `server_probe_io.rs`.

use crate::raw::{frame, MESSAGE, PREFACE};
use crate::server_probe::{fake_server, goaway, next_frame, next_request, ANSWER};
use crate::support::bounded;
use bytes::Bytes;
use sockrpc::transport::ClientConnection;
use sockrpc::{Code, Limits, MethodPath, Request};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// GOAWAY codes: UNAVAILABLE, INTERNAL.
const UNAVAILABLE: u32 = 14;
const INTERNAL: u32 = 13;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goaways_only_take_calls_away() {
    // Requests the server saw, on any connection.
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&requests);
    let fake = fake_server(move |mut stream| {
        let seen = Arc::clone(&seen);
        async move {
            let _ = stream.write_all(PREFACE).await;
            let mut buf = Vec::new();
            let mut ids = Vec::new();
            while ids.len() < 3 {
                let Some((id, _)) = next_request(&mut stream, &mut buf).await else {
                    return;
                };
                seen.fetch_add(1, Ordering::SeqCst);
                ids.push(id);
            }
            let (first, last) = (ids[0], ids[2]);
            let mut out = [
                goaway(u32::MAX, UNAVAILABLE, b"above every call"),
                goaway(first, UNAVAILABLE, b"only the first"),
                goaway(last + 1000, UNAVAILABLE, b"grown again"),
            ]
            .concat();
            for id in [first, ids[1], last, last + 1] {
                out.extend_from_slice(&frame(MESSAGE, ANSWER, id, &id.to_be_bytes()));
            }
            out.extend_from_slice(&goaway(0, INTERNAL, b"and a last word"));
            if stream.write_all(&out).await.is_err() {
                return;
            }
            // Counts what else the client sends here (it must send no new call).
            while let Some((kind, flags, _, _)) = next_frame(&mut stream, &mut buf).await {
                if kind == MESSAGE && flags & 1 != 0 {
                    seen.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    })
    .await;
    let stream = bounded("connect", TcpStream::connect(fake.addr))
        .await
        .expect("connect to the fake server");
    let conn = ClientConnection::spawn_tcp(stream, Limits::default());
    let path = MethodPath::from_static("/sockrpc.test.Echo/Echo");
    let request = || Request::new(Bytes::from_static(b"payload"));
    // Sent as they are first polled: all three in flight at once.
    let calls: Vec<_> = (0..3)
        .map(|_| tokio::spawn(conn.unary(path.clone(), request())))
        .collect();
    let mut results = Vec::with_capacity(3);
    for call in calls {
        results.push(bounded("a call", call).await.expect("call task"));
    }
    // The tasks run on two workers: any of them may have taken the lowest id, so the one
    // answered is found by its result, not by its place.
    let (answered, refused): (Vec<_>, Vec<_>) = results.into_iter().partition(|r| r.is_ok());
    assert_eq!(
        answered.len(),
        1,
        "only the call below every id: {answered:?}"
    );
    let first = answered
        .into_iter()
        .next()
        .and_then(Result::ok)
        .expect("the call below every id is answered");
    assert_eq!(first.get_ref().len(), 4, "{first:?}");
    for (i, result) in refused.into_iter().enumerate() {
        let status = result.expect_err("refused by the GOAWAY");
        assert_eq!(status.code(), Code::Unavailable, "call {i}: {status:?}");
        assert!(status.is_not_processed(), "call {i}: {status:?}");
    }
    // The connection takes no new call after a GOAWAY.
    let late = bounded("a call after the GOAWAYs", conn.unary(path, request()))
        .await
        .expect_err("the connection is draining");
    assert_eq!(late.code(), Code::Unavailable, "{late:?}");
    assert!(late.is_not_processed(), "{late:?}");
    drop(conn);
    assert_eq!(requests.load(Ordering::SeqCst), 3);
    assert_eq!(fake.accepted.load(Ordering::SeqCst), 1);
}
