//! The server half of `tests/accept_errors.rs`: a greeter on 127.0.0.1:0 that prints
//! `listening ADDR`, logs to stderr (DEBUG and up), and serves for at most the number of seconds given as its
//! argument. The test runs it under `ulimit -n 64` so that it runs out of descriptors.

use sockrpc::{Request, Response, Server, Status};
use sockrpc_tests::helloworld::greeter_server::{Greeter, GreeterServer};
use sockrpc_tests::helloworld::{HelloReply, HelloRequest};
use std::{io::Write, net::SocketAddr, time::Duration};

struct Hi;

impl Greeter for Hi {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        Ok(Response::new(HelloReply {
            message: format!("Hello {}!", request.into_inner().name),
        }))
    }
}

fn main() {
    let lifetime = std::env::args()
        .nth(1)
        .and_then(|secs| secs.parse().ok())
        .map_or(Duration::from_secs(120), Duration::from_secs);
    // DEBUG: past the first, failed accepts are logged at DEBUG (one WARN per 10 s), and the
    // test counts them all.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
        let listener =
            sockrpc::transport::bind_tcp(addr, &Default::default()).expect("bind listener");
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "listening {}",
            listener.local_addr().expect("local addr")
        )
        .expect("print");
        out.flush().expect("flush");
        drop(out);
        // Idle connections stay open until the test closes them, not until the handshake
        // timeout does.
        let serve = Server::builder()
            .handshake_timeout(lifetime)
            .add_service(GreeterServer::new(Hi))
            .serve_with_listener(listener);
        tokio::select! {
            served = serve => served.expect("serve"),
            () = tokio::time::sleep(lifetime) => {}
        }
    });
}
