//! A split message whose call is cancelled stops going out.
//!
//! A client gives up (drops its future) on a 16 MiB request that crawls through a slow link
//! toward the server. Its pieces wait in the outbox's bulk lane; before, every one of them still
//! went out after the CANCEL, 16 MiB for nothing, ahead of every other split message on the
//! connection. Now the cancel drops what is not cut yet and ends the server's assembly with an
//! empty last piece (`docs/PROTOCOL.md`, *Pieces*), and the next call on the connection works.

use crate::support::{bounded, EchoImpl};
use sockrpc::{Channel, Endpoint, Server, SocketConfig};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::EchoRequest;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The request the client gives up on.
const LARGE: usize = 16 << 20;
/// Bytes the proxy forwards toward the server per [`TICK`]: about 4 MiB/s.
const PER_TICK: usize = 64 * 1024;
const TICK: Duration = Duration::from_millis(16);
/// Socket buffers on the client's side of the proxy, so that little waits in the kernel.
const SMALL_BUFFER: usize = 64 * 1024;

/// Forwards one connection to `server`, toward it at about 4 MiB/s (counted in `forwarded`),
/// back at full speed.
async fn counting_proxy(server: SocketAddr, forwarded: Arc<AtomicUsize>) -> SocketAddr {
    let socket = TcpSocket::new_v4().expect("proxy socket");
    // Inherited by the accepted connection: the client's bytes wait in its outbox, not here.
    socket
        .set_recv_buffer_size(SMALL_BUFFER as u32)
        .expect("receive buffer");
    socket
        .bind("127.0.0.1:0".parse().expect("address"))
        .expect("bind proxy");
    let listener = socket.listen(4).expect("listen");
    let addr = listener.local_addr().expect("proxy address");
    tokio::spawn(async move {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        let Ok(upstream) = TcpStream::connect(server).await else {
            return;
        };
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = upstream.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        });
        let mut buf = vec![0u8; PER_TICK];
        loop {
            match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if server_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    forwarded.fetch_add(n, Ordering::SeqCst);
                }
            }
            tokio::time::sleep(TICK).await;
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_16_mib_request_stops_going_out_and_the_connection_goes_on() {
    let listener =
        sockrpc::transport::bind_tcp("127.0.0.1:0".parse().expect("address"), &Default::default())
            .expect("bind 127.0.0.1:0");
    let server_addr = listener.local_addr().expect("local address");
    let server = tokio::spawn(
        Server::builder()
            .max_decoding_message_size(2 * LARGE)
            .add_service(EchoServer::new(EchoImpl::default()))
            .serve_with_listener(listener),
    );
    let forwarded = Arc::new(AtomicUsize::new(0));
    let proxy = counting_proxy(server_addr, Arc::clone(&forwarded)).await;
    let endpoint = Endpoint::new("127.0.0.1", proxy.port())
        .pool_size(1)
        .max_encoding_message_size(2 * LARGE)
        .socket_config(SocketConfig::default().send_buffer_size(Some(SMALL_BUFFER)));
    let channel = bounded("connect", Channel::connect(endpoint))
        .await
        .expect("connect");
    let mut client = EchoClient::new(channel.clone());
    // A first call, so that the server's SETTINGS (CAP_PIECES) has arrived.
    bounded("warm-up", client.echo(EchoRequest::default()))
        .await
        .expect("warm-up call");
    let request = EchoRequest {
        payload: vec![7u8; LARGE].into(),
        id: 1,
    };
    // Given up after about 1 MiB went through: the future is dropped, the call cancelled.
    let gave_up = tokio::time::timeout(Duration::from_millis(250), client.echo(request)).await;
    assert!(gave_up.is_err(), "16 MiB crossed a 4 MiB/s link in 250 ms");
    let at_cancel = forwarded.load(Ordering::SeqCst);
    // The connection goes on: a call on it is answered.
    let reply = bounded(
        "a call after the cancel",
        client.echo(EchoRequest {
            payload: b"after".to_vec().into(),
            id: 2,
        }),
    )
    .await
    .expect("the call after the cancel")
    .into_inner();
    assert_eq!((reply.id, &reply.payload[..]), (2, &b"after"[..]));
    // Wait for the link to go quiet (bounded: 100 polls), or for the whole request to pass.
    let mut last = usize::MAX;
    let mut quiet = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = forwarded.load(Ordering::SeqCst);
        quiet = if now == last { quiet + 1 } else { 0 };
        last = now;
        if quiet == 5 || now >= LARGE {
            break;
        }
    }
    assert!(
        last < LARGE / 4,
        "{last} bytes went toward the server ({at_cancel} when the call was given up): \
         the cancelled request's pieces went on going out"
    );
    server.abort();
}
