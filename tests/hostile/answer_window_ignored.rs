//! A server that announced `CAP_ANSWER_WINDOW` (it keeps what it streams to a client under the
//! 16 MiB answer window the client grants) and then ignores it: one 1 MiB answer on each of
//! many streams, each within its own stream's window, 20 MiB in all, to an application that
//! reads none.
//!
//! Each stream's window allows one such answer, so only the connection's answer window can
//! bound them: the answer that arrives while 16 MiB is already held unread closes the
//! connection, its calls failing `INTERNAL` with the reason. A server that did not announce the
//! bit (an older one) is held to the per-stream windows alone, as before: every answer arrives.

use crate::raw::{block, frame, END_STREAM, MESSAGE, PREFACE};
use crate::server_probe::{end, fake_server, next_frame, open_streams, produce_streams, settings};
use crate::support::bounded;
use prost::Message as _;
use sockrpc::{Code, Status};
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::Chunk;
use tokio::io::AsyncWriteExt;

/// `CAP_ANSWER_WINDOW` in the server's SETTINGS.
const CAP_ANSWER_WINDOW: u16 = 0x20;
/// `CAP_CHARGED`: counts answers as the client credits them (every sockrpc server has it).
const CAP_CHARGED: u16 = 0x4;
/// Streams, each answered at once with one 1 MiB chunk: past the 16 MiB window by four.
const STREAMS: usize = 20;

/// A server that answers each of the first [`STREAMS`] streaming calls with HEADERS as it opens,
/// then sends each one 1 MiB chunk (a MESSAGE with `flags`) and an OK END, all at once, after a
/// SETTINGS with `capabilities`; then reads until the client goes.
async fn flooding_server(capabilities: u16, flags: u8) -> std::net::SocketAddr {
    let fake = fake_server(move |mut stream| async move {
        let hello = [&PREFACE[..], &settings(0, capabilities)].concat();
        let _ = stream.write_all(&hello).await;
        let mut buf = Vec::new();
        let Some(ids) = open_streams(&mut stream, &mut buf, STREAMS).await else {
            return;
        };
        let chunk = Chunk {
            seq: 0,
            payload: vec![0x5a; 1 << 20].into(),
        }
        .encode_to_vec();
        let mut flood = Vec::new();
        for id in &ids {
            flood.extend_from_slice(&frame(MESSAGE, flags, *id, &chunk));
        }
        for id in &ids {
            flood.extend_from_slice(&end(*id, 0, b"", b"", &block(&[])));
        }
        if stream.write_all(&flood).await.is_err() {
            return;
        }
        while next_frame(&mut stream, &mut buf).await.is_some() {}
    })
    .await;
    fake.addr
}

/// Opens [`STREAMS`] Produce streams on one connection to `addr`, reads nothing while the
/// answers arrive, then reads each to its end: per stream, the chunks read and its failure.
async fn read_later(addr: std::net::SocketAddr) -> Vec<(usize, Option<Status>)> {
    let client = bounded("connect", StreamerClient::connect(addr.to_string()))
        .await
        .expect("connect to the fake server");
    let opened = produce_streams(&client, STREAMS).await;
    // The application reads nothing while the flood arrives.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mut ends = Vec::with_capacity(STREAMS);
    for mut stream in opened {
        let mut read = 0;
        let end = bounded("the stream's end", async {
            loop {
                match stream.message().await {
                    Ok(Some(_)) => read += 1,
                    Ok(None) => return None,
                    Err(status) => return Some(status),
                }
            }
        })
        .await;
        ends.push((read, end));
    }
    ends
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_past_the_answer_window_close_the_connection() {
    let addr = flooding_server(CAP_CHARGED | CAP_ANSWER_WINDOW, 0).await;
    let ends = read_later(addr).await;
    let read: usize = ends.iter().map(|(read, _)| read).sum();
    assert!(read <= 17, "the client held {read} MiB of answers unread");
    for (stream, (_, end)) in ends.iter().enumerate() {
        let status = end
            .as_ref()
            .unwrap_or_else(|| panic!("stream {stream} ended OK: the window was not enforced"));
        assert_eq!(status.code(), Code::Internal, "stream {stream}: {status:?}");
        assert!(
            status.message().contains("answer window"),
            "stream {stream}: {status:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_server_is_held_to_the_stream_windows_alone() {
    let addr = flooding_server(CAP_CHARGED, 0).await;
    for (stream, (read, end)) in read_later(addr).await.into_iter().enumerate() {
        assert!(end.is_none(), "stream {stream}: {end:?}");
        assert_eq!(read, 1, "stream {stream}");
    }
}

/// A stream answered with one message goes out as a unary answer does (END_STREAM on its
/// MESSAGE), which a server does not count against the answer window: the client neither
/// counts it as held nor credits it, so 20 MiB of them from a window-keeping server are no
/// protocol error (counted, the 17th was refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_answers_are_not_counted() {
    let addr = flooding_server(CAP_CHARGED | CAP_ANSWER_WINDOW, END_STREAM).await;
    for (stream, (read, end)) in read_later(addr).await.into_iter().enumerate() {
        assert!(end.is_none(), "stream {stream}: {end:?}");
        assert_eq!(read, 1, "stream {stream}");
    }
}
