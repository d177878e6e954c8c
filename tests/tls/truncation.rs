//! A hostile TLS server against the client: an answer cut short, with or without close_notify,
//! fails its call `UNAVAILABLE` (never delivered partial as whole, never a hang); records that
//! do not decrypt, or bytes that are not TLS, after the handshake fail it too, saying TLS; a
//! server that stalls its handshake is ended by the connect timeout.

use super::*;
use sockrpc::protocol::frame::{self, PREFACE};
use tokio_rustls::server::TlsStream;

/// The call id of the first OPEN frame in what a client sent (its preface first), if whole.
fn first_open(sent: &[u8]) -> Option<u32> {
    let mut at = PREFACE.len();
    while sent.len() >= at + frame::HEADER_LEN {
        let len = u32::from_be_bytes(sent[at..at + 4].try_into().ok()?) as usize;
        let id = u32::from_be_bytes(sent[at + 8..at + 12].try_into().ok()?);
        if sent[at + 4] == frame::FrameKind::Open as u8 {
            return Some(id);
        }
        at += frame::HEADER_LEN + len;
    }
    None
}

/// Sends the preface, then reads until the client's first call has opened: its id.
async fn first_call(tls: &mut TlsStream<TcpStream>) -> Option<u32> {
    tls.write_all(&PREFACE).await.ok()?;
    tls.flush().await.ok()?;
    let mut sent = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(id) = first_open(&sent) {
                return Some(id);
            }
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => sent.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()?
}

/// Half of an answer: a MESSAGE that ends the call OK, whose 64-byte body stops after 10.
fn half_an_answer(id: u32) -> Vec<u8> {
    let mut out = bytes::BytesMut::new();
    frame::encode_message_end_ok_head(&mut out, id, false, 64);
    out.extend_from_slice(&[0x0a; 10]);
    out.to_vec()
}

/// How the hostile server ends, after what it sends.
#[derive(Clone, Copy, Debug)]
enum Ending {
    /// Half an answer, then the TCP connection closed without close_notify.
    Abrupt,
    /// Half an answer, then close_notify and FIN.
    CloseNotify,
    /// A record of application data whose tag cannot be right (bad_record_mac).
    BadRecord,
    /// Bytes that are not TLS at all, on the socket beneath the session.
    NotTls,
}

async fn hostile(ending: Ending, mut tls: TlsStream<TcpStream>) {
    let Some(id) = first_call(&mut tls).await else {
        return;
    };
    match ending {
        Ending::Abrupt => {
            let _ = tls.write_all(&half_an_answer(id)).await;
            let _ = tls.flush().await;
            let (tcp, _) = tls.into_inner();
            drop(tcp);
        }
        Ending::CloseNotify => {
            let _ = tls.write_all(&half_an_answer(id)).await;
            let _ = tls.shutdown().await;
            let _ = read_at_least(&mut tls, usize::MAX).await;
        }
        Ending::BadRecord => {
            let mut record = vec![0x17, 0x03, 0x03, 0x00, 0x40];
            record.extend_from_slice(&[0x5a; 0x40]);
            let _ = tls.get_mut().0.write_all(&record).await;
            let _ = read_at_least(&mut tls, usize::MAX).await;
        }
        Ending::NotTls => {
            let _ = tls.get_mut().0.write_all(b"HTTP/1.1 400 Bad\r\n\r\n").await;
            let _ = read_at_least(&mut tls, usize::MAX).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_cut_short_or_garbled_fails_its_call_unavailable_at_once() {
    let ca = Ca::new("hostile server CA");
    let leaf = ca.leaf(SERVER_NAMES);
    let chain = ca_chain(&leaf);
    for ending in [
        Ending::Abrupt,
        Ending::CloseNotify,
        Ending::BadRecord,
        Ending::NotTls,
    ] {
        let (addr, task) = scripted_server(rustls_server(chain.clone(), &leaf), move |tls| {
            hostile(ending, tls)
        })
        .await;
        let endpoint = Endpoint::new("127.0.0.1", addr.port())
            .tls(ClientTlsConfig::new().ca_certificates(ca.certificates()))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(10));
        let started = Instant::now();
        let result = greet(endpoint).await;
        eprintln!("{ending:?}: {result:?}");
        let status = expect_unavailable(result, started, "");
        if matches!(ending, Ending::BadRecord | Ending::NotTls) {
            assert!(status.message().contains("TLS"), "{ending:?}: {status:?}");
        }
        task.abort();
    }
}

/// The leaf alone, as its chain.
fn ca_chain(leaf: &Leaf) -> Vec<sockrpc::tls::pki_types::CertificateDer<'static>> {
    vec![leaf.der().into()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stalls_its_handshake_is_ended_by_the_connect_timeout() {
    let ca = Ca::new("stalling server CA");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    // The first connection is never answered; the second gets the start of a ServerHello.
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        for partial in [&[][..], &[0x16, 0x03, 0x03, 0x00, 0x7a, 0x02, 0x00][..]] {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let _ = stream.write_all(partial).await;
            held.push(stream);
        }
        tokio::time::sleep(Duration::from_secs(15)).await;
    });
    for _ in 0..2 {
        let endpoint = Endpoint::new("127.0.0.1", addr.port())
            .tls(ClientTlsConfig::new().ca_certificates(ca.certificates()))
            .connect_timeout(Duration::from_millis(800))
            .timeout(Duration::from_secs(10));
        let started = Instant::now();
        let status = expect_unavailable(greet(endpoint).await, started, "timed out");
        assert!(
            started.elapsed() >= Duration::from_millis(700),
            "{status:?}"
        );
    }
    task.abort();
}
