//! `BatchSocket`: a UDP socket read many datagrams per system call and written many datagrams
//! per system call.
//!
//! With many calls in flight on one socket, one `recvfrom` and one `sendto` per datagram cost
//! more than the calls themselves: on loopback each datagram's trip through the kernel and the
//! wake-up of its receiver is most of a call's time. So reads and writes go in batches, through
//! quinn's UDP layer (`quinn-udp`, no unsafe code of ours):
//!
//! ```text
//!  read:  recvmmsg ─▶ up to `slots` datagrams (a wildcard server's socket: with GRO, a message
//!                     may hold several of one size back to back, `stride`, as one send made them)
//!  write: sendmsg(UDP_SEGMENT = len) ─▶ datagrams of one size to one address in one call (GSO):
//!                     the kernel cuts them apart, on loopback only at the receiving socket
//!  alone: on a socket without quinn's options, a read asking for one datagram is a plain
//!         recvfrom; a lone datagram with no source address to name is a plain sendto
//! ```
//!
//! quinn would turn on, for every datagram, a control message with its destination address, its
//! TOS byte and (GRO) its segment size; a call that comes alone pays for each. So a socket keeps
//! its own options ([`BatchSocket::new`]: quinn's view of the platform comes from a scratch
//! socket) unless it needs the destination address, a server bound to a wildcard address
//! answering from the address it was reached at ([`BatchSocket::with_destinations`]).
//!
//! The socket is registered with the runtime for reads only (`crate::readiness`): a UDP socket
//! wakes its `EPOLLOUT` waiters as each datagram it sent is handed on, which cost an
//! `epoll_wait` returning at once and a turn of the runtime per call on each side. Sends go
//! straight to the socket and wait for room only when its buffer is full.
//!
//! Each buffer is 64 KiB: any datagram, or any GRO bundle, is read whole, never cut and misread.
//! A segmented send carries datagrams of at most [`GSO_MAX_SEGMENT`] bytes, what fits any path
//! without fragmentation, so no route's MTU can make the kernel refuse it. Where the kernel has
//! no GSO (or refuses it), datagrams go one per call.

use crate::readiness::ReadRegistered;
use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use std::{
    io::{self, IoSliceMut},
    net::{IpAddr, SocketAddr},
    task::{Context, Poll},
};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Bytes of each receive buffer: any UDP datagram, and any bundle GRO makes.
pub(super) const SLOT: usize = 64 * 1024;

/// Largest datagram sent in a segmented send: what fits the IPv6 minimum MTU (the default
/// `max_datagram` of both ends). Larger ones go one per call.
pub(super) const GSO_MAX_SEGMENT: usize = 1232;

/// Most bytes in one segmented send (the kernel's limit is one IP packet, 64 KiB less headers).
pub(super) const GSO_MAX_BYTES: usize = 60 * 1024;

/// Whether a read that returns fewer messages than it asked for found the queue empty: where
/// quinn reads with `recvmmsg`. Elsewhere (the BSDs but FreeBSD, illumos, Apple) it reads one
/// message per call whatever was asked, so a short read says nothing and readiness is left to
/// a read that finds the socket empty.
const SHORT_READ_MEANS_EMPTY: bool = cfg!(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd"
));

/// A UDP socket with batched reads and segmented writes.
#[derive(Debug)]
pub(super) struct BatchSocket {
    /// Registered for read readiness only.
    socket: ReadRegistered<std::net::UdpSocket>,
    state: UdpSocketState,
    /// Whether the socket itself has quinn's options (GRO, destination addresses): then every
    /// read goes through quinn, which knows a bundle's segment size. Else a read of one datagram
    /// is a plain `recvfrom` and a lone datagram a plain `sendto`, as without batching.
    options: bool,
}

/// Receive buffers and what each read put in them.
pub(super) struct RecvBatch {
    bufs: Vec<u8>,
    metas: Vec<RecvMeta>,
    /// Messages the last read filled.
    filled: usize,
    /// Messages the next read asks for: 1 after the socket was found empty, doubling while
    /// reads fill every buffer asked for. A read that waited for readiness asks for at least
    /// two (`BatchSocket::poll_recv`): one that comes back short shows the queue empty.
    want: usize,
}

