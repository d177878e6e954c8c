//! Glue between a `Call` and a typed handler, one function per call shape: decode the
//! request, run the handler, encode the answer.

use crate::streaming::{EncodeResultStream, Streaming};
use crate::{Body, Call};
use bytes::Bytes;
use futures_core::Stream;
use sockrpc_protocol::codec::{encode_to_bytes, Codec};
use sockrpc_protocol::{Request, RequestCharge, Response, Status};
use std::future::Future;

async fn single_request<Req, C: Codec<Req>>(call: Call, codec: &C) -> Result<Request<Req>, Status> {
    let (head, mut body) = call.into_parts().1.split_message();
    let message = body.take_single().await?;
    let message = decoded(&head, message, body.last_message_compressed())?;
    let message = codec.decode(message)?;
    Ok(head.map(|()| message))
}

/// A request message as its body gave it (decompressed when it came `compressed`), counted
/// against its connection's budget of running requests when the transport asked for that (a
/// `RequestCharge` in the extensions of a compressed unary request, or of a stream whose OPEN
/// named an encoding): its handler holds it decompressed, far more than its wire size the
/// transport counted. One that came plain counts nothing here, as a stream's plain message
/// does (`Streaming`): a client opening a unary method as a stream names an encoding and may
/// still send it plain, and was charged its size beside what the transport counted.
fn decoded(head: &Request<()>, message: Bytes, compressed: bool) -> Result<Bytes, Status> {
    if compressed {
        if let Some(charge) = head.extensions().get::<RequestCharge>() {
            charge.add(message.len())?;
        }
    }
    Ok(message)
}

/// A streamed request, decoded, whose compressed messages count what they decompress to when
/// the transport asked for that (a `RequestCharge` in the request's extensions; see
/// [`Streaming::charged`]).
fn streaming_request<Req, C: Codec<Req>>(call: Call, codec: C) -> Request<Streaming<Req>> {
    let (_, request) = call.into_parts();
    let charge = request.extensions().get::<RequestCharge>().cloned();
    request.map(|body| Streaming::new(body, codec).charged(charge))
}

fn once<Resp, C: Codec<Resp>>(
    response: Response<Resp>,
    codec: &C,
) -> Result<Response<Body>, Status> {
    let body = encode_to_bytes(codec, response.get_ref())?;
    // `map` keeps the handler's extensions, for the server's tower layers to read.
    Ok(answer_of(response.map(|_| Body::once(body))))
}

/// A handler's answer as this server sends it: the encoding fields of its HEADERS are this
/// server's to set. An answer a handler got from another server (a proxy's) carries that
/// server's, which would tell this server's client to compress what this one cannot read.
fn answer_of(mut response: Response<Body>) -> Response<Body> {
    response.set_encoding(None);
    response
}

fn streamed<St, Resp, C>(response: Response<St>, codec: C) -> Response<Body>
where
    St: Stream<Item = Result<Resp, Status>> + Send + 'static,
    C: Codec<Resp>,
{
    answer_of(response.map(|stream| Body::from_stream(EncodeResultStream::new(stream, codec))))
}

/// Runs a unary handler: one request message in, one response message out.
///
/// The request message nearly always arrived whole with the call; it is decoded before the
/// future is built, so the future holds the decoded request rather than the call it came in
/// (a smaller future, moved and boxed for every call).
pub fn unary_handler<Req, Resp, C, F, Fut>(
    call: Call,
    codec: C,
    handler: F,
) -> impl Future<Output = Result<Response<Body>, Status>>
where
    C: Codec<Req> + Codec<Resp>,
    F: FnOnce(Request<Req>) -> Fut,
    Fut: Future<Output = Result<Response<Resp>, Status>>,
{
    let (head, body) = call.into_parts().1.split_message();
    let early = match body.into_once() {
        Ok(message) => Ok(Codec::<Req>::decode(&codec, message).map(|m| head.map(|()| m))),
        Err(body) => Err((head, body)),
    };
    async move {
        let request = match early {
            Ok(decoded) => decoded?,
            Err((head, mut body)) => {
                let message = body.take_single().await?;
                let message = decoded(&head, message, body.last_message_compressed())?;
                let message = Codec::<Req>::decode(&codec, message)?;
                head.map(|()| message)
            }
        };
        once(handler(request).await?, &codec)
    }
}

/// Runs a server-streaming handler: one request message in, a stream of responses out.
pub async fn server_streaming_handler<Req, Resp, C, F, Fut, St>(
    call: Call,
    codec: C,
    handler: F,
) -> Result<Response<Body>, Status>
where
    C: Codec<Req> + Codec<Resp>,
    F: FnOnce(Request<Req>) -> Fut,
    Fut: Future<Output = Result<Response<St>, Status>>,
    St: Stream<Item = Result<Resp, Status>> + Send + 'static,
{
    let request = single_request(call, &codec).await?;
    Ok(streamed(handler(request).await?, codec))
}

/// Runs a client-streaming handler: a stream of requests in, one response out.
pub async fn client_streaming_handler<Req, Resp, C, F, Fut>(
    call: Call,
    codec: C,
    handler: F,
) -> Result<Response<Body>, Status>
where
    C: Codec<Req> + Codec<Resp>,
    F: FnOnce(Request<Streaming<Req>>) -> Fut,
    Fut: Future<Output = Result<Response<Resp>, Status>>,
{
    let request = streaming_request(call, codec.clone());
    once(handler(request).await?, &codec)
}

/// Runs a bidirectional-streaming handler: a stream of requests in, a stream of responses out.
pub async fn streaming_handler<Req, Resp, C, F, Fut, St>(
    call: Call,
    codec: C,
    handler: F,
) -> Result<Response<Body>, Status>
where
    C: Codec<Req> + Codec<Resp>,
    F: FnOnce(Request<Streaming<Req>>) -> Fut,
    Fut: Future<Output = Result<Response<St>, Status>>,
    St: Stream<Item = Result<Resp, Status>> + Send + 'static,
{
    let request = streaming_request(call, codec.clone());
    Ok(streamed(handler(request).await?, codec))
}
