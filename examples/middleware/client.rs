//! A greeter client behind the middleware stack:
//! `cargo run -p sockrpc-examples --example middleware-client [ADDR] [NAME]`. It prints the trace
//! id of each call; the server logs the same id, since the call's `traceparent` carried it.

use sockrpc::Channel;
use sockrpc_examples::helloworld::greeter_client::GreeterClient;
use sockrpc_examples::helloworld::HelloRequest;
use sockrpc_examples::middleware as stack;
use tracing::Instrument;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let provider = stack::init_tracing("middleware-client");
    let mut args = std::env::args().skip(1);
    let addr = args
        .next()
        .unwrap_or_else(|| "tcp://127.0.0.1:50052".into());
    let name = args.next().unwrap_or_else(|| "world".into());
    let channel = Channel::connect(addr.as_str()).await?;
    let mut client = GreeterClient::new(stack::client(&channel));
    for _ in 0..3 {
        // One trace per greeting: this span is its root, the call's client span its child.
        let greeting = tracing::info_span!("greet");
        let (trace_id, reply) = async {
            let trace_id = stack::current_trace_id();
            let reply = client.say_hello(HelloRequest { name: name.clone() }).await;
            (trace_id, reply)
        }
        .instrument(greeting)
        .await;
        println!("{} (trace {trace_id})", reply?.into_inner().message);
    }
    provider.shutdown()?;
    Ok(())
}