impl RecvBatch {
    /// Room for `slots` messages of [`SLOT`] bytes each.
    pub(super) fn new(slots: usize) -> RecvBatch {
        let slots = slots.clamp(1, quinn_udp::BATCH_SIZE);
        RecvBatch {
            bufs: vec![0; slots * SLOT],
            metas: vec![RecvMeta::default(); slots],
            filled: 0,
            want: 1,
        }
    }

    /// Notes what a read of `asked` messages gave: how many it filled, and what the next read
    /// asks for (twice as many after a full read, one after an empty socket).
    fn note(&mut self, read: io::Result<usize>, asked: usize) -> io::Result<usize> {
        match read {
            Ok(n) => {
                self.filled = n;
                if n == asked {
                    self.want = (asked * 2).min(self.metas.len());
                }
                Ok(n)
            }
            Err(err) => {
                self.filled = 0;
                self.want = 1;
                Err(err)
            }
        }
    }

    /// The datagrams the last read returned, in order, each with its source and the local
    /// address it was sent to (when the platform says).
    pub(super) fn datagrams(&self) -> Datagrams<'_> {
        Datagrams {
            metas: self.metas[..self.filled].iter(),
            bufs: &self.bufs,
            rest: &[],
            stride: 1,
            from: None,
        }
    }
}

/// The datagrams of a read, a GRO bundle cut into its segments: a plain loop over the messages
/// rather than nested iterators, since every datagram a server or client reads passes here.
pub(super) struct Datagrams<'a> {
    metas: std::slice::Iter<'a, RecvMeta>,
    /// The buffers of the messages not reached yet, [`SLOT`] bytes each.
    bufs: &'a [u8],
    /// The segments of the current message not given out yet.
    rest: &'a [u8],
    stride: usize,
    /// The current message's source and destination address.
    from: Option<(SocketAddr, Option<IpAddr>)>,
}

impl<'a> Iterator for Datagrams<'a> {
    type Item = (&'a [u8], SocketAddr, Option<IpAddr>);

    fn next(&mut self) -> Option<Self::Item> {
        if let (false, Some((addr, dst_ip))) = (self.rest.is_empty(), self.from) {
            let (datagram, rest) = self.rest.split_at(self.stride.min(self.rest.len()));
            self.rest = rest;
            return Some((datagram, addr, dst_ip));
        }
        let meta = self.metas.next()?;
        let (buf, bufs) = self.bufs.split_at(SLOT.min(self.bufs.len()));
        self.bufs = bufs;
        let len = meta.len.min(buf.len());
        self.stride = meta.stride.max(1);
        self.from = Some((meta.addr, meta.dst_ip));
        // An empty datagram is a datagram too (and malformed): one of zero bytes.
        let (datagram, rest) = buf[..len].split_at(self.stride.min(len));
        self.rest = rest;
        Some((datagram, meta.addr, meta.dst_ip))
    }
}

impl BatchSocket {
    /// Wraps a bound (and possibly connected) socket, leaving its options alone: batched reads
    /// and segmented sends, each datagram read alone (no GRO), no control message per datagram,
    /// and a lone datagram read and sent by plain `recvfrom` and `sendto`.
    pub(super) fn new(socket: UdpSocket) -> io::Result<BatchSocket> {
        // quinn's state says what the platform can do (GSO, batch size); it is made on a
        // scratch socket of the same family so that this one keeps its own options: quinn
        // would ask for a control message per datagram (destination address, TOS, GRO
        // segment size), which a lone call's read would pay for nothing.
        let scratch = std::net::UdpSocket::bind(SocketAddr::new(
            match socket.local_addr()? {
                SocketAddr::V4(_) => IpAddr::from([0u8; 4]),
                SocketAddr::V6(_) => IpAddr::from([0u16; 8]),
            },
            0,
        ))?;
        let state = UdpSocketState::new((&scratch).into())?;
        Ok(BatchSocket {
            socket: ReadRegistered::new(socket.into_std()?)?,
            state,
            options: false,
        })
    }

    /// Wraps a socket bound to a wildcard address: turns on destination-address reports (to
    /// answer from the address each request was sent to) and GRO where the platform has them.
    pub(super) fn with_destinations(socket: UdpSocket) -> io::Result<BatchSocket> {
        let state = UdpSocketState::new((&socket).into())?;
        // quinn asks for each datagram's TOS byte (for ECN, which sockrpc does not use): one
        // control message fewer to fill and parse per datagram.
        if socket.local_addr()?.is_ipv4() {
            socket2::SockRef::from(&socket).set_recv_tos_v4(false)?;
        }
        Ok(BatchSocket {
            socket: ReadRegistered::new(socket.into_std()?)?,
            state,
            options: true,
        })
    }

