//! Glue between a `Call` and a typed handler: decode, run, encode.

use crate::Call;
use bytes::Bytes;
use sockrpc_protocol::codec::{encode_to_bytes, Codec};
use sockrpc_protocol::{Request, Response, Status};
use std::future::Future;

/// Runs a unary handler on a call: decodes the request with `codec`, awaits `handler`, encodes
/// its response. Generated servers call this once per rpc.
pub async fn unary_handler<Req, Resp, C, F, Fut>(
    call: Call,
    codec: C,
    handler: F,
) -> Result<Response<Bytes>, Status>
where
    C: Codec<Req> + Codec<Resp>,
    F: FnOnce(Request<Req>) -> Fut,
    Fut: Future<Output = Result<Response<Resp>, Status>>,
{
    let (_, request) = call.into_parts();
    let remote = request.remote_addr();
    let (metadata, body, timeout) = request.into_parts();
    let message = Codec::<Req>::decode(&codec, body)?;
    let mut request = Request::from_parts(metadata, message, timeout);
    request.set_remote_addr(remote);
    let response = handler(request).await?;
    let (metadata, message, trailers) = response.into_parts();
    let body = encode_to_bytes(&codec, &message)?;
    Ok(Response::from_parts(metadata, body, trailers))
}
