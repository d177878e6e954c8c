//! The client's receive path: every datagram from the server, handed to the call it answers.
//!
//! ```text
//!  receive task: recv ─▶ on_datagram ─▶ pending[call id] ─▶ the caller wakes
//!  a caller whose timer fired: catch_up ─▶ try_recv until empty ─▶ on_datagram
//!                                          └ its own answer came after all? no retransmission
//! ```
//!
//! One task reads the socket for every call in flight. When that task falls behind (this
//! process was not scheduled, or the task is queued behind callers whose timers fired at the same
//! tick), answers wait in the socket's buffer while their calls' timers fire: a caller then reads
//! the socket itself before it retransmits, so a late answer already here is taken as an answer,
//! not as a loss (no retransmission, no loss counted toward fallback, and an RTT sample that
//! says how late it was).

use super::bump;
use super::client::lock;
use super::client::Shared;
use super::datagram::{
    self, Header, Kind, COOKIE_LEN, FLAG_ACKS, FLAG_FITS, FLAG_STALE_COOKIE, HEADER_LEN,
};
use bytes::Bytes;
use sockrpc_protocol::{Response, Status};
use std::{sync::atomic::Ordering, sync::Arc, time::Duration};

/// What the receive path hands a waiting call.
pub(super) enum Incoming {
    /// The server's answer.
    Reply(Result<Response<Bytes>, Status>),
    /// The answer did not come in a datagram; `fits`: it would have, with a cookie.
    Truncated { fits: bool },
}

/// Largest datagram read: any UDP datagram, so an oversized one is read whole and refused, never
/// cut and misread.
const MAX_READ: usize = 65536;

/// Most datagrams one catch-up reads: what a socket buffer holds of small datagrams, several
/// times over; past it the receive task reads on.
const MAX_CATCH_UP: usize = 1024;

impl Shared {
    /// Reads and hands out, without waiting, what is in the socket's buffer now (at most
    /// [`MAX_CATCH_UP`] datagrams): what a caller does before it retransmits.
    pub(super) fn catch_up(&self) {
        let mut buf = vec![0u8; MAX_READ];
        for _ in 0..MAX_CATCH_UP {
            match self.socket.try_recv(&mut buf) {
                Ok(n) => self.on_datagram(&buf[..n]),
                // WouldBlock (empty), or an error the receive task also sees and waits out.
                Err(_) => return,
            }
        }
    }

    /// Handles one datagram from the server; anything unexpected is counted and dropped.
    pub(super) fn on_datagram(&self, datagram: &[u8]) {
        let header = match Header::parse(datagram) {
            Ok(h) if h.kind.is_from_server() && h.client_instance == self.instance => h,
            _ => {
                bump(&self.stats.malformed);
                return;
            }
        };
        let incoming = match header.kind {
            Kind::Reply => {
                let body = Bytes::copy_from_slice(&datagram[HEADER_LEN..]);
                match datagram::parse_reply(body, &self.config.limits) {
                    Ok(answer) => Some(Incoming::Reply(answer)),
                    Err(_) => {
                        bump(&self.stats.malformed);
                        return;
                    }
                }
            }
            Kind::Truncated => Some(Incoming::Truncated {
                fits: header.flags & FLAG_FITS != 0,
            }),
            _ => None,
        };
        // A well-formed answer: the path works, and its header holds our current cookie.
        self.losses.store(0, Ordering::Relaxed);
        if header.flags & FLAG_ACKS != 0 {
            self.acks.store(true, Ordering::Relaxed);
        }
        if header.cookie != [0; COOKIE_LEN] {
            let changed = self.cookie.send_if_modified(|cookie| {
                let changed = *cookie != Some(header.cookie);
                *cookie = Some(header.cookie);
                changed
            });
            if changed && header.flags & FLAG_STALE_COOKIE != 0 && header.kind != Kind::Cookie {
                bump(&self.stats.cookie_refreshes);
            }
        }
        let Some(incoming) = incoming else { return };
        let delivered = lock(&self.pending)
            .remove(&header.call_id)
            .is_some_and(|tx| tx.send(incoming).is_ok());
        if !delivered {
            bump(&self.stats.duplicates);
        }
    }
}

/// The receive task: reads every datagram and hands answers to their calls.
pub(super) async fn receive(shared: Arc<Shared>) {
    let mut buf = vec![0u8; MAX_READ];
    loop {
        match shared.socket.recv(&mut buf).await {
            Ok(n) => shared.on_datagram(&buf[..n]),
            Err(err) => {
                // ECONNREFUSED (ICMP port unreachable) and the like: calls see it as loss.
                tracing::trace!(error = %err, "udp recv failed");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{UdpClient, UdpClientConfig, UdpOutcome};
    use super::*;
    use bytes::BytesMut;
    use sockrpc_protocol::{MethodPath, Request};
    use tokio::net::UdpSocket;

    /// A server by hand: a COOKIE for each COOKIE_REQUEST, a REPLY for each REQUEST; returns
    /// how many REQUESTs came once `stop` fires.
    async fn hand_server(socket: UdpSocket, stop: tokio::sync::oneshot::Receiver<()>) -> usize {
        let mut requests = 0;
        let mut buf = vec![0u8; MAX_READ];
        tokio::pin!(stop);
        loop {
            let (n, from) = tokio::select! {
                _ = &mut stop => return requests,
                got = socket.recv_from(&mut buf) => match got {
                    Ok(got) => got,
                    Err(_) => continue,
                },
            };
            let Ok(header) = Header::parse(&buf[..n]) else {
                continue;
            };
            let mut reply = Header {
                kind: Kind::Cookie,
                flags: FLAG_ACKS,
                client_instance: header.client_instance,
                call_id: header.call_id,
                cookie: [7; COOKIE_LEN],
            };
            let mut out = BytesMut::new();
            match header.kind {
                Kind::CookieRequest => datagram::encode_header_only(&mut out, &reply),
                Kind::Request => {
                    requests += 1;
                    reply.kind = Kind::Reply;
                    let answer = Ok(Response::new(Bytes::from_static(b"pong")));
                    datagram::encode_reply(&mut out, &reply, &answer);
                }
                _ => continue,
            }
            let _ = socket.send_to(&out, from).await;
        }
    }

    #[tokio::test]
    async fn an_answer_waiting_in_the_socket_is_taken_before_retransmitting() {
        let server = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = server.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(hand_server(server, stopped));
        let mut config = UdpClientConfig::default();
        config.initial_rto = Duration::from_millis(20);
        config.min_rto = Duration::from_millis(20);
        let client = UdpClient::connect(addr, config).await.expect("connect");
        // The receive task never runs: every answer waits in the socket's buffer, as when it
        // falls behind. Only a caller reading before it retransmits can see them.
        client.stop_receiving();
        let path = MethodPath::from_static("/t.T/M");
        let request = Request::new(Bytes::from_static(b"ping"));
        for _ in 0..3 {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            match client.call(&path, &request, Some(deadline)).await {
                UdpOutcome::Reply(Ok(answer)) => assert_eq!(answer.get_ref().as_ref(), b"pong"),
                other => panic!("expected the answer, got {other:?}"),
            }
        }
        let stats = client.stats();
        assert_eq!(stats.retransmits, 0, "{stats:?}");
        assert_eq!(stats.replies, 3, "{stats:?}");
        let _ = stop.send(());
        assert_eq!(server.await.expect("server"), 3, "each call sent once");
    }
}
