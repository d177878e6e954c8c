//! A client that sends calls with large answers and never reads its socket is closed by the
//! server's keepalive: the server stops reading it once its write buffer passes the high-water
//! mark (`server/conn.rs`), its keepalive PING waits behind the answers, and the PONG never
//! comes. Frames left unread by the server's own pause are not the peer's lateness only while
//! nothing else holds reading back (`server/deadlines.rs`); a full write buffer does, and must
//! not shield a client that does not read from the keepalive, or it would hold its connection
//! and the answers buffered for it for ever. On tokio's paused clock.

use crate::raw::connect;
use crate::support::{bounded, start_serving, EchoImpl};
use crate::unread_answers::grow_calls;
use sockrpc::transport::Keepalive;
use sockrpc_tests::echo::echo_server::EchoServer;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const INTERVAL: Duration = Duration::from_millis(300);
const TIMEOUT: Duration = Duration::from_millis(300);
/// Calls of 1 MiB answers each: far past the 8 MiB high-water mark.
const CALLS: u32 = 64;

#[tokio::test(start_paused = true)]
async fn keepalive_closes_a_client_that_never_reads_its_answers() {
    let server = start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .idle_timeout(None)
            .keepalive(Some(Keepalive::new(INTERVAL, TIMEOUT)))
            .add_service(EchoServer::new(EchoImpl::default()))
            .serve_with_listener_and_shutdown(listener, shutdown)
    });
    let calls = grow_calls(CALLS, 1 << 20);
    let mut stream = connect(server.addr).await;
    bounded("write the calls", stream.write_all(&calls))
        .await
        .expect("write");
    // Many keepalive periods without reading a byte.
    tokio::time::sleep((INTERVAL + TIMEOUT) * 10).await;
    // Now read: the connection ends before every answer came (the server closed it), where a
    // server that kept it would deliver all 64 MiB.
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0usize;
    loop {
        let n = match bounded("read until the server's close", stream.read(&mut buf)).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        total += n;
        assert!(
            total < CALLS as usize * (1 << 20),
            "the server kept a client that did not read: every answer came"
        );
    }
    // At most the high-water mark and what the socket buffers held, not 64 MiB.
    assert!(total < 32 << 20, "{total} bytes came before the close");
    server.stop().await;
}
