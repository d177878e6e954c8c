//! The greeter client: `cargo run -p sockrpc-examples --example greeter-client [ADDR] [NAME]`.

use sockrpc_examples::helloworld::greeter_client::GreeterClient;
use sockrpc_examples::helloworld::HelloRequest;
use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args
        .next()
        .unwrap_or_else(|| "tcp://127.0.0.1:50051".into());
    let name = args.next().unwrap_or_else(|| "world".into());
    let mut client = GreeterClient::connect(addr.as_str()).await?;
    let mut request = sockrpc::Request::new(HelloRequest { name });
    request.set_timeout(Duration::from_secs(5));
    request
        .metadata_mut()
        .insert_str("x-client", "greeter-example")?;
    let reply = client.say_hello(request).await?;
    println!("{}", reply.into_inner().message);
    Ok(())
}
