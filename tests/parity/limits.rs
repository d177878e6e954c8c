//! tonic's `max_message_size.rs`: the receive and send limits of both sides, at and around
//! their boundaries, as a table of cases, and a stream of messages larger than the default
//! limit once both sides allow them.
//!
//! A limit counts a message's encoded bytes (the 5-byte gRPC prefix aside, as tonic counts):
//! a message of exactly the limit passes, one byte more fails. A message over a limit fails
//! `RESOURCE_EXHAUSTED`, gRPC's code for it (tonic answers `OUT_OF_RANGE`, and `INTERNAL`
//! for its client's own send limit); only the call fails, the connection serves on.
//!
//! What differs from tonic by design (README, *Coming from tonic*): the transport's frame
//! limit (4 MiB) bounds every message on the wire, so a side that sends or receives more sets
//! it on `Server::builder()` / the `Endpoint` as well as on the generated server or client;
//! and by default a side sends no more than it would accept (tonic sends any size).

use crate::support::{bounded, channel_with, serve, Test1Svc};
use prost::Message;
use sockrpc::{Code, Server, Status};
use sockrpc_tests::parity::test1_client::Test1Client;
use sockrpc_tests::parity::test1_server::Test1Server;
use sockrpc_tests::parity::{Input1, Output1};

const MIB: usize = 1024 * 1024;

/// The blob size whose `Input1`/`Output1` encodes to exactly `encoded` bytes (field tag, the
/// length as a varint, the bytes).
fn blob_for(encoded: usize) -> usize {
    let mut blob = encoded.saturating_sub(2);
    while blob > 0
        && (Input1 {
            buf: vec![0; blob].into(),
        })
        .encoded_len()
            > encoded
    {
        blob -= 1;
    }
    assert_eq!(
        (Input1 {
            buf: vec![0; blob].into()
        })
        .encoded_len(),
        encoded,
        "no blob encodes to {encoded} bytes"
    );
    blob
}

/// One of tonic's cases: blob sizes each way, the generated server's and client's limits, and
/// whether the transports on both sides are opened wide (tonic's `usize::MAX`).
#[derive(Default, Debug, Clone, Copy)]
struct Case {
    client_blob: usize,
    server_blob: usize,
    client_recv_max: Option<usize>,
    server_recv_max: Option<usize>,
    client_send_max: Option<usize>,
    server_send_max: Option<usize>,
    /// Sets the transports' limits to 64 MiB both ways on both sides.
    wide_transport: bool,
    expected: Option<Code>,
}

async fn run(case: Case) -> Result<(), Status> {
    let mut service = Test1Server::new(Test1Svc {
        blob: Some(case.server_blob),
    });
    if let Some(max) = case.server_recv_max {
        service = service.max_decoding_message_size(max);
    }
    if let Some(max) = case.server_send_max {
        service = service.max_encoding_message_size(max);
    }
    let mut builder = Server::builder();
    if case.wide_transport {
        builder = builder
            .max_decoding_message_size(64 * MIB)
            .max_encoding_message_size(64 * MIB);
    }
    let server = serve(builder.add_service(service));
    let wide = case.wide_transport;
    let channel = channel_with(server.addr, |endpoint| {
        if wide {
            endpoint
                .max_decoding_message_size(64 * MIB)
                .max_encoding_message_size(64 * MIB)
        } else {
            endpoint
        }
    })
    .await;
    let mut client = Test1Client::new(channel);
    if let Some(max) = case.client_recv_max {
        client = client.max_decoding_message_size(max);
    }
    if let Some(max) = case.client_send_max {
        client = client.max_encoding_message_size(max);
    }
    let request = Input1 {
        buf: vec![0; case.client_blob].into(),
    };
    let result = bounded("call", client.unary_call(request))
        .await
        .map(|_| ());
    if case.server_blob == 0 {
        // Whatever the call's fate, the connection serves on (an empty answer back).
        bounded("after", client.unary_call(Input1::default()))
            .await
            .expect("the connection serves on");
    }
    server.stop().await;
    result
}

#[track_caller]
fn check(case: Case, result: Result<(), Status>) {
    match (case.expected, result) {
        (None, Ok(())) => {}
        (None, Err(status)) => panic!("{case:?}: expected success, got {status:?}"),
        (Some(_), Ok(())) => panic!("{case:?}: expected failure, got success"),
        (Some(code), Err(status)) => {
            assert_eq!(status.code(), code, "{case:?}: {status:?}")
        }
    }
}

