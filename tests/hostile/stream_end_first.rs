//! A hostile server ending a server stream before its HEADERS: an END whose message and details
//! are 32 KiB each, then, for the same call, the HEADERS, a MESSAGE and an END OK it should have
//! sent instead. The call fails with the first END's status, whole (as its code says, with its
//! message and details), what came after it for that call is dropped, and the next stream on the
//! connection gets exactly its own answer and its clean end. A probe that found nothing.

use crate::raw::{block, frame, MESSAGE, OPEN, PREFACE};
use crate::server_probe::{end, fake_server, next_frame, HEADERS};
use crate::support::bounded;
use prost::Message as _;
use sockrpc::{Channel, Code, Endpoint};
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::{Chunk, ProduceRequest};
use tokio::io::AsyncWriteExt;

/// The first END's message and details, in bytes each.
const LONG: usize = 32 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_before_the_headers_fails_its_stream_whole_and_later_frames_are_dropped() {
    let fake = fake_server(|mut stream| async move {
        let _ = stream.write_all(PREFACE).await;
        let mut buf = Vec::new();
        let mut streams = 0;
        while let Some((kind, _, id, _)) = next_frame(&mut stream, &mut buf).await {
            if kind != OPEN {
                continue;
            }
            streams += 1;
            let chunk = Chunk {
                payload: vec![7; 5].into(),
                ..Default::default()
            }
            .encode_to_vec();
            let answer = if streams == 1 {
                [
                    end(id, 5, &[b'm'; LONG], &[b'd'; LONG], &block(&[])),
                    frame(HEADERS, 0, id, &block(&[(b"late", b"1")])),
                    frame(MESSAGE, 0, id, &chunk),
                    end(id, 0, b"", b"", &block(&[])),
                ]
                .concat()
            } else {
                [
                    frame(HEADERS, 0, id, &block(&[])),
                    frame(MESSAGE, 0, id, &chunk),
                    end(id, 0, b"", b"", &block(&[])),
                ]
                .concat()
            };
            if stream.write_all(&answer).await.is_err() {
                return;
            }
        }
    })
    .await;
    let endpoint = Endpoint::new("127.0.0.1", fake.addr.port()).pool_size(1);
    let channel = bounded("connect", Channel::connect(endpoint))
        .await
        .expect("connect");
    let mut client = StreamerClient::new(channel);

    // The first stream: its status, from the head or from the first read.
    let status = match bounded(
        "the first stream",
        client.produce(ProduceRequest::default()),
    )
    .await
    {
        Err(status) => status,
        Ok(response) => {
            let mut answers = response.into_inner();
            match bounded("its first answer", answers.message()).await {
                Err(status) => status,
                Ok(got) => panic!("the stream went on after its END: {got:?}"),
            }
        }
    };
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(status.message().len(), LONG, "the message, whole");
    assert!(status.message().bytes().all(|b| b == b'm'));
    assert_eq!(status.details(), &[b'd'; LONG][..], "the details, whole");

    // The next stream on the same connection: exactly its own answer, then its clean end.
    let mut answers = bounded("the next stream", client.produce(ProduceRequest::default()))
        .await
        .expect("answered")
        .into_inner();
    let chunk = bounded("its answer", answers.message())
        .await
        .expect("ok")
        .expect("an answer");
    assert_eq!(&chunk.payload[..], &[7; 5][..]);
    let end = bounded("its end", answers.message())
        .await
        .expect("a clean end");
    assert!(end.is_none(), "more than its own answer: {end:?}");
    assert_eq!(
        fake.accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the connection went on"
    );
}
