//! A flood of TLS handshakes each abandoned midway (a reset right after the ClientHello, a FIN
//! after it, a close after the server's first flight) gives every connection slot back as it
//! ends: at a cap of 8, after 300 of them, 8 real TLS clients are all served at once, none
//! refused, which a slot kept by any one of them would have prevented (established connections
//! are never evicted: the ninth is refused). `stalled_at_cap.rs` (tests/tls) covers handshakes
//! that stall; these end.

use crate::support::{bounded, start_serving, EchoImpl};
use crate::tls_unread::{rustls_client, self_signed, server_name};
use sockrpc::tls::{rustls, Certificates, ClientTlsConfig, Identity, ServerTls, ServerTlsConfig};
use sockrpc::{Channel, Code, Endpoint};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::EchoRequest;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CAP: usize = 8;
const ABANDONED: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_abandoned_midway_give_their_slots_back() {
    let certified = self_signed();
    let (cert_pem, key_pem) = (certified.cert.pem(), certified.signing_key.serialize_pem());
    let identity = Identity::from_pem(&cert_pem, &key_pem).expect("identity");
    let tls = ServerTls::new(ServerTlsConfig::new(identity)).expect("TLS configuration");
    let server = start_serving(move |listener, shutdown| {
        sockrpc::Server::builder()
            .tls_handle(tls)
            .max_connections(CAP)
            .add_service(EchoServer::new(EchoImpl::default()))
            .serve_with_listener_and_shutdown(listener, shutdown)
    });
    let config = rustls_client(certified.cert.der());
    let mut hello = Vec::new();
    rustls::ClientConnection::new(config, server_name())
        .expect("a client")
        .write_tls(&mut hello)
        .expect("a ClientHello");
    for i in 0..ABANDONED {
        let mut tcp = bounded("connect", TcpStream::connect(server.addr))
            .await
            .expect("connect");
        tcp.write_all(&hello).await.expect("write the hello");
        match i % 3 {
            // A reset.
            0 => socket2::SockRef::from(&tcp)
                .set_linger(Some(Duration::ZERO))
                .expect("linger"),
            // A FIN.
            1 => {}
            // The server's first flight read, then a FIN.
            _ => {
                let mut flight = [0u8; 1024];
                let n = bounded("the server's flight", tcp.read(&mut flight))
                    .await
                    .expect("read");
                assert!(n > 0, "abandoned handshake {i}: the server closed first");
            }
        }
        drop(tcp);
    }
    // Every abandoned connection's task notices its end at once; a moment for the last.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let endpoint = || {
        Endpoint::new("127.0.0.1", server.addr.port())
            .tls(
                ClientTlsConfig::new()
                    .ca_certificates(Certificates::from_pem(&cert_pem).expect("PEM")),
            )
            .timeout(Duration::from_secs(5))
    };
    let mut served = Vec::new();
    for i in 0..CAP as u64 {
        let channel = bounded("connect", Channel::connect(endpoint()))
            .await
            .expect("a channel");
        let mut client = EchoClient::new(channel.clone());
        let reply = bounded(
            "echo",
            client.echo(EchoRequest {
                payload: Default::default(),
                id: i,
            }),
        )
        .await
        .unwrap_or_else(|status| panic!("real client {i} of {CAP} refused: {status}"));
        assert_eq!(reply.into_inner().id, i);
        served.push(channel);
    }
    // The cap is full of established connections: one more is refused.
    let extra = async {
        let channel = Channel::connect(endpoint()).await?;
        EchoClient::new(channel)
            .echo(EchoRequest {
                payload: Default::default(),
                id: 99,
            })
            .await
    };
    let refused = bounded("a ninth client", extra)
        .await
        .expect_err("at the cap");
    assert!(
        matches!(refused.code(), Code::ResourceExhausted | Code::Unavailable),
        "{refused}"
    );
    drop(served);
    server.stop().await;
}
