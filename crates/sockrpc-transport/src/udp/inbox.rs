//! The client's receive path: every datagram from the server, handed to the call it answers.
//!
//! ```text
//!  a waiting caller: its answer? ─yes─▶ done (the reader's place goes to the next waiter)
//!                    └ the reader's place free? ─▶ take it: recv ─▶ on_datagram ─▶ pending[id] ⟲
//!  a caller whose timer fired: catch_up ─▶ try_recv until empty ─▶ on_datagram
//!                                          └ its own answer came after all? no retransmission
//! ```
//!
//! There is no receive task: the callers waiting for answers read the socket, one at a time
//! (the holder of `reader`, a fair lock, so the next waiter takes over when the reader's answer
//! comes), and hand each answer to its call. A call alone reads its own answer on its own task,
//! and returns without reading the socket again: no wake-up of another task per call, and the
//! read that finds the socket empty comes after the next request has left, not before. With
//! many calls in flight, one reader wakes the others as their answers come, as a receive task
//! did. Datagrams that come while no call waits stay in the socket's buffer until the next
//! call reads them (late duplicates: counted and dropped).
//!
//! When the reader falls behind (this process was not scheduled, or the reader is queued
//! behind callers whose timers fired at the same tick), answers wait in the socket's buffer
//! while their calls' timers fire: a caller then reads the socket itself before it
//! retransmits, so a late answer already here is taken as an answer, not as a loss (no
//! retransmission, no loss counted toward fallback, and an RTT sample that says how late it
//! was).

use super::bump;
use super::client::lock;
use super::client::Shared;
use super::datagram::{
    self, Header, Kind, COOKIE_LEN, FLAG_ACKS, FLAG_FITS, FLAG_FOREIGN_INSTANCE,
    FLAG_NOT_PROCESSED, FLAG_STALE_COOKIE, HEADER_LEN,
};
use super::socket::RecvBatch;
use bytes::Bytes;
use sockrpc_protocol::{Code, Response, Status};
use std::{
    future::Future,
    sync::atomic::Ordering,
    task::{Poll, Waker},
    time::Duration,
};

/// What the receive path hands a waiting call.
pub(super) enum Incoming {
    /// The server's answer.
    Reply(Result<Response<Bytes>, Status>),
    /// The answer did not come in a datagram; `fits`: it would have, with a cookie.
    Truncated { fits: bool },
    /// Not an answer: `max_window` later calls started while this one stayed unanswered, so
    /// its REQUEST or REPLY was most likely lost. Retransmit now rather than at the RTO.
    Hurry,
    /// Not an answer: the call's timer went off (`client/timer.rs`).
    Timeout,
    /// Not an answer: the client's runtime shut down, its socket's reactor with it, so no
    /// answer can be read any more (`client/runtime_gone.rs`).
    Gone,
}

impl Incoming {
    /// Whether this came from the server.
    pub(super) fn is_answer(&self) -> bool {
        matches!(self, Incoming::Reply(_) | Incoming::Truncated { .. })
    }

    /// Which of two things left for one call it acts on: an answer before a timeout (which
    /// retransmits and counts a loss), a timeout before a hurry (which only retransmits: a call
    /// both hurried and timed out backs off, as a timeout alone would); the runtime gone
    /// before all (nothing else can come).
    pub(super) fn rank(&self) -> u8 {
        match self {
            Incoming::Gone => 3,
            Incoming::Reply(_) | Incoming::Truncated { .. } => 2,
            Incoming::Timeout => 1,
            Incoming::Hurry => 0,
        }
    }
}

/// How [`Shared::read_until`] ended.
pub(super) enum Waited<T> {
    /// What was waited for.
    Done(T),
    /// The answer to the reader's own call, read by the reader.
    Mine(Incoming),
}

/// One look at the reader's socket and the caller's own wait.
enum Step<T> {
    /// What the caller waits for came.
    Done(T),
    /// Datagrams were read into the reader's batch (or the read failed).
    Read(std::io::Result<usize>),
}

