//! `feed`: a streaming call's request stream, sent as the call's window allows. Apart from
//! `channel.rs` because it runs as a task of its own, once the call is open.

use crate::Body;
use sockrpc_protocol::Status;
use sockrpc_transport::StreamSender;
use std::task::Poll;

/// Sends a request stream as the window allows; stops when the call ends either way.
pub(super) async fn feed(mut sender: StreamSender, mut body: Body) {
    loop {
        let next = std::future::poll_fn(|cx| {
            // Also registers to hear of the call's end while the body below waits.
            match sender.poll_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => return Poll::Ready(None),
                Poll::Ready(Ok(())) => {}
            }
            body.poll_wire_refused(cx).map(Some)
        })
        .await;
        match next {
            // The call ended (answered, cancelled, failed): nobody reads more requests.
            None => return,
            Some(None) => {
                sender.close();
                return;
            }
            Some(Some(Ok((message, compressed)))) => {
                // Looked at again as it is charged: a sender on another thread may have spent
                // the window since `poll_ready` (the message then waits here for credit).
                let sent =
                    std::future::poll_fn(|cx| sender.poll_send_flagged(cx, &message, compressed))
                        .await;
                if let Err(status) = sent {
                    sender.cancel_with(status);
                    return;
                }
            }
            // This side would not send the message (over the sending limit): the call ends
            // with that reason, as grpc-go's `SendMsg` ends its stream.
            Some(Some(Err((status, true)))) => {
                sender.cancel_with(status);
                return;
            }
            // The caller's stream failed: the call is cancelled, saying why, with no code of
            // the caller's own (an `UNAVAILABLE` relayed from elsewhere, a quota's
            // `RESOURCE_EXHAUSTED`), which a balancer or retry policy would read as the server's.
            Some(Some(Err((status, false)))) => {
                tracing::debug!(error = %status, "request stream failed; cancelling the call");
                let reason = format!("the request stream failed: {}", status.message());
                sender.cancel_with(Status::cancelled(reason));
                return;
            }
        }
    }
}