    /// The socket itself (for its addresses, and sends that must not wait).
    pub(super) fn get_ref(&self) -> &std::net::UdpSocket {
        self.socket.get_ref()
    }

    /// Sends `datagram` to the connected peer, waiting only when the socket's buffer is full.
    pub(super) async fn send_connected(&self, datagram: &[u8]) -> io::Result<usize> {
        self.socket
            .write_when_room(
                |socket| socket.send(datagram),
                std::net::UdpSocket::try_clone,
            )
            .await
    }

    /// Reads what is there, without waiting: the number of messages read into `batch`, or
    /// `WouldBlock` when there is none.
    pub(super) fn try_recv(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        let asked = batch.want.min(batch.metas.len());
        let read = self
            .socket
            .fd
            .try_io(Interest::READABLE, |socket| self.read(socket, batch, asked));
        batch.note(read, asked)
    }

    /// Reads into `batch` once the socket is readable.
    ///
    /// It asks for at least two messages (when `batch` has room for two), so that a read
    /// that comes back short shows the socket's queue empty. Readiness is cleared then, as
    /// tokio does for a short read of a stream, through the guard of the readiness this read
    /// saw: a datagram that came since has moved readiness on, and the clear leaves it. So the
    /// next wait goes to the runtime at once, instead of after one more read that finds
    /// nothing: one system call less per call on each side when calls come one at a time.
    pub(super) fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        batch: &mut RecvBatch,
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = match std::task::ready!(self.socket.fd.poll_read_ready(cx)) {
                Ok(guard) => guard,
                Err(err) => return Poll::Ready(Err(err)),
            };
            let asked = batch.want.max(2).min(batch.metas.len());
            match guard.try_io(|fd| self.read(fd.get_ref(), batch, asked)) {
                Ok(read) => {
                    let read = batch.note(read, asked);
                    if SHORT_READ_MEANS_EMPTY && matches!(read, Ok(n) if n < asked) {
                        guard.clear_ready();
                    }
                    return Poll::Ready(read);
                }
                // Empty: `try_io` cleared readiness; wait for the next.
                Err(_would_block) => {
                    let _ = batch.note(Err(io::ErrorKind::WouldBlock.into()), asked);
                }
            }
        }
    }

    /// One read of up to `asked` messages into `batch`'s buffers.
    fn read(
        &self,
        socket: &std::net::UdpSocket,
        batch: &mut RecvBatch,
        asked: usize,
    ) -> io::Result<usize> {
        let RecvBatch { bufs, metas, .. } = batch;
        // Only as many buffers as asked for: a read of one builds no array of 32.
        match asked {
            1 if !self.options => Self::recv_one(socket, bufs, metas),
            1 => self.recv_into::<1>(socket, bufs, metas),
            2 => self.recv_into::<2>(socket, bufs, metas),
            3..=4 => self.recv_into::<4>(socket, bufs, &mut metas[..asked]),
            5..=8 => self.recv_into::<8>(socket, bufs, &mut metas[..asked]),
            _ => self.recv_into::<{ quinn_udp::BATCH_SIZE }>(socket, bufs, &mut metas[..asked]),
        }
    }

    /// One plain `recvfrom`: one datagram, whole (the socket has no GRO to join several).
    fn recv_one(
        socket: &std::net::UdpSocket,
        bufs: &mut [u8],
        metas: &mut [RecvMeta],
    ) -> io::Result<usize> {
        let (len, addr) = socket.recv_from(&mut bufs[..SLOT])?;
        let meta = &mut metas[0];
        meta.addr = addr;
        meta.len = len;
        meta.stride = len;
        meta.dst_ip = None;
        Ok(1)
    }

    /// One `recvmmsg` into the first `N` buffers (at most `metas.len()` messages).
    fn recv_into<const N: usize>(
        &self,
        socket: &std::net::UdpSocket,
        bufs: &mut [u8],
        metas: &mut [RecvMeta],
    ) -> io::Result<usize> {
        let mut chunks = bufs.chunks_mut(SLOT);
        let mut iovs: [IoSliceMut<'_>; N] =
            std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()));
        let n = N.min(metas.len());
        self.state
            .recv(socket.into(), &mut iovs[..n], &mut metas[..n])
    }

    /// Most datagrams one segmented send may carry (1: no GSO here).
    pub(super) fn max_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    /// Sends `out`, waiting only when the socket's buffer is full.
    pub(super) async fn send(&self, out: &Transmit<'_>) -> io::Result<()> {
        let plain = out.segment_size.is_none() && out.src_ip.is_none();
        let send = |socket: &std::net::UdpSocket| {
            if plain {
                // One datagram, nothing to say about it: a plain sendto.
                socket.send_to(out.contents, out.destination).map(drop)
            } else {
                self.state.try_send(socket.into(), out)
            }
        };
        self.socket
            .write_when_room(send, std::net::UdpSocket::try_clone)
            .await
    }

    /// Sends `out` without waiting (the runtime is not asked about room: the socket is not
    /// registered for it): for sends that cannot wait, as in a `Drop`.
    pub(super) fn send_now(&self, out: &Transmit<'_>) -> io::Result<()> {
        self.state.try_send(self.get_ref().into(), out)
    }
}