/// Most reads one catch-up makes: what a socket buffer holds of small datagrams, several times
/// over; past it the reader reads on. (A read is one datagram, or one GRO bundle of several.)
const MAX_CATCH_UP: usize = 1024;

impl Shared {
    /// Waits for `done` (a call's answer slot, or the cookie), reading the socket for every
    /// caller meanwhile whenever no other caller is; the answer to call `mine`, when read here,
    /// is returned as it is (its slot is left alone: the call closes it as it ends).
    pub(super) async fn read_until<F: Future>(
        &self,
        done: F,
        mine: Option<u32>,
    ) -> Waited<F::Output> {
        let done = std::pin::pin!(done);
        let mut done = done;
        loop {
            // The reader's place at once when it is free (no waiter queued: tokio's mutex hands
            // a released place to the first waiter, so this never jumps the queue), else when
            // its turn comes, unless `done` comes first. `fresh`: `done` was looked at in this
            // poll of the task, just before the place was taken.
            let (mut batch, mut fresh) = match self.reader.try_lock() {
                Ok(batch) => (batch, false),
                Err(_) => {
                    let lock = self.reader.lock();
                    let mut lock = std::pin::pin!(lock);
                    let got = std::future::poll_fn(|cx| {
                        if let Poll::Ready(out) = done.as_mut().poll(cx) {
                            return Poll::Ready(Err(out));
                        }
                        lock.as_mut().poll(cx).map(Ok)
                    })
                    .await;
                    match got {
                        Ok(batch) => (batch, true),
                        Err(out) => return Waited::Done(out),
                    }
                }
            };
            // The reader until `done`: then the guard goes, and the next waiter reads. Polled
            // by hand (`poll_recv`, no `recv` future): nothing per wait to build, register and
            // drop, and every call's future is smaller for it.
            //
            // `done` is looked at (a lock, for a call's slot) only when it may have changed: not
            // when it was just polled, in this same poll of the task (`fresh`); a wake-up with
            // datagrams to read looks at the socket first, and a call alone finds its own
            // answer there (`Mine`); a batch for others is followed by a look at `done` before
            // the next read (`look`), so a reader kept busy still sees its own answer or
            // timeout come; an empty socket is followed by one too, which registers the waker
            // for the next wake-up.
            let mut look = false;
            loop {
                let step = std::future::poll_fn(|cx| {
                    let looked = std::mem::take(&mut look);
                    if looked {
                        if let Poll::Ready(out) = done.as_mut().poll(cx) {
                            return Poll::Ready(Step::Done(out));
                        }
                    }
                    if let Poll::Ready(read) = self.socket.poll_recv(cx, &mut batch) {
                        fresh = false;
                        return Poll::Ready(Step::Read(read));
                    }
                    // Not twice in one poll: `done` was looked at above, or just before.
                    if std::mem::take(&mut fresh) || looked {
                        return Poll::Pending;
                    }
                    done.as_mut().poll(cx).map(Step::Done)
                })
                .await;
                match step {
                    Step::Done(out) => return Waited::Done(out),
                    Step::Read(Ok(_)) => {
                        if let Some(incoming) = self.on_batch(&batch, mine) {
                            return Waited::Mine(incoming);
                        }
                        look = true;
                    }
                    Step::Read(Err(err)) => {
                        // ECONNREFUSED (ICMP port unreachable) and the like: calls see it as
                        // loss. Give the place up a moment (below) rather than spin.
                        tracing::trace!(error = %err, "udp recv failed");
                        break;
                    }
                }
            }
            // Only after a failed read. Out of the loop, so that nothing read is held across
            // this wait (it would make every call's future larger). `done` is looked at
            // meanwhile: a read that fails every time (a socket whose runtime shut down, its
            // reactor gone) must not keep the caller from its own timeout and deadline.
            drop(batch);
            let mut pause = Box::pin(tokio::time::sleep(Duration::from_millis(1)));
            let paused = std::future::poll_fn(|cx| {
                if let Poll::Ready(out) = done.as_mut().poll(cx) {
                    return Poll::Ready(Some(out));
                }
                pause.as_mut().poll(cx).map(|()| None)
            })
            .await;
            if let Some(out) = paused {
                return Waited::Done(out);
            }
        }
    }

