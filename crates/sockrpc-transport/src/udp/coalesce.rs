//! `Coalescer`: a UDP client's requests from calls that send at the same moment leave in one
//! segmented send.
//!
//! ```text
//!  a call sends, others in flight ─▶ queue its datagram; the first since the last flush leads:
//!  leader ─▶ yield (every other call the runtime has ready runs, and queues its own) ─▶ flush:
//!            one sendmsg(UDP_SEGMENT) per run of same-size datagrams (`outbox.rs`)
//!  a call alone ─▶ sends at once: nothing waits for company
//! ```
//!
//! With many calls in flight, answers come in bundles (the server's own segmented sends), the
//! calls they finish start their next ones together, and those requests reach the server as one
//! bundle in turn: a system call and a trip through the kernel per bundle, not per call.
//!
//! A leader whose call is dropped while it yields sends what is queued on the spot, without
//! waiting, so no queued request depends on a call that is gone.

use super::outbox::Outbox;
use super::socket::BatchSocket;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The requests waiting for their leader's flush.
#[derive(Default)]
pub(super) struct Coalescer {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    queue: Outbox,
    /// A leader is on its way to flush `queue`.
    leading: bool,
}

impl Coalescer {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `datagram` for `to`; `true`: the caller leads, and must [`flush`](Self::flush).
    pub(super) fn queue(&self, to: SocketAddr, datagram: &[u8]) -> bool {
        let mut state = self.state();
        state
            .queue
            .push(to, None, |out| out.extend_from_slice(datagram));
        !std::mem::replace(&mut state.leading, true)
    }

    /// The leader's part: lets the other ready calls queue theirs, then sends them all.
    pub(super) async fn flush(&self, socket: &BatchSocket) {
        let mut lead = Lead {
            coalescer: self,
            socket,
            taken: false,
        };
        tokio::task::yield_now().await;
        let mut queue = lead.take();
        queue.flush(socket).await;
        // The emptied buffer goes back for the next batch, unless one started meanwhile.
        let mut state = self.state();
        if state.queue.is_empty() {
            state.queue = queue;
        }
    }
}

/// A leader on its way: if dropped before it took the queue, it sends the queue on the spot.
struct Lead<'a> {
    coalescer: &'a Coalescer,
    socket: &'a BatchSocket,
    taken: bool,
}

impl Lead<'_> {
    /// Ends the lead: the queue, for this leader to send; the next call to queue leads anew.
    fn take(&mut self) -> Outbox {
        self.taken = true;
        let mut state = self.coalescer.state();
        state.leading = false;
        std::mem::take(&mut state.queue)
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        if !self.taken {
            let mut queue = self.take();
            queue.try_flush(self.socket);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::time::Duration;
    use tokio::net::UdpSocket;

    async fn pair() -> (BatchSocket, UdpSocket, SocketAddr) {
        let to = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let from = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = to.local_addr().expect("addr");
        (BatchSocket::new(from).expect("batch"), to, addr)
    }

    async fn recv(socket: &UdpSocket) -> Vec<u8> {
        let mut buf = vec![0; 2048];
        let n = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buf))
            .await
            .expect("a datagram within 5 s")
            .expect("recv");
        buf.truncate(n);
        buf
    }

    #[tokio::test]
    async fn the_first_to_queue_leads_and_its_flush_sends_every_queued_datagram() {
        let (socket, receiver, to) = pair().await;
        let coalescer = Coalescer::default();
        assert!(coalescer.queue(to, b"one"));
        assert!(!coalescer.queue(to, b"two"));
        assert!(!coalescer.queue(to, b"three"));
        coalescer.flush(&socket).await;
        for want in [&b"one"[..], b"two", b"three"] {
            assert_eq!(recv(&receiver).await, want);
        }
        // The lead ended with the flush: the next call to queue leads.
        assert!(coalescer.queue(to, b"four"));
        coalescer.flush(&socket).await;
        assert_eq!(recv(&receiver).await, b"four");
    }

    #[tokio::test]
    async fn a_leader_dropped_while_it_yields_sends_the_queue_on_the_spot() {
        let (socket, receiver, to) = pair().await;
        let coalescer = Coalescer::default();
        assert!(coalescer.queue(to, b"leader"));
        assert!(!coalescer.queue(to, b"follower"));
        {
            let mut flush = std::pin::pin!(coalescer.flush(&socket));
            // Polled once: it yields, as it does to let other calls queue.
            let polled = std::future::poll_fn(|cx| std::task::Poll::Ready(flush.as_mut().poll(cx)));
            assert!(polled.await.is_pending());
        }
        assert_eq!(recv(&receiver).await, b"leader");
        assert_eq!(recv(&receiver).await, b"follower");
        assert!(coalescer.queue(to, b"next"), "the dropped lead ended");
    }
}
