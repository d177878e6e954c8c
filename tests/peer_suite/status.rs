//! grpc-go's `status_test.go` and end2end status cases, tonic's `status.rs`: a handler's status
//! arrives exactly as it was made (any message, any details bytes, out-of-range codes read as
//! `UNKNOWN`), from every call shape, including after messages a stream already sent, and
//! never ahead of the last of them.

use crate::support::{bounded, channel, serve, with_meta, Peer};
use futures_util::stream;
use sockrpc::{Code, Request, Server};
use sockrpc_tests::parity::test1_client::Test1Client;
use sockrpc_tests::parity::test1_server::Test1Server;
use sockrpc_tests::parity::Input1;

/// A request that makes a `Peer` fail with `code`, `message` and `details`.
fn failing<T>(message: T, code: u32, text: &str, details: &[u8]) -> Request<T> {
    let mut request = with_meta(message, &[("x-fail", &code.to_string())]);
    let metadata = request.metadata_mut();
    metadata
        .insert_bin("x-fail-message-bin", text.as_bytes().to_vec().into())
        .expect("bin");
    metadata
        .insert_bin("x-fail-details-bin", details.to_vec().into())
        .expect("bin");
    request
}

const MESSAGES: &[&str] = &[
    "",
    "100% done, %25 escaped, %zz broken, trailing %",
    "line one\nline two\r\n\ttabbed",
    "non-ASCII: héllo, 日本語, emoji 😈, NUL \0 inside",
    "  leading and trailing spaces  ",
];

#[tokio::test]
async fn messages_and_details_round_trip_exactly() {
    let server = serve(Server::builder().add_service(Test1Server::new(Peer::default())));
    let mut client = Test1Client::new(channel(server.addr).await);
    let details: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    for text in MESSAGES {
        let err = bounded(
            "unary",
            client.unary_call(failing(Input1::default(), 9, text, &details)),
        )
        .await
        .expect_err("fails");
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert_eq!(err.message(), *text);
        assert_eq!(err.details(), details.as_slice());
    }
    server.stop().await;
}

#[test]
fn out_of_range_codes_read_as_unknown() {
    for number in [17u32, 100, 1 << 31, u32::MAX] {
        assert_eq!(Code::from_u32(number), Code::Unknown);
    }
    for code in Code::ALL {
        assert_eq!(Code::from_u32(code.as_u32()), code);
    }
}

#[tokio::test]
async fn a_status_with_an_out_of_range_code_arrives_as_unknown() {
    // The handler's code is built from a number, as a status from another error space is.
    let server = serve(Server::builder().add_service(Test1Server::new(Peer::default())));
    let mut client = Test1Client::new(channel(server.addr).await);
    let err = bounded(
        "unary",
        client.unary_call(failing(Input1::default(), 42, "odd", b"")),
    )
    .await
    .expect_err("fails");
    assert_eq!((err.code(), err.message()), (Code::Unknown, "odd"));
    server.stop().await;
}

#[tokio::test]
async fn a_handler_error_with_code_ok_is_no_success() {
    // grpc-go's `status.Error(codes.OK, ..)` is no error at all; a Rust handler can still
    // return `Err(Status::new(Code::Ok, ..))`. The client has no answer to hand back, so the
    // call must fail, not succeed with a made-up message.
    let server = serve(Server::builder().add_service(Test1Server::new(Peer::default())));
    let mut client = Test1Client::new(channel(server.addr).await);
    let result = bounded(
        "unary",
        client.unary_call(failing(Input1::default(), 0, "ok?", b"")),
    )
    .await;
    let err = result.expect_err("no answer was sent: the call cannot succeed");
    assert_ne!(err.code(), Code::Ok, "{err:?}");
    let requests = stream::iter(vec![Input1::default(); 2]);
    let result = bounded("collect", client.collect(failing(requests, 0, "ok?", b""))).await;
    let err = result.expect_err("no answer was sent: the call cannot succeed");
    assert_ne!(err.code(), Code::Ok, "{err:?}");
    server.stop().await;
}

