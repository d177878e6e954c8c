//! The greeter server: `cargo run -p sockrpc-examples --example greeter-server [ADDR]`.

use sockrpc::{Request, Response, Server, Status};
use sockrpc_examples::helloworld::greeter_server::{Greeter, GreeterServer};
use sockrpc_examples::helloworld::{HelloReply, HelloRequest};

struct MyGreeter;

impl Greeter for MyGreeter {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let name = request.into_inner().name;
        if name.is_empty() {
            return Err(Status::invalid_argument("name must not be empty"));
        }
        Ok(Response::new(HelloReply {
            message: format!("Hello {name}!"),
        }))
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:50051".into());
    let addr = addr.parse().map_err(|err| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{addr}: {err}"))
    })?;
    let listener = sockrpc::transport::bind_tcp(addr, &sockrpc::SocketConfig::default())?;
    println!("greeter listening on {}", listener.local_addr()?);
    Server::builder()
        .add_service(GreeterServer::new(MyGreeter))
        .serve_with_listener_and_shutdown(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
