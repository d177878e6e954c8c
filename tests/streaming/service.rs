//! The streaming service under test: every call leaves a probe, found by its `x-token`, of what
//! the server produced, received, finished and dropped.

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use sockrpc::{Code, Request, Response, Status, Streaming};
use sockrpc_tests::stream::streamer_server::Streamer;
use sockrpc_tests::stream::{Chunk, ProduceRequest, Summary};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the server did for one call, found by the request's `x-token` metadata.
#[derive(Debug, Default)]
pub(crate) struct Probe {
    /// Response messages the server's stream yielded (counted in the stream's poll).
    produced: AtomicUsize,
    /// Request messages the handler read.
    received: AtomicUsize,
    /// The stream (or handler) ran to its end.
    finished: AtomicBool,
    /// The stream (or handler) was dropped, finished or not.
    dropped: AtomicBool,
    /// Polls of a spinning response stream (`x-spin`).
    spins: AtomicUsize,
}

impl Probe {
    pub(crate) fn produced(&self) -> usize {
        self.produced.load(Ordering::SeqCst)
    }

    pub(crate) fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }

    pub(crate) fn finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }

    pub(crate) fn spins(&self) -> usize {
        self.spins.load(Ordering::SeqCst)
    }

    /// Dropped before reaching its end: the server side observed cancellation.
    pub(crate) fn cancelled(&self) -> bool {
        self.dropped.load(Ordering::SeqCst) && !self.finished()
    }
}

/// Held by a server stream or handler; flags the probe when dropped.
struct DropFlag(Arc<Probe>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.dropped.store(true, Ordering::SeqCst);
    }
}

#[derive(Clone, Default)]
pub(crate) struct TestStreamer {
    probes: Arc<Mutex<HashMap<String, Arc<Probe>>>>,
}

impl TestStreamer {
    pub(crate) fn probe(&self, token: &str) -> Arc<Probe> {
        let mut probes = self.probes.lock().expect("lock");
        Arc::clone(probes.entry(token.to_owned()).or_default())
    }

    fn probe_for<T>(&self, request: &Request<T>) -> Arc<Probe> {
        self.probe(request.metadata().get_str("x-token").unwrap_or(""))
    }
}

type ChunkStream = BoxStream<'static, Result<Chunk, Status>>;

impl Streamer for TestStreamer {
    async fn unary(&self, request: Request<Chunk>) -> Result<Response<Chunk>, Status> {
        Ok(Response::new(Chunk {
            seq: request.into_inner().seq,
            payload: Bytes::new(),
        }))
    }

    type ProduceStream = ChunkStream;

    async fn produce(
        &self,
        request: Request<ProduceRequest>,
    ) -> Result<Response<Self::ProduceStream>, Status> {
        let probe = self.probe_for(&request);
        let ProduceRequest {
            count,
            size,
            delay_ms,
            fail_after,
            fail_code,
            fail_message,
        } = request.into_inner();
        let payload = Bytes::from(vec![0xA5; size as usize]);
        let failure = Status::new(Code::from_u32(fail_code as u32), fail_message);
        // `None` once failed: the stream ends after its error item.
        let state = (Some(0u64), DropFlag(probe));
        let responses = stream::unfold(state, move |(seq, guard)| {
            let payload = payload.clone();
            let failure = failure.clone();
            async move {
                let seq = seq?;
                if fail_after == Some(seq) {
                    return Some((Err(failure), (None, guard)));
                }
                if seq >= count {
                    guard.0.finished.store(true, Ordering::SeqCst);
                    return None;
                }
                if delay_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                }
                guard.0.produced.fetch_add(1, Ordering::SeqCst);
                Some((Ok(Chunk { seq, payload }), (Some(seq + 1), guard)))
            }
        });
        let mut response = Response::new(responses.boxed());
        response
            .metadata_mut()
            .insert_str("x-head", "produce")
            .map_err(|e| Status::internal(e.to_string()))?;
        response
            .trailers_mut()
            .insert_str("x-produced", &count.to_string())
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(response)
    }

    async fn collect(
        &self,
        request: Request<Streaming<Chunk>>,
    ) -> Result<Response<Summary>, Status> {
        let probe = self.probe_for(&request);
        let _guard = DropFlag(Arc::clone(&probe));
        let summary = sockrpc_tests::summary::summarize(request.into_inner(), |_| {
            probe.received.fetch_add(1, Ordering::SeqCst);
        })
        .await?;
        probe.finished.store(true, Ordering::SeqCst);
        let mut response = Response::new(summary);
        response
            .trailers_mut()
            .insert_str("x-collected", &summary.count.to_string())
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(response)
    }

    type PingPongStream = ChunkStream;

    async fn ping_pong(
        &self,
        request: Request<Streaming<Chunk>>,
    ) -> Result<Response<Self::PingPongStream>, Status> {
        let probe = self.probe_for(&request);
        if request.metadata().get_str("x-spin").is_some() {
            // Never ready and never waiting: every poll wakes the stream again at once, as a
            // busy loop of `yield`s would. It must not hold its connection.
            let requests = request.into_inner();
            let guard = DropFlag(probe);
            let spinning = stream::poll_fn(move |cx| {
                let _keep = &requests;
                guard.0.spins.fetch_add(1, Ordering::SeqCst);
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            });
            return Ok(Response::new(spinning.boxed()));
        }
        let state = (request.into_inner(), DropFlag(probe));
        let responses = stream::unfold(state, |(mut requests, guard)| async move {
            match requests.message().await {
                Ok(Some(chunk)) => {
                    guard.0.received.fetch_add(1, Ordering::SeqCst);
                    guard.0.produced.fetch_add(1, Ordering::SeqCst);
                    let mut payload = chunk.payload.to_vec();
                    payload.reverse();
                    let reply = Chunk {
                        seq: chunk.seq,
                        payload: payload.into(),
                    };
                    Some((Ok(reply), (requests, guard)))
                }
                Ok(None) => {
                    guard.0.finished.store(true, Ordering::SeqCst);
                    None
                }
                Err(status) => Some((Err(status), (requests, guard))),
            }
        });
        Ok(Response::new(responses.boxed()))
    }

    type GatherStream = ChunkStream;

    async fn gather(
        &self,
        request: Request<Streaming<Chunk>>,
    ) -> Result<Response<Self::GatherStream>, Status> {
        let probe = self.probe_for(&request);
        let mut requests = request.into_inner();
        let guard = DropFlag(probe);
        // Nothing is answered before the client's half-close: read all, then stream back.
        let responses = stream::once(async move {
            let mut all = Vec::new();
            loop {
                match requests.message().await {
                    Ok(Some(chunk)) => {
                        guard.0.received.fetch_add(1, Ordering::SeqCst);
                        all.push(Ok(chunk));
                    }
                    Ok(None) => break,
                    Err(status) => return vec![Err(status)],
                }
            }
            guard.0.finished.store(true, Ordering::SeqCst);
            all.reverse();
            all
        })
        .flat_map(stream::iter);
        let mut response = Response::new(responses.boxed());
        response
            .metadata_mut()
            .insert_str("x-head", "gather")
            .map_err(|e| Status::internal(e.to_string()))?;
        response
            .trailers_mut()
            .insert_str("x-gather", "done")
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(response)
    }
}