async fn assert_cases(cases: &[Case]) {
    for &case in cases {
        check(case, run(case).await);
    }
}

/// The limit is on the encoded message: `encoded` bytes.
fn server_recv(encoded: usize, expected: Option<Code>) -> Case {
    Case {
        client_blob: blob_for(encoded),
        expected,
        ..Case::default()
    }
}

fn client_recv(encoded: usize, expected: Option<Code>) -> Case {
    Case {
        server_blob: blob_for(encoded),
        expected,
        ..Case::default()
    }
}

const OVER: Option<Code> = Some(Code::ResourceExhausted);

#[tokio::test]
async fn max_message_recv_size_default() {
    // The default 4 MiB on both sides (a default client also sends at most 4 MiB: its own
    // send limit refuses before the server sees the request).
    assert_cases(&[
        server_recv(128, None),
        server_recv(4 * MIB, None),
        server_recv(4 * MIB + 1, OVER),
        server_recv(8 * MIB, OVER),
        client_recv(128, None),
        client_recv(4 * MIB, None),
        client_recv(4 * MIB + 1, OVER),
        client_recv(8 * MIB, OVER),
    ])
    .await;
}

#[tokio::test]
async fn max_message_recv_size_custom() {
    assert_cases(&[
        Case {
            server_blob: blob_for(1024),
            client_recv_max: Some(1024),
            ..Case::default()
        },
        Case {
            server_blob: blob_for(1025),
            client_recv_max: Some(1024),
            expected: OVER,
            ..Case::default()
        },
        Case {
            client_blob: blob_for(1024),
            server_recv_max: Some(1024),
            ..Case::default()
        },
        Case {
            client_blob: blob_for(1025),
            server_recv_max: Some(1024),
            expected: OVER,
            ..Case::default()
        },
    ])
    .await;
}

#[tokio::test]
async fn max_message_send_size() {
    assert_cases(&[
        // The client sends 4 MiB to a server that takes any size.
        Case {
            client_blob: 4 * MIB,
            server_recv_max: Some(usize::MAX),
            wide_transport: true,
            ..Case::default()
        },
        // The client's own send limit: at it, and over it.
        Case {
            client_blob: blob_for(1024),
            client_send_max: Some(1024),
            ..Case::default()
        },
        Case {
            client_blob: 4 * MIB,
            server_recv_max: Some(usize::MAX),
            client_send_max: Some(1024),
            wide_transport: true,
            expected: OVER,
            ..Case::default()
        },
        // The server sends 4 MiB to a client that takes any size.
        Case {
            server_blob: 4 * MIB,
            client_recv_max: Some(usize::MAX),
            wide_transport: true,
            ..Case::default()
        },
        // The server's own send limit: at it, and over it.
        Case {
            server_blob: blob_for(1024),
            server_send_max: Some(1024),
            ..Case::default()
        },
        Case {
            server_blob: 4 * MIB,
            client_recv_max: Some(usize::MAX),
            server_send_max: Some(1024),
            wide_transport: true,
            expected: OVER,
            ..Case::default()
        },
    ])
    .await;
}

#[tokio::test]
async fn response_stream_limit() {
    // Two messages of 6,877,902 bytes each, streamed to a client whose limit is just enough
    // (the server's transport opened as well: its default send limit is 4 MiB).
    const BLOB: usize = 6_877_902;
    let limit = Output1 {
        buf: vec![0; BLOB].into(),
    }
    .encoded_len();
    let server = serve(
        Server::builder()
            .max_encoding_message_size(limit)
            .add_service(Test1Server::new(Test1Svc { blob: Some(BLOB) })),
    );
    let channel = channel_with(server.addr, |e| e.max_decoding_message_size(limit)).await;
    let mut client = Test1Client::new(channel).max_decoding_message_size(limit);
    let mut stream = bounded(
        "open",
        client.stream_call(Input1 {
            buf: vec![0].into(),
        }),
    )
    .await
    .expect("opens")
    .into_inner();
    let mut count = 0;
    while let Some(message) = bounded("message", stream.message())
        .await
        .expect("within the limit")
    {
        assert_eq!(message.buf.len(), BLOB);
        count += 1;
    }
    assert_eq!(count, 2);
    server.stop().await;
}
