//! The same protocol error as `compressed_unnamed.rs` — a streamed request's message flagged
//! compressed while the client's OPEN named no encoding, `INTERNAL` — read by the server
//! transport's own reader: a `Dispatch` that takes `RequestBody::Stream` as it is and reads it
//! with `CallReceiver::poll_message`, under no service layer (a proxy, or a server of raw
//! bytes). That reader said `UNIMPLEMENTED` ("no compression negotiated") whether or not an
//! encoding was named, where the service layer and grpc-go ("compressed flag set with identity
//! or empty encoding") say `INTERNAL`. An encoding named stays `UNIMPLEMENTED`: this reader
//! decodes nothing. (The client side's reader was fixed alike: `compressed_unnamed_channel.rs`.)

use crate::compressed_running::ends;
use crate::compressed_unnamed::{gzip_stream, COLLECT_PATH, INTERNAL, UNIMPLEMENTED};
use crate::raw::PREFACE;
use crate::support::{bounded, start_serving};
use bytes::Bytes;
use sockrpc::transport::dispatch::{Dispatch, DispatchFuture, IncomingCall};
use sockrpc::transport::server::serve;
use sockrpc::transport::{RequestBody, ServerConfig};
use sockrpc::{Body, Response, Status};
use std::future::poll_fn;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads each streamed request with the transport's `CallReceiver::poll_message` and ends the
/// call with the first refusal it gives, or OK at the request's end.
#[derive(Clone)]
struct ReadingRaw;

impl Dispatch for ReadingRaw {
    type Body = Body;

    fn dispatch(&mut self, call: IncomingCall) -> DispatchFuture<Body> {
        let (_, body, _) = call.request.into_parts();
        Box::pin(async move {
            let RequestBody::Stream(mut receiver) = body else {
                return Err(Status::failed_precondition("expected a streamed request"));
            };
            // Bounded: the calls here send two messages.
            for _ in 0..8 {
                match poll_fn(|cx| receiver.poll_message(cx)).await {
                    Some(Ok(_)) => {}
                    Some(Err(status)) => return Err(status),
                    None => break,
                }
            }
            Ok(Response::new(Body::once(Bytes::new())))
        })
    }
}

#[tokio::test]
async fn the_servers_stream_reader_refuses_an_unnamed_compressed_request_internal() {
    let server = start_serving(|listener, shutdown| {
        serve(
            listener,
            ReadingRaw,
            ServerConfig::default(),
            None,
            shutdown,
        )
    });
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    // Call 1 names no encoding, call 3 names gzip; each sends a plain message, then one
    // flagged compressed that ends it.
    let calls = [
        gzip_stream(1, COLLECT_PATH, false),
        gzip_stream(3, COLLECT_PATH, true),
    ]
    .concat();
    let bytes = [PREFACE.as_slice(), &calls].concat();
    stream.write_all(&bytes).await.expect("write the calls");
    let mut got = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    bounded("both calls answered", async {
        while ends(&got).len() < 2 {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "the server closed the connection: {:?}", ends(&got));
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    drop(stream);
    server.stop().await;
    let mut codes = ends(&got);
    codes.sort_unstable();
    assert_eq!(
        codes,
        [(1, INTERNAL), (3, UNIMPLEMENTED)],
        "no encoding named: INTERNAL; gzip named, read by a reader that decodes nothing: \
         UNIMPLEMENTED"
    );
}