    /// Reads and hands out, without waiting, what is in the socket's buffer now (at most
    /// [`MAX_CATCH_UP`] datagrams): what a caller does before it retransmits.
    pub(super) fn catch_up(&self) {
        // The reader's buffer when nobody reads, else one of our own.
        let mut own = None;
        let mut reader = self.reader.try_lock().ok();
        let batch = match reader.as_deref_mut() {
            Some(batch) => batch,
            None => own.insert(RecvBatch::new(1)),
        };
        for _ in 0..MAX_CATCH_UP {
            match self.socket.try_recv(batch) {
                Ok(_) => {
                    self.on_batch(batch, None);
                }
                // WouldBlock (empty), or an error the reader also sees and waits out.
                Err(_) => return,
            }
        }
    }

    /// Handles every datagram of one read (several when GRO joined them); the answer to call
    /// `mine`, if among them, is returned once the others have gone to their calls.
    fn on_batch(&self, batch: &RecvBatch, mine: Option<u32>) -> Option<Incoming> {
        let mut own = None;
        for (datagram, _, _) in batch.datagrams() {
            if let Some(incoming) = self.on_datagram(datagram, mine) {
                own = Some(incoming);
            }
        }
        own
    }

    /// Handles one datagram from the server; anything unexpected is counted and dropped.
    /// `mine`: the reader's own call, whose answer is returned instead of sent to its slot (a
    /// send would wake the reader's own task for nothing).
    pub(super) fn on_datagram(&self, datagram: &[u8], mine: Option<u32>) -> Option<Incoming> {
        let header = match Header::parse(datagram) {
            Ok(h) if h.kind.is_from_server() && self.instances.is_ours(h.client_instance) => h,
            _ => {
                bump(&self.stats.malformed);
                return None;
            }
        };
        let incoming = match header.kind {
            Kind::Reply => {
                // Out of the reused receive buffer, into a piece of a shared chunk (no
                // allocation per answer: `sockrpc_protocol::codec::arena`).
                let body = sockrpc_protocol::codec::arena::copy(&datagram[HEADER_LEN..]);
                match datagram::parse_reply(body, &self.config.limits) {
                    Ok(Err(status))
                        if header.flags & FLAG_NOT_PROCESSED != 0
                            && status.code() == Code::Unavailable =>
                    {
                        // Refused unrun (the server's reply cache was full): marked so, the
                        // caller may send it again (a channel does, over TCP).
                        if header.flags & FLAG_FOREIGN_INSTANCE != 0 {
                            // Another address owns this instance on the server.
                            self.on_foreign(header.client_instance);
                        }
                        Some(Incoming::Reply(Err(Status::not_processed(
                            status.message(),
                        ))))
                    }
                    Ok(answer) => Some(Incoming::Reply(answer)),
                    Err(_) => {
                        bump(&self.stats.malformed);
                        return None;
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
        // The cookie seldom changes: a read lock to see that it did not, the write lock only
        // when it did.
        if header.cookie != [0; COOKIE_LEN] && *self.cookie.borrow() != Some(header.cookie) {
            let changed = self.cookie.send_if_modified(|cookie| {
                let changed = *cookie != Some(header.cookie);
                *cookie = Some(header.cookie);
                changed
            });
            if changed && header.flags & FLAG_STALE_COOKIE != 0 && header.kind != Kind::Cookie {
                bump(&self.stats.cookie_refreshes);
            }
        }
        let incoming = incoming?;
        if mine == Some(header.call_id) {
            return Some(incoming);
        }
        let delivered = lock(&self.pending).deliver(header.call_id, incoming);
        match delivered {
            // Woken with the lock released: the call takes its answer under it.
            Ok(waker) => waker.into_iter().for_each(Waker::wake),
            Err(_) => bump(&self.stats.duplicates),
        }
        None
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
        let mut buf = vec![0u8; 65536];
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
        let config = UdpClientConfig {
            initial_rto: Duration::from_millis(20),
            min_rto: Duration::from_millis(20),
            ..UdpClientConfig::default()
        };
        let client = UdpClient::connect(addr, config).await.expect("connect");
        // The reader never runs: every answer waits in the socket's buffer, as when it falls
        // behind. Only a caller reading before it retransmits can see them.
        let stalled = client.stall_reader().await;
        let path = MethodPath::from_static("/t.T/M");
        let request = Request::new(Bytes::from_static(b"ping"));
        for _ in 0..3 {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            match client.call(&path, &request, Some(deadline)).await {
                UdpOutcome::Reply(Ok(answer)) => assert_eq!(answer.get_ref().as_ref(), b"pong"),
                other => panic!("expected the answer, got {other:?}"),
            }
        }
        drop(stalled);
        let stats = client.stats();
        assert_eq!(stats.retransmits, 0, "{stats:?}");
        assert_eq!(stats.replies, 3, "{stats:?}");
        let _ = stop.send(());
        assert_eq!(server.await.expect("server"), 3, "each call sent once");
    }

    /// Answers the cookie exchange, then holds `n` REQUESTs and answers them last first, each
    /// with its call id: every answer but the first comes while its caller is not the reader.
    async fn reverse_server(socket: UdpSocket, n: usize) {
        let mut held = Vec::new();
        let mut buf = vec![0u8; 65536];
        while held.len() < n {
            let Ok((len, from)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            let Ok(mut header) = Header::parse(&buf[..len]) else {
                continue;
            };
            header.flags = FLAG_ACKS;
            header.cookie = [7; COOKIE_LEN];
            match header.kind {
                Kind::CookieRequest => {
                    header.kind = Kind::Cookie;
                    let mut out = BytesMut::new();
                    datagram::encode_header_only(&mut out, &header);
                    let _ = socket.send_to(&out, from).await;
                }
                Kind::Request
                    if !held
                        .iter()
                        .any(|(h, _): &(Header, _)| h.call_id == header.call_id) =>
                {
                    held.push((header, from));
                }
                _ => {}
            }
        }
        while let Some((mut header, from)) = held.pop() {
            header.kind = Kind::Reply;
            let answer = Ok(Response::new(Bytes::from(
                header.call_id.to_be_bytes().to_vec(),
            )));
            let mut out = BytesMut::new();
            datagram::encode_reply(&mut out, &header, &answer);
            let _ = socket.send_to(&out, from).await;
        }
    }

    #[tokio::test]
    async fn the_reader_hands_out_the_others_answers_and_then_its_place() {
        const CALLS: usize = 16;
        let server = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = server.local_addr().expect("addr");
        let server = tokio::spawn(reverse_server(server, CALLS));
        // No retransmission in this test: the server holds the first calls on purpose.
        let config = UdpClientConfig {
            initial_rto: Duration::from_secs(5),
            min_rto: Duration::from_secs(5),
            max_rto: Duration::from_secs(5),
            ..UdpClientConfig::default()
        };
        let client = UdpClient::connect(addr, config).await.expect("connect");
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..CALLS {
            let client = client.clone();
            calls.spawn(async move {
                let path = MethodPath::from_static("/t.T/M");
                let request = Request::new(Bytes::from_static(b"ping"));
                let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
                client.call(&path, &request, Some(deadline)).await
            });
        }
        let mut answered = std::collections::HashSet::new();
        while let Some(outcome) = calls.join_next().await {
            match outcome.expect("call task") {
                UdpOutcome::Reply(Ok(answer)) => {
                    let id: [u8; 4] = answer.get_ref()[..].try_into().expect("an id");
                    assert!(answered.insert(u32::from_be_bytes(id)), "each answer once");
                }
                other => panic!("expected an answer, got {other:?}"),
            }
        }
        assert_eq!(answered.len(), CALLS);
        assert_eq!(client.stats().retransmits, 0);
        server.await.expect("server");
    }
}
