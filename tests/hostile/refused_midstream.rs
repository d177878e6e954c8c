//! A hostile client's request streams, in raw frames: on every stream the server takes at once,
//! a good message, then one the generated server refuses — over its `max_decoding_message_size`
//! (far under the transport's limit, so it arrives whole) or not decodable — then more good
//! messages as if nothing happened, and no half-close; all of it in one write. Each stream is
//! answered with the refusal's status (`RESOURCE_EXHAUSTED`, `INTERNAL`), after the echo of its
//! good message on a bidi stream; every handler ends; messages the client sends on after the
//! status are dropped without closing the connection; and a full call limit's worth of new
//! streams is then served on the same connection, so no ended call kept its slot.

use crate::edges::{end_code, until_end};
use crate::raw::{
    connect, frame, open_body, send, server_frames, END_STREAM, MESSAGE, OPEN, PREFACE,
};
use crate::stream_reset::COLLECT_PATH;
use crate::support::{bounded, start_serving, Running};
use prost::Message as _;
use sockrpc::{Request, Response, Status, Streaming};
use sockrpc_tests::stream::streamer_server::{Streamer, StreamerServer};
use sockrpc_tests::stream::{Chunk, Summary};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const PING_PONG_PATH: &[u8] = b"/sockrpc.test.stream.Streamer/PingPong";
/// OPEN flag: the client streams its request.
const STREAM: u8 = 0x02;
/// The server's limit of calls in flight per connection: every stream below takes one.
const CALLS: u32 = 16;
/// The generated server's decoding limit.
const LIMIT: usize = 1024;
/// gRPC's codes as END carries them.
const OK: u32 = 0;
const INTERNAL: u32 = 13;
const RESOURCE_EXHAUSTED: u32 = 8;

/// `Collect` reads with `?` and sums, counting its handlers alive; the rest is `Mirror`'s.
#[derive(Default)]
struct Summing {
    alive: Arc<AtomicUsize>,
}

struct Alive(Arc<AtomicUsize>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Streamer for Summing {
    sockrpc_tests::mirror_methods!(unary, produce, ping_pong, gather);

    async fn collect(
        &self,
        request: Request<Streaming<Chunk>>,
    ) -> Result<Response<Summary>, Status> {
        self.alive.fetch_add(1, Ordering::SeqCst);
        let _alive = Alive(Arc::clone(&self.alive));
        let mut chunks = request.into_inner();
        let mut summary = Summary::default();
        while let Some(chunk) = chunks.message().await? {
            summary.count += 1;
            summary.seq_sum += chunk.seq;
        }
        Ok(Response::new(summary))
    }
}

fn start(service: Summing) -> Running {
    start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .max_concurrent_calls(CALLS as usize)
            .add_service(StreamerServer::new(service).max_decoding_message_size(LIMIT))
            .serve_with_listener_and_shutdown(listener, shutdown)
    })
}

fn chunk(seq: u64, len: usize) -> Vec<u8> {
    Chunk {
        seq,
        payload: vec![0x5A; len].into(),
    }
    .encode_to_vec()
}

/// Field 1 (`seq`, a varint) sent length-delimited: no `Chunk` decodes from it.
const UNDECODABLE: &[u8] = &[0x0A, 0x00];

fn message(call_id: u32, body: &[u8]) -> Vec<u8> {
    frame(MESSAGE, 0, call_id, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_messages_midway_end_each_stream_with_its_status_and_free_its_slot() {
    let service = Summing::default();
    let alive = Arc::clone(&service.alive);
    let server = start(service);
    let mut stream = connect(server.addr).await;
    // Streams 1, 3, 5, …: Collect and PingPong in turn; each refusal over the limit or
    // undecodable in turn of pairs.
    let ids: Vec<u32> = (0..CALLS).map(|i| 1 + 2 * i).collect();
    let bidi = |i: usize| i % 2 == 1;
    let over = |i: usize| (i / 2) % 2 == 0;
    let mut batch = PREFACE.to_vec();
    for (i, &id) in ids.iter().enumerate() {
        let path = if bidi(i) {
            PING_PONG_PATH
        } else {
            COLLECT_PATH
        };
        batch.extend(frame(OPEN, STREAM, id, &open_body(path, &[])));
        batch.extend(message(id, &chunk(1, 16)));
        if over(i) {
            batch.extend(message(id, &chunk(2, 4 * LIMIT)));
        } else {
            batch.extend(message(id, UNDECODABLE));
        }
        for seq in 3..6 {
            batch.extend(message(id, &chunk(seq, 16)));
        }
    }
    send(&mut stream, &[&batch]).await;
    let mut got = Vec::new();
    for &id in &ids {
        until_end(&mut stream, &mut got, id).await;
    }
    let frames = server_frames(&got);
    for (i, &id) in ids.iter().enumerate() {
        let expected = if over(i) {
            RESOURCE_EXHAUSTED
        } else {
            INTERNAL
        };
        assert_eq!(end_code(&frames, id), expected, "stream {id}: {frames:?}");
        let echoes = frames
            .iter()
            .filter(|f| f.kind == MESSAGE && f.call_id == id)
            .count();
        // A bidi stream echoed its good message, and nothing after the refused one.
        assert_eq!(echoes, usize::from(bidi(i)), "stream {id}: {frames:?}");
    }
    bounded("every Collect handler ended", async {
        while alive.load(Ordering::SeqCst) != 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // The client goes on sending on the ended streams, and half-closes them: dropped.
    let mut late = Vec::new();
    for &id in &ids {
        late.extend(message(id, &chunk(9, 16)));
        late.extend(frame(MESSAGE, END_STREAM, id, &chunk(10, 16)));
    }
    // Then a full call limit of new Collect streams, each answered on its own: none is
    // refused for want of a slot.
    let fresh: Vec<u32> = (0..CALLS).map(|i| 1 + 2 * (CALLS + i)).collect();
    for &id in &fresh {
        late.extend(frame(OPEN, STREAM, id, &open_body(COLLECT_PATH, &[])));
        late.extend(message(id, &chunk(u64::from(id), 16)));
    }
    for &id in &fresh {
        late.extend(frame(MESSAGE, END_STREAM, id, &chunk(1, 16)));
    }
    let before = frames.len();
    send(&mut stream, &[&late]).await;
    for &id in &fresh {
        until_end(&mut stream, &mut got, id).await;
    }
    let frames = server_frames(&got).split_off(before);
    for &id in &fresh {
        assert_eq!(end_code(&frames, id), OK, "stream {id}: {frames:?}");
        let summary = frames
            .iter()
            .find(|f| f.kind == MESSAGE && f.call_id == id)
            .map(|f| Summary::decode(f.body.as_slice()).expect("a Summary"))
            .unwrap_or_default();
        assert_eq!(summary.count, 2, "stream {id}");
        assert_eq!(summary.seq_sum, u64::from(id) + 1, "stream {id}");
    }
    assert!(
        frames.iter().all(|f| !ids.contains(&f.call_id)),
        "answers for ended streams: {frames:?}"
    );
    server.stop().await;
}
