//! A unary request past 256 KiB is decoded, handled and answered in a task of its own, not first
//! on its connection's task, where its work held every other call on the connection (a probe:
//! one 4 MiB echo in flight took small calls on the same connection from 18-24 k to 3-6 k
//! calls/s, with pauses of 50-170 ms).
//!
//! The proof is by order, not time: the large call's handler blocks its thread until a small
//! call sent on the same connection after it has been answered. Polled on the connection's
//! task, it would hold that task, the small call would never be read, and the handler would
//! give up after its bound.

use super::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

/// How long the large call's handler waits for the small call's answer.
const WAIT: Duration = Duration::from_secs(5);

#[derive(Clone)]
struct Blocking {
    started: Arc<AtomicBool>,
    answered: Arc<Mutex<mpsc::Receiver<()>>>,
}

impl Echo for Blocking {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let EchoRequest { payload, id } = request.into_inner();
        if payload.len() < 1024 * 1024 {
            return Ok(Response::new(EchoReply { payload, id }));
        }
        self.started.store(true, Ordering::SeqCst);
        // Work that holds its thread, as decoding and encoding megabytes does. In
        // `block_in_place`, so that the worker's other duties (its queue, the I/O driver it
        // may hold) move to another thread, as they would while a long decode runs; what it
        // cannot hand over is the task it runs in, the connection's, were it polled there.
        let answered =
            tokio::task::block_in_place(|| self.answered.lock().expect("lock").recv_timeout(WAIT));
        Ok(Response::new(EchoReply {
            payload: Bytes::new(),
            id: u64::from(answered.is_ok()),
        }))
    }

    async fn sleep(&self, _: Request<SleepRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn fail(&self, _: Request<FailRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn grow(&self, _: Request<GrowRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_requests_work_does_not_hold_its_connections_other_calls() {
    let (tell, answered) = mpsc::channel();
    let service = Blocking {
        started: Arc::new(AtomicBool::new(false)),
        answered: Arc::new(Mutex::new(answered)),
    };
    let started = Arc::clone(&service.started);
    // The server on a runtime of its own, so the worker its handler blocks is not one the
    // client's tasks run on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    listener.set_nonblocking(true).expect("nonblocking");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let serving = Server::builder()
                .add_service(EchoServer::new(service))
                .serve_with_listener(listener);
            tokio::select! {
                _ = serving => {}
                _ = stopped => {}
            }
        });
    });
    let channel = sockrpc::Channel::connect(addr).await.expect("connect");
    let mut large = EchoClient::new(channel.clone());
    let large = tokio::spawn(async move {
        large
            .echo(EchoRequest {
                payload: Bytes::from(vec![7u8; 2 * 1024 * 1024]),
                id: 0,
            })
            .await
    });
    for _ in 0..500 {
        if started.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        started.load(Ordering::SeqCst),
        "the large call's handler never ran"
    );
    let mut small = EchoClient::new(channel);
    let mut request = Request::new(EchoRequest {
        payload: Bytes::from_static(b"small"),
        id: 9,
    });
    request.set_timeout(WAIT / 2);
    let reply = small
        .echo(request)
        .await
        .expect("the small call is answered");
    assert_eq!(reply.into_inner().id, 9);
    tell.send(()).expect("the handler waits");
    let large = tokio::time::timeout(WAIT * 2, large)
        .await
        .expect("the large call ends")
        .expect("joined")
        .expect("the large call is answered");
    assert_eq!(
        large.into_inner().id,
        1,
        "its handler saw the small call answered"
    );
    let _ = stop.send(());
    let _ = tokio::task::spawn_blocking(move || server.join()).await;
}
