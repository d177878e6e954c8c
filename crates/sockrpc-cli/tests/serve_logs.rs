//! `sockrpc serve` logs to stderr why it closed a connection: a malformed frame closes that
//! one connection with a logged reason, and the server goes on serving others.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use support::*;

#[test]
fn a_protocol_error_is_logged_with_its_reason() {
    let (mut server, line, lines) =
        spawn_logging_server(sockrpc().args(["serve", "--tcp", "127.0.0.1:0", "--workers", "1"]));
    let addr = tcp_addr(&line);
    // A preface with the wrong magic: the server answers GOAWAY and closes this connection.
    let mut bad = TcpStream::connect(addr).expect("connect");
    bad.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    bad.write_all(b"NOTSOCKRPC\x01\x00").expect("write");
    let mut rest = Vec::new();
    let _ = bad.read_to_end(&mut rest);
    let logged = lines
        .recv_timeout(Duration::from_secs(10))
        .expect("serve logged nothing about the closed connection");
    assert!(
        logged.contains("WARN") && logged.contains("closing connection"),
        "{logged}"
    );
    assert!(logged.contains("peer"), "the log names the peer: {logged}");
    let _ = server.0.kill();
}

/// `sockrpc serve` logs at WARN: a TLS refusal must show there, but a scanner's flood only once.
#[test]
fn tls_refusals_are_logged_at_warn_once_per_kind_not_per_connection() {
    let dir = temp_path("serve-logs-tls");
    std::fs::create_dir_all(&dir).expect("dir");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    // Self-signed, as `openssl req -x509` makes them: no warning about a missing issuer.
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let pair = rcgen::KeyPair::generate().expect("key");
    let certificate = params.self_signed(&pair).expect("certificate");
    std::fs::write(&cert, certificate.pem()).expect("write cert");
    std::fs::write(&key, pair.serialize_pem()).expect("write key");
    let (server, line, lines) = spawn_logging_server(
        sockrpc()
            .args([
                "serve",
                "--tcp",
                "127.0.0.1:0",
                "--workers",
                "1",
                "--tls-cert",
            ])
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key),
    );
    let addr = listed_addr(&line, "tls");
    // Ten connections that speak HTTP to the TLS port.
    for _ in 0..10 {
        let mut scanner = TcpStream::connect(addr).expect("connect");
        scanner
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        scanner.write_all(b"GET / HTTP/1.1\r\n\r\n").expect("write");
        let mut rest = Vec::new();
        let _ = scanner.read_to_end(&mut rest);
    }
    let logged = lines
        .recv_timeout(Duration::from_secs(10))
        .expect("serve logged nothing about the refused connections");
    assert!(
        logged.contains("WARN") && logged.contains("not TLS: connection closed"),
        "{logged}"
    );
    assert!(logged.contains("peer"), "the log names the peer: {logged}");
    // The other nine are not logged at WARN (within the 10 s budget).
    let more: Vec<String> =
        std::iter::from_fn(|| lines.recv_timeout(Duration::from_millis(500)).ok())
            .take(20)
            .collect();
    assert!(more.is_empty(), "one warning for the flood: {more:#?}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
