//! Odd SNI names on their way to a handler's `TlsPeer::server_name`: the longest DNS name, in
//! capitals, arrives lowercased; an IP literal in SNI (which RFC 6066 forbids) is taken as no
//! name, and the handshake goes on; a name that is not ASCII is refused in the handshake (rustls: `illegal_parameter`), with the
//! reason logged, and the server serves others meanwhile. No handler ever sees raw SNI bytes.

use super::*;
use sockrpc::tls::rustls;

/// A 253-byte DNS name (the most DNS allows), in capitals.
fn longest_name() -> String {
    let label = |c: char, n: usize| std::iter::repeat_n(c, n).collect::<String>();
    format!(
        "{}.{}.{}.{}",
        label('A', 63),
        label('B', 63),
        label('C', 63),
        label('D', 61)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_longest_name_reaches_the_handler_lowercased() {
    let ca = Ca::new("SNI CA");
    let name = longest_name();
    assert_eq!(name.len(), 253);
    let lower = name.to_ascii_lowercase();
    let tls = server_tls(ServerTlsConfig::new(ca.leaf(&[&lower]).identity()));
    let server = TestServer::start(tls).await;
    let client = ClientTlsConfig::new()
        .ca_certificates(ca.certificates())
        .server_name(name.clone());
    assert_eq!(
        greet(server.endpoint(client)).await.expect("served"),
        "Hello tls!"
    );
    let peers = server.peers();
    let seen = peers[0].as_ref().expect("TLS peer").server_name();
    assert_eq!(seen, Some(lower.as_str()));
    server.stop().await;
}

/// A real ClientHello for `name`, whose SNI bytes are then replaced by `odd` (as long).
fn hello_with_sni(ca: &Ca, name: &str, odd: &[u8]) -> Vec<u8> {
    assert_eq!(name.len(), odd.len());
    let server_name = sockrpc::tls::pki_types::ServerName::try_from(name.to_owned()).expect("name");
    let config = rustls_client(ca, &[sockrpc::tls::ALPN_PROTOCOL], false);
    let mut conn = rustls::ClientConnection::new(config, server_name).expect("client");
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).expect("hello");
    let at = hello
        .windows(name.len())
        .position(|w| w == name.as_bytes())
        .expect("the SNI is in the hello");
    hello[at..at + odd.len()].copy_from_slice(odd);
    hello
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_that_is_not_ascii_is_refused_in_the_handshake_and_an_ip_literal_ignored() {
    let ca = Ca::new("odd SNI CA");
    let tls = server_tls(ServerTlsConfig::new(ca.leaf(SERVER_NAMES).identity()));
    let server = TestServer::start(tls).await;
    let _ = warnings();
    // "é" is two bytes: "sni.t\u{e9}st" is as long as "snii.test".
    for (odd, refused) in [
        ("sni.t\u{e9}st".as_bytes(), true),
        (&b"127.0.0.1"[..], false),
    ] {
        let hello = hello_with_sni(&ca, if refused { "snii.test" } else { "abcd.test" }, odd);
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        let me = peer_field(stream.local_addr().expect("addr"));
        stream.write_all(&hello).await.expect("hello");
        let answer = read_at_least(&mut stream, 7).await;
        if refused {
            // A fatal alert, in plain text: illegal_parameter (47).
            assert_eq!(answer.first(), Some(&0x15), "{answer:02x?}");
            assert!(answer.len() >= 7 && answer[6] == 47, "{answer:02x?}");
            let lines = warned(&["TLS handshake failed", &me]).await;
            assert_eq!(lines.len(), 1, "{}", warnings());
        } else {
            // The handshake goes on without a name: a ServerHello.
            assert_eq!(answer.first(), Some(&0x16), "{answer:02x?}");
        }
    }
    let trust = ClientTlsConfig::new().ca_certificates(ca.certificates());
    assert_eq!(
        greet(server.endpoint(trust)).await.expect("served"),
        "Hello tls!"
    );
    server.stop().await;
}
