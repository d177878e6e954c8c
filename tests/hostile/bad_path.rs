//! A well-formed OPEN whose method path is not `/package.Service/Method` fails its own call
//! `UNIMPLEMENTED`, as grpc-go answers a malformed method name on its stream, and the connection
//! goes on serving: a path is what a caller asked for, not how the connection is framed. (It
//! used to close the connection, failing every call on it.) And a client refuses to send one.

use crate::raw::{
    concat, echo_message, open, read_while_open, server_frames, ECHO_PATH, END, MESSAGE, PREFACE,
};
use crate::support::{bounded, start_echo, EchoImpl};
use prost::Message as _;
use sockrpc::{Channel, Code, Idempotency, ProstCodec, Request, RpcMethod};
use sockrpc_tests::echo::{EchoReply, EchoRequest};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// `UNIMPLEMENTED`'s code on the wire.
const UNIMPLEMENTED: u32 = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_path_fails_its_call_and_the_connection_serves_on() {
    let server = start_echo(EchoImpl::default());
    for path in [
        &b""[..],
        b"no-slash",
        b"/only-service",
        b"//Method",
        b"/svc.S/",
        b"/a/b/c",
        b"/sockrpc.test.Echo/\xff\xfe",
    ] {
        let what = format!("path {:?}", String::from_utf8_lossy(path));
        let mut stream = bounded("connect", TcpStream::connect(server.addr))
            .await
            .expect("connect");
        // The bad call with its message, then a good one on the same connection.
        let request = concat(&[
            PREFACE,
            &open(1, path, &[]),
            &echo_message(1, 1, b"bad"),
            &open(3, ECHO_PATH, &[]),
            &echo_message(3, 3, b"good"),
        ]);
        stream.write_all(&request).await.expect("write");
        // Read until both answers are in (bounded), the connection open throughout.
        let mut got = Vec::new();
        for _ in 0..100 {
            got.extend(read_while_open(&mut stream, Duration::from_millis(100), &what).await);
            let frames = server_frames(&got);
            let has = |kind, id| frames.iter().any(|f| f.kind == kind && f.call_id == id);
            if has(END, 1) && has(MESSAGE, 3) {
                break;
            }
        }
        let frames = server_frames(&got);
        let end = frames
            .iter()
            .find(|f| f.kind == END && f.call_id == 1)
            .unwrap_or_else(|| panic!("{what}: no END for the bad call: {frames:?}"));
        let code = u32::from_be_bytes([end.body[0], end.body[1], end.body[2], end.body[3]]);
        let len = u32::from_be_bytes([end.body[4], end.body[5], end.body[6], end.body[7]]);
        let message = String::from_utf8_lossy(&end.body[8..8 + len as usize]);
        assert_eq!(code, UNIMPLEMENTED, "{what}: {message}");
        assert!(
            message.contains("malformed method path"),
            "{what}: {message}"
        );
        let answer = frames
            .iter()
            .find(|f| f.kind == MESSAGE && f.call_id == 3)
            .unwrap_or_else(|| panic!("{what}: the good call was not answered: {frames:?}"));
        let reply = EchoReply::decode(&answer.body[..]).expect("reply decodes");
        assert_eq!(reply.id, 3, "{what}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_refuses_a_malformed_path_and_its_connection_serves_on() {
    let server = start_echo(EchoImpl::default());
    let channel = Channel::connect(server.addr).await.expect("connect");
    let mut client = sockrpc::Client::new(channel.clone());
    let echo = |id: u64| {
        Request::new(EchoRequest {
            id,
            ..EchoRequest::default()
        })
    };
    for path in ["no-slash", "/a/b/c", "//m", "/svc/"] {
        let refused = client
            .unary::<EchoRequest, EchoReply, _>(
                echo(1),
                RpcMethod::new(path, Idempotency::Unknown),
                ProstCodec,
            )
            .await
            .expect_err("malformed");
        assert_eq!(refused.code(), Code::Unimplemented, "{path}: {refused:?}");
        assert!(
            refused.message().contains("malformed method path"),
            "{path}: {refused:?}"
        );
    }
    let reply = client
        .unary::<EchoRequest, EchoReply, _>(echo(7), "/sockrpc.test.Echo/Echo", ProstCodec)
        .await
        .expect("a good call on the same channel");
    assert_eq!(reply.into_inner().id, 7);
    server.stop().await;
}
