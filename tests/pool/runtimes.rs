//! A channel used from one runtime after another (a client kept in a static and shared by tests
//! that each run their own runtime, say): the pool's reconnecting task ends with the runtime that
//! ran it, and the next runtime to use the pool starts another, as the UDP client's timer task
//! does. A pool that still counted the dead task as running never reconnected: every call on
//! the next runtime waited for a connection nobody made.

use super::{lenient, loopback, TestServer, BOUND};
use sockrpc::{Channel, Request};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::EchoRequest;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn a_channel_reconnects_on_each_runtime_that_uses_it() {
    // The server outlives the client's runtimes: it runs on one of its own.
    let serving = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let server = serving
        .block_on(async { TestServer::start(loopback(), lenient()) })
        .expect("server");
    let channel = Channel::lazy(format!("tcp://{}", server.addr)).expect("endpoint");
    for round in 0..3u64 {
        let calls = runtime();
        let answer = calls.block_on(async {
            let mut client = EchoClient::new(channel.clone());
            let mut request = Request::new(EchoRequest {
                payload: Default::default(),
                id: round,
            });
            request.set_timeout(BOUND);
            tokio::time::timeout(BOUND, client.echo(request)).await
        });
        let reply = answer
            .expect("answered in time")
            .unwrap_or_else(|status| panic!("call on runtime {round}: {status:?}"));
        assert_eq!(reply.into_inner().id, round);
        // Its connections' tasks and the pool's task end here, with their runtime.
        drop(calls);
    }
    drop(channel);
    serving.block_on(server.stop());
}
