//! The greeter behind the middleware stack, with Prometheus metrics over HTTP:
//! `cargo run -p sockrpc-examples --example middleware-server [ADDR] [METRICS_ADDR]`
//! (defaults `127.0.0.1:50052` and `127.0.0.1:9464`; then `curl http://127.0.0.1:9464/metrics`).

use sockrpc::middleware::metrics::prometheus;
use sockrpc::{Request, Response, Status};
use sockrpc_examples::helloworld::greeter_server::{Greeter, GreeterServer};
use sockrpc_examples::helloworld::{HelloReply, HelloRequest};
use sockrpc_examples::middleware as stack;

struct MyGreeter;

impl Greeter for MyGreeter {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        // Runs in the call's server span, whose parent is the client's span.
        tracing::info!(trace_id = %stack::current_trace_id(), "greeting");
        let name = request.into_inner().name;
        if name.is_empty() {
            return Err(Status::invalid_argument("name must not be empty"));
        }
        Ok(Response::new(HelloReply {
            message: format!("Hello {name}!"),
        }))
    }
}

fn addr_arg(n: usize, default: &str) -> std::io::Result<std::net::SocketAddr> {
    let text = std::env::args().nth(n).unwrap_or_else(|| default.into());
    text.parse().map_err(|err| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{text}: {err}"))
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _provider = stack::init_tracing("middleware-server");
    let handle = prometheus::install()?;
    let metrics = tokio::net::TcpListener::bind(addr_arg(2, "127.0.0.1:9464")?).await?;
    println!("metrics on http://{}/metrics", metrics.local_addr()?);
    tokio::spawn(prometheus::serve(metrics, handle, std::future::pending()));

    let listener =
        sockrpc::transport::bind_tcp(addr_arg(1, "127.0.0.1:50052")?, &Default::default())?;
    println!("greeter listening on {}", listener.local_addr()?);
    stack::server()
        .add_service(GreeterServer::new(MyGreeter))
        .serve_with_listener_and_shutdown(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
