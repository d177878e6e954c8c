//! A client on a Unix socket (no peer address: `ConnInfo::peer` is `None`) naming methods in
//! OPENs as long as the path length field allows (65,535 bytes): a well-formed one that no
//! service serves fails its own call `UNIMPLEMENTED`, 64 of them on one connection leave it
//! serving; an OPEN whose path length runs past its body closes that connection with a
//! GOAWAY(`INTERNAL`) naming the fault; and a well-behaved client on the same socket is served
//! throughout.

use crate::compressed_running::ends;
use crate::raw::{concat, echo_message, frame, goaway, open, server_frames, ECHO_PATH, OPEN};
use crate::raw::{INTERNAL, PREFACE};
use crate::support::{bounded, EchoImpl};
use sockrpc::{Channel, Endpoint};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::EchoRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

const UNIMPLEMENTED: u32 = 12;
/// Calls on one connection, each naming a 65,535-byte method.
const LONG_CALLS: u32 = 64;

/// A well-formed method path of exactly `u16::MAX` bytes that no service serves.
fn longest_path(i: u32) -> Vec<u8> {
    let mut path = format!("/p{i}.S/").into_bytes();
    path.resize(usize::from(u16::MAX), b'm');
    path
}

/// Reads until `calls` ENDs came, or the server closes; what it sent.
async fn read_ends(stream: &mut UnixStream, calls: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    bounded("answers", async {
        while ends(&got).len() < calls {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    got
}

async fn echo(path: &std::path::Path, id: u64) {
    let endpoint = Endpoint::unix(path);
    let channel = bounded("connect", Channel::connect(endpoint))
        .await
        .expect("a Unix channel");
    let reply = bounded(
        "echo",
        EchoClient::new(channel).echo(EchoRequest {
            payload: Default::default(),
            id,
        }),
    )
    .await
    .expect("a well-behaved call");
    assert_eq!(reply.into_inner().id, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn longest_method_paths_on_a_unix_socket_fail_their_own_calls() {
    let dir = std::env::temp_dir().join(format!("sockrpc-hostile-uds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory");
    let path = dir.join("paths.sock");
    let listener = sockrpc::transport::bind_unix(&path).expect("bind");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        sockrpc::Server::builder()
            .add_service(EchoServer::new(EchoImpl::default()))
            .serve_unix_with_listener_and_shutdown(listener, async {
                let _ = stopped.await;
            }),
    );
    echo(&path, 1).await;

    // Long paths, each call refused alone; then an echo on the same connection.
    let mut stream = UnixStream::connect(&path).await.expect("connect");
    let mut bytes = PREFACE.to_vec();
    for i in 0..LONG_CALLS {
        let call_id = 2 * i + 1;
        bytes.extend_from_slice(&open(call_id, &longest_path(i), &[]));
        bytes.extend_from_slice(&echo_message(call_id, u64::from(i), b"long"));
    }
    let last = 2 * LONG_CALLS + 1;
    bytes.extend_from_slice(&open(last, ECHO_PATH, &[]));
    bytes.extend_from_slice(&echo_message(last, 7, b"after"));
    stream.write_all(&bytes).await.expect("write");
    let got = read_ends(&mut stream, LONG_CALLS as usize + 1).await;
    let codes = ends(&got);
    assert_eq!(codes.len(), LONG_CALLS as usize + 1, "{codes:?}");
    for (call_id, code) in codes {
        let expected = if call_id == last { 0 } else { UNIMPLEMENTED };
        assert_eq!(code, expected, "call {call_id}");
    }
    let frames = server_frames(&got);
    assert!(
        goaway(&frames).is_none(),
        "the connection goes on: {frames:?}"
    );
    echo(&path, 2).await;

    // A path length past the OPEN's body: that connection alone is closed, with the fault.
    let mut body = vec![0u8; 8];
    body.extend_from_slice(&u16::MAX.to_be_bytes());
    body.extend_from_slice(b"/p.S/m");
    let mut bad = UnixStream::connect(&path).await.expect("connect");
    bad.write_all(&concat(&[PREFACE, &frame(OPEN, 0, 1, &body)]))
        .await
        .expect("write");
    let got = read_ends(&mut bad, 1).await;
    let frames = server_frames(&got);
    let (code, reason) = goaway(&frames).expect("a GOAWAY");
    assert_eq!(code, INTERNAL, "{reason}");
    assert!(reason.contains("Open"), "{reason}");
    let mut rest = [0u8; 16];
    let closed = bounded("the close", bad.read(&mut rest)).await;
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    echo(&path, 3).await;

    let _ = stop.send(());
    let _ = bounded("the server stops", server).await;
    let _ = std::fs::remove_dir_all(&dir);
}