#[tokio::test]
async fn every_shape_ends_with_the_handlers_status_after_its_messages() {
    let server = serve(Server::builder().add_service(Test1Server::new(Peer::default())));
    let mut client = Test1Client::new(channel(server.addr).await);
    let text = "50% failed\nsecond line ☺";

    // Server stream: two messages, then the status.
    let mut request = failing(Input1::default(), 10, text, b"\x01\x02");
    request
        .metadata_mut()
        .insert_str("x-after", "2")
        .expect("text");
    request
        .metadata_mut()
        .insert_str("x-count", "5")
        .expect("text");
    let mut messages = bounded("open", client.stream_call(request))
        .await
        .expect("opens")
        .into_inner();
    for n in 0..2 {
        bounded("message", messages.message())
            .await
            .unwrap_or_else(|e| panic!("message {n}: {e:?}"))
            .expect("a message");
    }
    let err = bounded("status", messages.message())
        .await
        .expect_err("the status");
    assert_eq!((err.code(), err.message()), (Code::Aborted, text));
    assert_eq!(err.details(), b"\x01\x02");
    assert_eq!(
        bounded("end", messages.message()).await.expect("ended"),
        None
    );

    // Bidi: one echo, then the status while the client is still sending.
    let mut request = failing(stream::iter(vec![Input1::default(); 100]), 11, text, b"");
    request
        .metadata_mut()
        .insert_str("x-after", "1")
        .expect("text");
    let mut messages = bounded("chat", client.chat(request))
        .await
        .expect("opens")
        .into_inner();
    bounded("echo", messages.message())
        .await
        .expect("an echo")
        .expect("a message");
    let err = bounded("status", messages.message())
        .await
        .expect_err("the status");
    assert_eq!((err.code(), err.message()), (Code::OutOfRange, text));

    // Client stream: the handler reads one message, then fails; the client's stream never
    // ends on its own, yet the call ends with the status.
    let mut request = failing(stream::repeat(Input1::default()), 7, text, b"");
    request
        .metadata_mut()
        .insert_str("x-read", "1")
        .expect("text");
    let err = bounded("collect", client.collect(request))
        .await
        .expect_err("the status");
    assert_eq!((err.code(), err.message()), (Code::PermissionDenied, text));
    server.stop().await;
}

/// grpc-go's `TestRecvWhileReturningStatus`: the status a handler returns right after its last
/// message never overtakes that message, nor is taken for a clean end, however the two frames
/// meet the reader. Many rounds, so that some statuses arrive while the reader is mid-message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_right_after_the_last_message_never_overtakes_it() {
    const ROUNDS: usize = 100;
    const SENT: usize = 10;
    let server = serve(Server::builder().add_service(Test1Server::new(Peer::default())));
    let mut client = Test1Client::new(channel(server.addr).await);
    for round in 0..ROUNDS {
        let mut request = failing(Input1::default(), 15, "after ten", b"");
        let sent = SENT.to_string();
        request
            .metadata_mut()
            .insert_str("x-after", &sent)
            .expect("text");
        request
            .metadata_mut()
            .insert_str("x-count", &sent)
            .expect("text");
        request
            .metadata_mut()
            .insert_str("x-size", "300")
            .expect("text");
        let result = bounded("a stream", async {
            let mut messages = client
                .stream_call(request)
                .await
                .map_err(|status| (0, status))?
                .into_inner();
            let mut read = 0;
            loop {
                match messages.message().await {
                    Ok(Some(_)) => read += 1,
                    Ok(None) => return Ok(read),
                    Err(status) => return Err((read, status)),
                }
            }
        })
        .await;
        match result {
            Err((read, status)) => {
                assert_eq!(read, SENT, "round {round}: messages before the status");
                assert_eq!(status.code(), Code::DataLoss, "round {round}: {status:?}");
                assert_eq!(status.message(), "after ten", "round {round}");
            }
            Ok(read) => panic!("round {round}: ended OK after {read} messages"),
        }
    }
    server.stop().await;
}
