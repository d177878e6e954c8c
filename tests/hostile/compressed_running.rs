//! Compressed unary requests count what they decompress to against the connection's budget of
//! running requests (`Limits::max_running_requests_size`, `server/call.rs`).
//!
//! The budget bounds what the requests of unary handlers still running hold on one
//! connection. It counted each request's bytes as they arrived, so a compressed request was
//! counted at its compressed size while its handler held it decompressed: a gzip request of
//! 1 KiB holds 1 MiB, and a client of 4,096 such calls whose handlers wait (on a database, say)
//! held 4 GiB of one connection against a count of 4 MiB. Here a raw client sends 8 such calls
//! to a server with a budget of 4 MiB whose handler keeps its request until released: the calls
//! past the budget must fail `RESOURCE_EXHAUSTED` at once, and the others be answered.

use crate::raw::{frame, open_body, server_frames, END, MESSAGE, OPEN, PREFACE};
use crate::support::{bounded, start_serving, BOUND};
use prost::Message;
use sockrpc::{CompressionEncoding, Request, Response, Status};
use sockrpc_tests::echo::echo_server::{Echo, EchoServer};
use sockrpc_tests::echo::{EchoReply, EchoRequest, FailRequest, GrowRequest, SleepRequest};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

const FLAG_ENCODING: u8 = 0x08;
const FLAG_COMPRESSED: u8 = 0x08;
pub(crate) const RESOURCE_EXHAUSTED: u32 = 8;
const BUDGET: usize = 4 << 20;
pub(crate) const DECODED: usize = 1 << 20;
const CALLS: u32 = 8;

/// An echo whose handler holds its request until the test releases it.
struct Holding {
    release: Arc<Semaphore>,
    started: Arc<AtomicUsize>,
}

impl Echo for Holding {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let _permit = tokio::time::timeout(BOUND * 2, self.release.acquire()).await;
        let request = request.into_inner();
        Ok(Response::new(EchoReply {
            payload: Default::default(),
            id: request.id + request.payload.len() as u64,
        }))
    }

    async fn sleep(&self, _: Request<SleepRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not here"))
    }

    async fn fail(&self, _: Request<FailRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not here"))
    }

    async fn grow(&self, _: Request<GrowRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not here"))
    }
}

/// A unary echo call whose OPEN names gzip as what it sends, and whose MESSAGE is a gzip
/// request of `DECODED` bytes of payload (about 1 KiB on the wire).
pub(crate) fn compressed_call(call_id: u32) -> Vec<u8> {
    let mut open = open_body(b"/sockrpc.test.Echo/Echo", &[]);
    // Encoding fields: length 3, accept gzip, send gzip (docs/COMPRESSION.md).
    open.extend_from_slice(&[3, 0, 1, 1]);
    let request = EchoRequest {
        payload: vec![0u8; DECODED].into(),
        id: u64::from(call_id),
    }
    .encode_to_vec();
    let packed = sockrpc::compression::compress(CompressionEncoding::Gzip, &request)
        .expect("gzip compresses");
    assert!(
        packed.len() < 16 * 1024,
        "{} bytes compressed",
        packed.len()
    );
    [
        frame(OPEN, FLAG_ENCODING, call_id, &open),
        frame(MESSAGE, FLAG_COMPRESSED | 1, call_id, &packed),
    ]
    .concat()
}

/// The calls with an END among what the server sent, with its code.
pub(crate) fn ends(got: &[u8]) -> Vec<(u32, u32)> {
    server_frames(got)
        .iter()
        .filter(|f| f.kind == END)
        .map(|f| {
            let code = u32::from_be_bytes([f.body[0], f.body[1], f.body[2], f.body[3]]);
            (f.call_id, code)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_requests_count_what_they_decompress_to() {
    let release = Arc::new(Semaphore::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let service = Holding {
        release: Arc::clone(&release),
        started: Arc::clone(&started),
    };
    let running = start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .max_running_requests_size(BUDGET)
            .add_service(EchoServer::new(service).accept_compressed(CompressionEncoding::Gzip))
            .serve_with_listener_and_shutdown(listener, shutdown)
    });
    let mut stream = TcpStream::connect(running.addr).await.expect("connect");
    let mut bytes = PREFACE.to_vec();
    for call_id in 1..=CALLS {
        bytes.extend_from_slice(&compressed_call(call_id));
    }
    stream.write_all(&bytes).await.expect("write the calls");

    // Every call either runs (its handler holds it) or is refused at once.
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    bounded("every call started or refused", async {
        while started.load(Ordering::SeqCst) + ends(&got).len() < CALLS as usize {
            tokio::select! {
                n = stream.read(&mut buf) => {
                    let n = n.expect("read");
                    assert!(n > 0, "the server closed the connection");
                    got.extend_from_slice(&buf[..n]);
                }
                () = tokio::time::sleep(std::time::Duration::from_millis(10)) => {}
            }
        }
    })
    .await;
    let refused = ends(&got);
    let held = started.load(Ordering::SeqCst);
    assert!(
        refused.iter().all(|(_, code)| *code == RESOURCE_EXHAUSTED),
        "refusals: {refused:?}"
    );
    assert!(
        held * DECODED <= BUDGET + DECODED,
        "{held} handlers hold {} MiB of decompressed requests on one connection, past the \
         budget of {} MiB ({} refused)",
        (held * DECODED) >> 20,
        BUDGET >> 20,
        refused.len()
    );

    // The calls that run are answered once released, on the same connection.
    release.add_permits(CALLS as usize);
    bounded("the held calls answered", async {
        while ends(&got).len() < CALLS as usize {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "the server closed the connection");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    let answered = ends(&got).iter().filter(|(_, code)| *code == 0).count();
    assert_eq!(answered, held, "every call that ran is answered OK");
    drop(stream);
    running.stop().await;
}
