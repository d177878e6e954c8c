//! `Coalescer`: a UDP client's requests from calls that send at the same moment leave in one
//! segmented send.
//!
//! ```text
//!  a call sends, others in flight ─▶ queue its datagram; the first since the last flush wakes
//!  the flush task ─▶ yield (every call the runtime has ready runs, and queues its own) ─▶ flush:
//!                    one sendmsg(UDP_SEGMENT) per run of same-size datagrams (`outbox.rs`)
//!  a call alone ─▶ sends at once: nothing waits for company
//! ```
//!
//! With many calls in flight, answers come in runs (the server's own segmented sends), the calls
//! they finish start their next ones together, and those requests reach the server together in
//! turn: a system call and a trip through the kernel per run, not per call.
//!
//! The sending is a task of the client's own (started on first use, ended when the client is
//! dropped, after it sent what was queued), not one of the calls: a call that queued its request
//! and is then not polled for a while (held in a `select!` while its owner does something else),
//! or dropped, holds up no other call's request. It runs on the client's runtime (the one whose
//! reactor drives its socket, and whose end is the socket's end too), not on whichever runtime
//! the first call came from, which may be one nobody drives any more.

use super::outbox::Outbox;
use super::socket::BatchSocket;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::runtime::Handle;
use tokio::sync::Notify;

/// The requests waiting for the flush task.
#[derive(Default)]
pub(super) struct Coalescer {
    state: Mutex<State>,
    wake: Notify,
}

#[derive(Default)]
struct State {
    queue: Outbox,
    /// The flush task was woken for what is queued.
    scheduled: bool,
    /// The flush task was started.
    started: bool,
    /// The client is gone: the task sends what is queued and ends.
    closed: bool,
}

impl Coalescer {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `datagram` for `to`, to leave on `socket` once the calls the runtime has ready
    /// have queued theirs. Call from within a Tokio runtime: the flush task starts on first use,
    /// on `runtime` (the client's) when given.
    pub(super) fn queue(
        self: &Arc<Self>,
        socket: &Arc<BatchSocket>,
        runtime: Option<&Handle>,
        to: SocketAddr,
        datagram: &[u8],
    ) {
        let (start, wake) = {
            let mut state = self.state();
            state
                .queue
                .push(to, None, |out| out.extend_from_slice(datagram));
            (
                !std::mem::replace(&mut state.started, true),
                !std::mem::replace(&mut state.scheduled, true),
            )
        };
        if start {
            let task = flush_task(Arc::clone(self), Arc::clone(socket));
            match runtime {
                Some(runtime) => drop(runtime.spawn(task)),
                None => drop(tokio::spawn(task)),
            }
        }
        if wake {
            self.wake.notify_one();
        }
    }

    /// The client is gone: what is queued still leaves, then the flush task ends.
    pub(super) fn close(&self) {
        self.state().closed = true;
        self.wake.notify_one();
    }
}

/// Sends what is queued each time it is woken, after the tasks the runtime has ready ran.
async fn flush_task(coalescer: Arc<Coalescer>, socket: Arc<BatchSocket>) {
    let mut spare = Outbox::default();
    loop {
        coalescer.wake.notified().await;
        // Behind every task the runtime has ready: their requests join this send.
        tokio::task::yield_now().await;
        let (mut queue, closed) = {
            let mut state = coalescer.state();
            state.scheduled = false;
            let queue = std::mem::replace(&mut state.queue, std::mem::take(&mut spare));
            (queue, state.closed)
        };
        queue.flush(&socket).await;
        spare = queue;
        if closed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_runtime::runtime;
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
    async fn queued_datagrams_leave_together_without_any_caller_polling() {
        let (socket, receiver, to) = pair().await;
        let socket = Arc::new(socket);
        let coalescer = Arc::new(Coalescer::default());
        // Nobody awaits anything here but the receiver: the flush task sends.
        coalescer.queue(&socket, None, to, b"one");
        coalescer.queue(&socket, None, to, b"two");
        coalescer.queue(&socket, None, to, b"three");
        for want in [&b"one"[..], b"two", b"three"] {
            assert_eq!(recv(&receiver).await, want);
        }
        // And again, after the first flush.
        coalescer.queue(&socket, None, to, b"four");
        assert_eq!(recv(&receiver).await, b"four");
    }

    /// The next datagram on a plain socket, within 5 s.
    fn recv_blocking(socket: &std::net::UdpSocket) -> Option<Vec<u8>> {
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = vec![0; 2048];
        let n = socket.recv(&mut buf).ok()?;
        buf.truncate(n);
        Some(buf)
    }

    #[test]
    fn the_flush_task_runs_on_the_clients_runtime_not_the_first_callers() {
        let home = runtime(1);
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let to = receiver.local_addr().expect("addr");
        let socket = home.block_on(async {
            let from = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
            Arc::new(BatchSocket::new(from).expect("batch"))
        });
        let coalescer = Arc::new(Coalescer::default());
        // Queued from a runtime that nobody drives once this returns.
        let caller = runtime(0);
        caller.block_on(async { coalescer.queue(&socket, Some(home.handle()), to, b"hello") });
        assert_eq!(recv_blocking(&receiver).as_deref(), Some(&b"hello"[..]));
    }

    #[tokio::test]
    async fn a_closed_coalescer_sends_what_is_queued_then_lets_the_socket_go() {
        let (socket, receiver, to) = pair().await;
        let socket = Arc::new(socket);
        let coalescer = Arc::new(Coalescer::default());
        coalescer.queue(&socket, None, to, b"last words");
        coalescer.close();
        assert_eq!(recv(&receiver).await, b"last words");
        // The task ends, dropping its reference to the socket.
        let ended = async {
            while Arc::strong_count(&socket) > 1 {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), ended)
            .await
            .expect("the flush task ends within 5 s");
    }
}
