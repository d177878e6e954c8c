//! A hostile server that goes on after ending a stream: a second END (with an error), HEADERS,
//! a MESSAGE, and a split message begun and finished, all for the call it just ended. The
//! stream stands as the first END left it (its one message, then a clean end); what comes after
//! is dropped, and the connection serves the next streams the same way.
//!
//! Unary calls answered again after their end are in `server_probe.rs`
//! (`answers_for_calls_never_opened_or_already_ended_are_ignored`).

use crate::raw::{block, frame, MESSAGE, PREFACE};
use crate::server_probe::{end, fake_server, next_frame, next_request, HEADERS};
use crate::support::bounded;
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::ProduceRequest;
use tokio::io::AsyncWriteExt;

/// MESSAGE's MORE flag: the message goes on in the call's next MESSAGE (a split message).
const MORE: u8 = 0x02;
/// Streams opened one after another on the connection.
const STREAMS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_after_a_streams_end_are_dropped() {
    let fake = fake_server(|mut stream| async move {
        let _ = stream.write_all(PREFACE).await;
        let mut buf = Vec::new();
        for _ in 0..STREAMS {
            let Some((id, _)) = next_request(&mut stream, &mut buf).await else {
                return;
            };
            let answer = [
                frame(HEADERS, 0, id, &block(&[])),
                // Chunk { seq: 1 }, then the end.
                frame(MESSAGE, 0, id, b"\x08\x01"),
                end(id, 0, b"", b"", &block(&[])),
                // Everything from here on is for a call that has ended.
                end(id, 13, b"a second end", b"", &block(&[])),
                frame(HEADERS, 0, id, &block(&[(b"late", b"1")])),
                frame(MESSAGE, 0, id, b"\x08\x02"),
                frame(MESSAGE, MORE, id, &vec![0; 16 * 1024]),
                frame(MESSAGE, 0, id, b"\x08\x03"),
            ]
            .concat();
            if stream.write_all(&answer).await.is_err() {
                return;
            }
        }
        while next_frame(&mut stream, &mut buf).await.is_some() {}
    })
    .await;
    let mut client = bounded("connect", StreamerClient::connect(fake.addr.to_string()))
        .await
        .expect("connect to the fake server");
    for i in 0..STREAMS {
        let response = bounded(
            "the answer's head",
            client.produce(ProduceRequest::default()),
        )
        .await
        .unwrap_or_else(|status| panic!("stream {i}: {status:?}"));
        let mut stream = response.into_inner();
        let mut seqs = Vec::new();
        let end = bounded("the stream's end", async {
            loop {
                match stream.message().await {
                    Ok(Some(chunk)) => seqs.push(chunk.seq),
                    Ok(None) => return None,
                    Err(status) => return Some(status),
                }
            }
        })
        .await;
        assert_eq!(seqs, [1], "stream {i}");
        assert!(end.is_none(), "stream {i}: {end:?}");
    }
    assert_eq!(
        fake.accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one connection served every stream"
    );
}
