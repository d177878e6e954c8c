//! `cancel_after_begin` and `cancel_after_first_response` (re-exported from
//! [`client`](crate::client)); how a dropped call is asserted to have been cancelled is described
//! on [`cancel_after_begin`].

use crate::client::{
    check_payload, failed, next_response, parameters, request_channel, within, zeros, Client,
};
use crate::pb::{StreamingInputCallRequest, StreamingOutputCallRequest};
use sockrpc::Response;
use std::time::Duration;
use tokio::sync::mpsc;

/// `cancel_after_begin`: a StreamingInputCall is started (its OPEN frame, sockrpc's HTTP/2
/// HEADERS, is on the connection) and cancelled before any request message is sent.
///
/// A sockrpc client cancels a call by dropping it: the transport then sends CANCEL(call id),
/// which replaces HTTP/2's `RST_STREAM(CANCEL)`, and the server drops the handler. The dropped
/// call has no status object left to inspect, so "completed with status CANCELLED" is asserted
/// as: the call did not complete with any other outcome before the cancel, and afterwards the
/// framework ended it — it dropped the request stream it was feeding from and no call remains in
/// flight on the channel. (In-process tests also check that the server saw the cancellation,
/// with [`ServerEvents`](crate::ServerEvents).)
pub async fn cancel_after_begin(client: &mut Client) -> Result<(), String> {
    let before = calls_in_flight(client);
    let (sender, requests) = request_channel::<StreamingInputCallRequest>();
    let mut caller = client.clone();
    {
        let call = caller.streaming_input_call(requests);
        tokio::pin!(call);
        tokio::select! {
            biased;
            result = &mut call => {
                return Err(format!(
                    "StreamingInputCall completed before it was cancelled: {:?}",
                    result.map(Response::into_inner)
                ));
            }
            opened = wait_until("the call to be open", || calls_in_flight(client) > before) => opened?,
        }
        // Leaving this block drops the call: CANCEL goes out.
    }
    ended_by_cancel("StreamingInputCall", client, before, sender).await
}

/// `cancel_after_first_response`: a FullDuplexCall sends one request (27182 bytes, asking for
/// 31415), receives the response, then cancels by dropping the call (CANCEL, sockrpc's
/// `RST_STREAM(CANCEL)`); asserted as in [`cancel_after_begin`].
pub async fn cancel_after_first_response(client: &mut Client) -> Result<(), String> {
    let before = calls_in_flight(client);
    let (sender, requests) = request_channel();
    sender
        .send(StreamingOutputCallRequest {
            response_parameters: vec![parameters(31_415)],
            payload: Some(zeros(27_182)),
            ..Default::default()
        })
        .await
        .map_err(|_| "FullDuplexCall: the request stream was dropped before the call started")?;
    let response = within("FullDuplexCall", client.full_duplex_call(requests))
        .await?
        .map_err(|s| failed("FullDuplexCall", &s))?;
    let mut responses = response.into_inner();
    let first = next_response("FullDuplexCall response 1", &mut responses).await?;
    check_payload("FullDuplexCall response 1", first.payload.as_ref(), 31_415)?;
    drop(responses); // cancel: CANCEL goes out
    ended_by_cancel("FullDuplexCall", client, before, sender).await
}

/// Calls in flight on every connection of the client's channel.
fn calls_in_flight(client: &Client) -> usize {
    client
        .clone()
        .into_inner()
        .connections()
        .iter()
        .map(|c| c.in_flight())
        .sum()
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) -> Result<(), String> {
    within(&format!("waiting for {what}"), async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
}

/// After a call was dropped: the framework stops feeding it (drops the request stream) and
/// forgets it (no more calls in flight than before it began).
async fn ended_by_cancel<T>(
    what: &str,
    client: &Client,
    before: usize,
    sender: mpsc::Sender<T>,
) -> Result<(), String> {
    within(
        &format!("{what}: the cancelled call to drop its request stream"),
        sender.closed(),
    )
    .await?;
    wait_until(&format!("{what} to leave the connection"), || {
        calls_in_flight(client) <= before
    })
    .await
}
