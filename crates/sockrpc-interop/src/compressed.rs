//! The interop cases that compress (gzip): `client_compressed_unary`,
//! `server_compressed_unary`, `client_compressed_streaming` and `server_compressed_streaming`.
//!
//! Whether a message was compressed is its MESSAGE frame's `FLAG_COMPRESSED`, gRPC's
//! compressed-flag byte: the server checks it of each request against `expect_compressed`, the
//! client of each answer (`Response::message_compressed`, `Streaming::last_message_compressed`)
//! against what it asked for. A sockrpc client compresses only toward a server that said it
//! accepts the encoding, which an answer's HEADERS say: each client case first makes one
//! `EmptyCall` to learn it, and turns compression off for a message with a
//! [`CompressionSwitch`].

use crate::client::{check_payload, failed, large_request, parameters, within, zeros, Client};
use crate::pb::{BoolValue, Empty, StreamingInputCallRequest, StreamingOutputCallRequest};
use futures_util::stream;
use sockrpc::{Code, CompressionEncoding, CompressionSwitch, Request, Status};

fn flag(value: bool) -> Option<BoolValue> {
    Some(BoolValue { value })
}

/// `what` must have failed `INVALID_ARGUMENT`: the server's answer to the feature probe (a
/// plain message that says it expects to arrive compressed).
fn probe_refused<T: std::fmt::Debug>(what: &str, result: Result<T, Status>) -> Result<(), String> {
    match result {
        Err(status) if status.code() == Code::InvalidArgument => Ok(()),
        other => Err(format!(
            "{what}: the feature probe expected INVALID_ARGUMENT, got {other:?}"
        )),
    }
}

/// A client of the same channel that sends gzip once it has learned, from an `EmptyCall`'s
/// answer, that the server accepts it.
async fn gzip_client(client: &Client) -> Result<Client, String> {
    let mut gzip = client.clone().send_compressed(CompressionEncoding::Gzip);
    within("EmptyCall", gzip.empty_call(Empty {}))
        .await?
        .map_err(|s| failed("EmptyCall", &s))?;
    Ok(gzip)
}

/// `client_compressed_unary`: the probe (a plain request expecting compression) fails
/// `INVALID_ARGUMENT`; a compressed request expecting compression, and a plain one not
/// expecting it, both get their 314159-byte answer.
pub async fn client_compressed_unary(client: &mut Client) -> Result<(), String> {
    let expecting = || {
        let mut request = large_request();
        request.expect_compressed = flag(true);
        request
    };
    let probe = within("UnaryCall (probe)", client.unary_call(expecting())).await?;
    probe_refused("UnaryCall (probe)", probe)?;
    let mut gzip = gzip_client(client).await?;
    let response = within("UnaryCall (compressed)", gzip.unary_call(expecting()))
        .await?
        .map_err(|s| failed("UnaryCall (compressed)", &s))?;
    check_payload(
        "UnaryCall (compressed)",
        response.get_ref().payload.as_ref(),
        314_159,
    )?;
    let mut plain = large_request();
    plain.expect_compressed = flag(false);
    let mut plain = Request::new(plain);
    let off = CompressionSwitch::new();
    off.set(false);
    plain.extensions_mut().insert(off);
    let response = within("UnaryCall (uncompressed)", gzip.unary_call(plain))
        .await?
        .map_err(|s| failed("UnaryCall (uncompressed)", &s))?;
    check_payload(
        "UnaryCall (uncompressed)",
        response.get_ref().payload.as_ref(),
        314_159,
    )
}

/// `server_compressed_unary`: asked for a compressed answer, the answer's message carries the
/// compressed flag; asked for a plain one, it does not; both are 314159 bytes.
pub async fn server_compressed_unary(client: &mut Client) -> Result<(), String> {
    let mut client = client.clone().accept_compressed(CompressionEncoding::Gzip);
    for wanted in [true, false] {
        let what = format!("UnaryCall (response_compressed {wanted})");
        let mut request = large_request();
        request.response_compressed = flag(wanted);
        let response = within(&what, client.unary_call(request))
            .await?
            .map_err(|s| failed(&what, &s))?;
        if response.message_compressed() != wanted {
            return Err(format!(
                "{what}: the answer's compressed flag is {}",
                response.message_compressed()
            ));
        }
        check_payload(&what, response.get_ref().payload.as_ref(), 314_159)?;
    }
    Ok(())
}

/// `client_compressed_streaming`: the probe (a plain first message expecting compression)
/// fails `INVALID_ARGUMENT`; then a compressed 27182-byte message expecting compression and a
/// plain 45904-byte one not expecting it add up to 73086.
pub async fn client_compressed_streaming(client: &mut Client) -> Result<(), String> {
    fn message(size: usize, expect: bool) -> StreamingInputCallRequest {
        StreamingInputCallRequest {
            payload: Some(zeros(size)),
            expect_compressed: flag(expect),
        }
    }
    let probe = stream::iter([message(27_182, true)]);
    let probe = within(
        "StreamingInputCall (probe)",
        client.streaming_input_call(probe),
    )
    .await?;
    probe_refused("StreamingInputCall (probe)", probe)?;
    let mut gzip = gzip_client(client).await?;
    let switch = CompressionSwitch::new();
    // The switch stands as each message is taken: on for the first, off for the second.
    let messages = stream::unfold((0, switch.clone()), |(sent, switch)| async move {
        let next = match sent {
            0 => message(27_182, true),
            1 => message(45_904, false),
            _ => return None,
        };
        switch.set(sent == 0);
        Some((next, (sent + 1, switch)))
    });
    let mut request = Request::new(messages);
    request.extensions_mut().insert(switch);
    let what = "StreamingInputCall (compressed, then not)";
    let response = within(what, gzip.streaming_input_call(request))
        .await?
        .map_err(|s| failed(what, &s))?;
    let size = response.get_ref().aggregated_payload_size;
    if size != 73_086 {
        return Err(format!(
            "{what}: aggregated_payload_size {size}, expected 73086"
        ));
    }
    Ok(())
}

/// `server_compressed_streaming`: two answers, 31415 bytes compressed then 92653 bytes plain,
/// each with the compressed flag it asked for; the call ends OK.
pub async fn server_compressed_streaming(client: &mut Client) -> Result<(), String> {
    let mut client = client.clone().accept_compressed(CompressionEncoding::Gzip);
    let asked = [(31_415, true), (92_653, false)];
    let request = StreamingOutputCallRequest {
        response_parameters: asked
            .iter()
            .map(|&(size, compressed)| {
                let mut p = parameters(size);
                p.compressed = flag(compressed);
                p
            })
            .collect(),
        ..Default::default()
    };
    let what = "StreamingOutputCall";
    let mut responses = within(what, client.streaming_output_call(request))
        .await?
        .map_err(|s| failed(what, &s))?
        .into_inner();
    for (i, &(size, compressed)) in asked.iter().enumerate() {
        let what = format!("StreamingOutputCall response {i}");
        let response = match within(&what, responses.message()).await? {
            Ok(Some(response)) => response,
            Ok(None) => return Err(format!("{what}: the stream ended OK without it")),
            Err(status) => return Err(failed(&what, &status)),
        };
        if responses.last_message_compressed() != compressed {
            return Err(format!(
                "{what}: compressed flag {}, expected {compressed}",
                responses.last_message_compressed()
            ));
        }
        check_payload(&what, response.payload.as_ref(), size)?;
    }
    match within(what, responses.message()).await? {
        Ok(None) => Ok(()),
        Ok(Some(_)) => Err(format!("{what}: more than two responses")),
        Err(status) => Err(failed(what, &status)),
    }
}