/// What one send carries: `contents` to `to` (from `src_ip`, when given), one datagram, or with
/// `segment`, datagrams of that many bytes back to back (the last may be shorter).
pub(super) fn transmit<'a>(
    to: SocketAddr,
    src_ip: Option<IpAddr>,
    contents: &'a [u8],
    segment: Option<usize>,
) -> Transmit<'a> {
    Transmit {
        destination: to,
        ecn: None,
        contents,
        segment_size: segment,
        src_ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn pair() -> (BatchSocket, BatchSocket) {
        let a = UdpSocket::bind("127.0.0.1:0").await.expect("bind a");
        let b = UdpSocket::bind("127.0.0.1:0").await.expect("bind b");
        (
            BatchSocket::new(a).expect("a"),
            BatchSocket::new(b).expect("b"),
        )
    }

    /// Reads until `want` datagrams came (bounded), returning them with their sources.
    async fn read(socket: &BatchSocket, want: usize) -> Vec<(Vec<u8>, SocketAddr)> {
        let mut batch = RecvBatch::new(4);
        let mut got = Vec::new();
        for _ in 0..want {
            if got.len() >= want {
                break;
            }
            let read = tokio::time::timeout(
                Duration::from_secs(5),
                std::future::poll_fn(|cx| socket.poll_recv(cx, &mut batch)),
            )
            .await
            .expect("datagrams within 5 s");
            read.expect("read");
            got.extend(batch.datagrams().map(|(d, from, _)| (d.to_vec(), from)));
        }
        got
    }

    #[tokio::test]
    async fn a_segmented_send_arrives_as_its_datagrams_in_order() {
        let (a, b) = pair().await;
        segmented_send_arrives_whole(a, b).await;
    }

    /// The same, read by a socket with GRO on (a wildcard server's): the kernel hands the
    /// datagrams over as one bundle, split by its segment size.
    #[tokio::test]
    async fn a_segmented_send_read_with_gro_arrives_as_its_datagrams_in_order() {
        let (a, _) = pair().await;
        let b = UdpSocket::bind("0.0.0.0:0").await.expect("bind");
        let b = BatchSocket::with_destinations(b).expect("b");
        segmented_send_arrives_whole(a, b).await;
    }

    async fn segmented_send_arrives_whole(a: BatchSocket, b: BatchSocket) {
        let port = b.get_ref().local_addr().expect("addr").port();
        let b_addr = SocketAddr::from(([127, 0, 0, 1], port));
        let to = b_addr;
        let from = a.get_ref().local_addr().expect("addr");
        let mut contents = vec![1u8; 100];
        contents.extend([2u8; 100]);
        contents.extend([3u8; 60]);
        let segment = (a.max_segments() > 1).then_some(100);
        a.send(&transmit(to, None, &contents, segment))
            .await
            .expect("send");
        if segment.is_none() {
            // No GSO here: the same datagrams, one send each.
            a.send(&transmit(to, None, &[2u8; 100], None))
                .await
                .expect("send");
            a.send(&transmit(to, None, &[3u8; 60], None))
                .await
                .expect("send");
            let first = read(&b, 1).await;
            assert_eq!(first[0].0.len(), 260);
            return;
        }
        let got = read(&b, 3).await;
        let sizes: Vec<usize> = got.iter().map(|(d, _)| d.len()).collect();
        assert_eq!(sizes, [100, 100, 60]);
        for (k, (datagram, source)) in got.iter().enumerate() {
            assert!(datagram.iter().all(|&byte| byte == k as u8 + 1));
            assert_eq!(*source, from);
        }
    }

    #[tokio::test]
    async fn an_empty_datagram_is_read_as_one_empty_datagram() {
        let (a, b) = pair().await;
        let to = b.get_ref().local_addr().expect("addr");
        a.send(&transmit(to, None, &[], None)).await.expect("send");
        a.send(&transmit(to, None, b"after", None))
            .await
            .expect("send");
        let got = read(&b, 2).await;
        let datagrams: Vec<&[u8]> = got.iter().map(|(d, _)| &d[..]).collect();
        assert_eq!(datagrams, [&b""[..], &b"after"[..]]);
    }

    #[tokio::test]
    async fn a_datagram_of_64_kib_less_headers_is_read_whole() {
        let (a, b) = pair().await;
        let to = b.get_ref().local_addr().expect("addr");
        let big = vec![9u8; 65_507];
        a.send(&transmit(to, None, &big, None)).await.expect("send");
        let got = read(&b, 1).await;
        assert_eq!(got[0].0.len(), 65_507);
    }

    #[tokio::test]
    async fn a_waiting_read_asks_for_two_doubles_while_full_and_one_after_an_empty_socket() {
        let (a, b) = pair().await;
        let to = b.get_ref().local_addr().expect("addr");
        for k in 0..3u8 {
            a.send(&transmit(to, None, &[k], None)).await.expect("send");
        }
        let mut batch = RecvBatch::new(4);
        let mut reads = Vec::new();
        for _ in 0..2 {
            let read = tokio::time::timeout(
                Duration::from_secs(5),
                std::future::poll_fn(|cx| b.poll_recv(cx, &mut batch)),
            )
            .await
            .expect("within 5 s");
            reads.push(read.expect("read"));
        }
        // Two asked, two read; then four asked, one read (short: the queue is empty).
        assert_eq!(reads, [2, 1]);
        let err = b.try_recv(&mut batch).expect_err("empty");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(batch.want, 1, "back to one after the socket was empty");
    }

    /// A burst sent at once is read whole by reads that wait, however many messages each read
    /// returns: a read is short only once the queue is empty.
    #[tokio::test]
    async fn a_burst_is_read_whole_by_reads_that_wait() {
        let (a, b) = pair().await;
        let to = b.get_ref().local_addr().expect("addr");
        for k in 0..9u8 {
            a.send(&transmit(to, None, &[k], None)).await.expect("send");
        }
        let got = read(&b, 9).await;
        let payloads: Vec<u8> = got.iter().map(|(d, _)| d[0]).collect();
        assert_eq!(payloads, (0..9).collect::<Vec<u8>>());
    }

    /// A short read clears readiness (`poll_recv`); a datagram that comes after it must still
    /// wake the reader. One datagram at a time, each sent only once the reader waits, a few
    /// hundred times: a readiness cleared when it should not be loses one, and the read times
    /// out.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_a_short_read_clears_readiness_the_next_datagram_still_wakes_the_reader() {
        let (a, b) = pair().await;
        let to = b.get_ref().local_addr().expect("addr");
        let b = std::sync::Arc::new(b);
        let reader = std::sync::Arc::clone(&b);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(1);
        let reading = tokio::spawn(async move {
            let mut batch = RecvBatch::new(4);
            loop {
                let read = std::future::poll_fn(|cx| reader.poll_recv(cx, &mut batch)).await;
                read.expect("read");
                for (datagram, _, _) in batch.datagrams() {
                    if tx.send(datagram.to_vec()).await.is_err() {
                        return;
                    }
                }
            }
        });
        for k in 0..300u16 {
            a.send(&transmit(to, None, &k.to_be_bytes(), None))
                .await
                .expect("send");
            let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .unwrap_or_else(|_| panic!("datagram {k} not read within 5 s"))
                .expect("reader alive");
            assert_eq!(got, k.to_be_bytes());
        }
        reading.abort();
    }
}
