//! The raw-socket floor: echo servers and clients with no framework at all.
//!
//! The TCP echo server, with its limits, is in `raw_echo.rs`; the TLS floor, the same echo over a
//! tokio-rustls session, is in `raw_tls.rs`.
//!
//! TCP frames are a 4-byte big-endian length and the payload; the server writes back every
//! complete frame it has, unchanged, in one write. UDP echoes each datagram to its sender, except
//! one that claims to come from the echo's own address (see [`from_itself`]). Both clients use
//! the same socket options sockrpc does (TCP_NODELAY, through
//! `sockrpc::transport::connect_tcp`), so what separates a sockrpc row from its raw row is the
//! framework alone.

use crate::load::{Caller, Tally};
use crate::raw_echo::MAX_FRAME;
use sockrpc::transport::connect_tcp;
use sockrpc::SocketConfig;
use std::{
    io,
    net::SocketAddr,
    time::{Duration, Instant},
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Largest payload the raw-udp row sends: what fits one datagram on any IPv6 path without
/// fragmentation (1280-byte minimum MTU less the IPv6 and UDP headers), as DNS and QUIC use.
pub(crate) const MAX_UDP_PAYLOAD: usize = 1232;

/// How long a raw client waits to connect.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the UDP client waits for an echo before it counts the datagram as lost.
const UDP_REPLY_TIMEOUT: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------------------------
// Servers

/// Gives a raw UDP socket (the floor's echo or client) the receive buffer sockrpc's own UDP
/// sockets ask for: without it a burst is dropped, and the floor's row measures retransmission
/// timeouts. A failure only costs drops under bursts, as it does theirs.
fn raise_recv_buffer(socket: &UdpSocket) {
    if let Err(err) =
        sockrpc::transport::raise_recv_buffer(socket, sockrpc::transport::UDP_RECV_BUFFER)
    {
        tracing::debug!(error = %err, "raw UDP: cannot raise the receive buffer");
    }
}

/// Echoes every datagram to its sender until the task is dropped, except those
/// [`from_itself`] refuses.
pub(crate) async fn serve_udp(socket: UdpSocket) {
    // Without its own address the echo cannot tell a peer from itself: it answers nobody.
    let Ok(local) = socket.local_addr() else {
        return;
    };
    raise_recv_buffer(&socket);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // A failed receive or send concerns one datagram (or an ICMP error for an earlier one);
        // the echo goes on for everyone else.
        if let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            if !from_itself(local, peer) {
                let _ = socket.send_to(&buf[..n], peer).await;
            }
        }
    }
}

/// Whether the UDP echo bound at `local` must not answer a datagram from `source`, because the
/// answer could come back to the echo itself: a datagram forged with the echo's own address as
/// its source would otherwise bounce between the echo and itself forever.
///
/// The rule, on the echo's own port only (a source on any other port is answered):
/// - a source that is loopback (any of 127.0.0.0/8, `::1`), unspecified (`0.0.0.0` and `::`
///   mean this host) or the echo's own IP is refused;
/// - an echo bound to the unspecified address listens on every address of the host, which it
///   cannot list, so it refuses every source on its port.
///
/// IPv4-mapped IPv6 addresses (a dual-stack socket's view of IPv4 peers) count as their IPv4
/// address. The cost is that a peer elsewhere that sends from the very port number the echo
/// listens on is not answered; clients send from ephemeral ports (the bench binds port 0).
pub(crate) fn from_itself(local: SocketAddr, source: SocketAddr) -> bool {
    if source.port() != local.port() {
        return false;
    }
    let own = local.ip().to_canonical();
    let source = source.ip().to_canonical();
    own.is_unspecified() || source.is_loopback() || source.is_unspecified() || source == own
}

// ---------------------------------------------------------------------------------------------
// Clients

/// A request frame: length prefix and `payload` bytes of filler.
pub(crate) fn frame(payload: usize) -> io::Result<Vec<u8>> {
    let len = u32::try_from(payload)
        .ok()
        .filter(|len| *len as usize <= MAX_FRAME)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "payload too large"))?;
    let mut frame = Vec::with_capacity(4 + payload);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.resize(4 + payload, 0xA5);
    Ok(frame)
}

/// Connects like sockrpc's own client does, so both rows get the same socket options.
pub(crate) async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    connect_tcp(addr, &SocketConfig::default(), CONNECT_TIMEOUT).await
}

/// One raw TCP connection with one call in flight: write the frame, read the echo.
#[derive(Debug)]
pub(crate) struct RawTcp {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    frame: Vec<u8>,
    reply: Vec<u8>,
}

impl RawTcp {
    /// Connects to the raw echo at `addr`.
    pub(crate) async fn connect(addr: SocketAddr, payload: usize) -> io::Result<RawTcp> {
        let frame = frame(payload)?;
        Ok(RawTcp {
            addr,
            stream: Some(connect(addr).await?),
            reply: vec![0; frame.len()],
            frame,
        })
    }

    async fn echo(&mut self) -> io::Result<()> {
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => self.stream.insert(connect(self.addr).await?),
        };
        echo_frame(stream, &self.frame, &mut self.reply).await
    }
}

/// One call on a raw connection, TCP or TLS alike: writes `frame` (flushed, for TLS's buffered
/// writer), reads exactly `frame.len()` bytes into `reply` (with one call in flight the echo is
/// exactly as long as the request), and checks the echo carries the same length prefix.
pub(crate) async fn echo_frame<S>(stream: &mut S, frame: &[u8], reply: &mut [u8]) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    stream.write_all(frame).await?;
    stream.flush().await?;
    stream.read_exact(reply).await?;
    if reply.get(..4) != frame.get(..4) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "echo came back with another length",
        ));
    }
    Ok(())
}

/// Counts one raw call, TCP or TLS alike, begun at `started`: its latency, or its error (named
/// `label: error`), after which `stream` is dropped: it may be mid-frame, and only a new
/// connection is in a known state.
pub(crate) fn tally_echo<S>(
    tally: &Tally,
    started: Instant,
    outcome: io::Result<()>,
    stream: &mut Option<S>,
    label: &str,
) {
    match outcome {
        Ok(()) => tally.ok(started.elapsed()),
        Err(err) => {
            *stream = None;
            tally.err(1, || format!("{label}: {err}"));
        }
    }
}

impl Caller for RawTcp {
    async fn round(&mut self, tally: &Tally) {
        let started = Instant::now();
        let outcome = self.echo().await;
        tally_echo(tally, started, outcome, &mut self.stream, "raw tcp");
    }
}

/// One raw TCP connection, `depth` requests written back to back, then `depth` echoes read: the
/// most a single connection can carry, for scale against multiplexed rows.
#[derive(Debug)]
pub(crate) struct RawTcpPipelined {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    depth: u64,
    frame_len: usize,
    frames: Vec<u8>,
    reply: Vec<u8>,
}

impl RawTcpPipelined {
    /// Connects to the raw echo at `addr`.
    pub(crate) async fn connect(
        addr: SocketAddr,
        payload: usize,
        depth: usize,
    ) -> io::Result<RawTcpPipelined> {
        let one = frame(payload)?;
        let frames = one.repeat(depth.max(1));
        Ok(RawTcpPipelined {
            addr,
            stream: Some(connect(addr).await?),
            depth: depth.max(1) as u64,
            frame_len: one.len(),
            reply: vec![0; frames.len()],
            frames,
        })
    }

    /// Writes `calls` requests (at most `depth`) and reads their echoes; returns how many
    /// echoes arrived, and the error that stopped the batch, if any.
    async fn batch(
        &mut self,
        calls: u64,
        started: Instant,
        tally: &Tally,
    ) -> (u64, io::Result<()>) {
        let bytes = usize::try_from(calls.min(self.depth))
            .unwrap_or(usize::MAX)
            .saturating_mul(self.frame_len)
            .min(self.frames.len());
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => match connect(self.addr).await {
                Ok(stream) => self.stream.insert(stream),
                Err(err) => return (0, Err(err)),
            },
        };
        let (mut reader, mut writer) = stream.split();
        let mut done = 0u64;
        // Write and read at once: a batch larger than the socket buffers would otherwise
        // deadlock, the server blocked writing echoes nobody reads yet.
        let write = writer.write_all(&self.frames[..bytes]);
        let frame_len = self.frame_len;
        let reply = &mut self.reply[..bytes];
        let done_ref = &mut done;
        let read = async move {
            let mut filled = 0;
            while filled < reply.len() {
                let n = reader.read(&mut reply[filled..]).await?;
                if n == 0 {
                    return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
                }
                filled += n;
                let elapsed = started.elapsed();
                while (*done_ref as usize + 1) * frame_len <= filled {
                    *done_ref += 1;
                    tally.ok(elapsed);
                }
            }
            Ok(())
        };
        let result = tokio::try_join!(write, read).map(|_| ());
        (done, result)
    }
}

impl Caller for RawTcpPipelined {
    fn calls_per_round(&self) -> u64 {
        self.depth
    }

    async fn round(&mut self, tally: &Tally) {
        self.round_of(self.depth, tally).await;
    }

    async fn round_of(&mut self, calls: u64, tally: &Tally) {
        let calls = calls.min(self.depth);
        let started = Instant::now();
        let (done, result) = self.batch(calls, started, tally).await;
        if let Err(err) = result {
            self.stream = None;
            tally.err(calls.saturating_sub(done), || {
                format!("raw tcp pipelined: {err}")
            });
        }
    }
}

/// One connected UDP socket with one datagram in flight.
#[derive(Debug)]
pub(crate) struct RawUdp {
    socket: UdpSocket,
    datagram: Vec<u8>,
    reply: Vec<u8>,
    seq: u64,
}

impl RawUdp {
    /// Binds an ephemeral port and connects it to the UDP echo at `addr`.
    pub(crate) async fn connect(addr: SocketAddr, payload: usize) -> io::Result<RawUdp> {
        let local: SocketAddr = if addr.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let socket = UdpSocket::bind(local).await?;
        socket.connect(addr).await?;
        raise_recv_buffer(&socket);
        Ok(RawUdp {
            socket,
            datagram: vec![0xA5; payload],
            reply: vec![0; payload.max(8) + 1],
            seq: 0,
        })
    }

    /// Sends one datagram and waits for its own echo, skipping late echoes of datagrams an
    /// earlier round gave up on. Datagrams of 8 bytes or more carry a sequence number for that.
    async fn echo(&mut self) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let stamped = self.datagram.len() >= 8;
        if let Some(head) = self.datagram.get_mut(..8) {
            head.copy_from_slice(&self.seq.to_be_bytes());
        }
        self.socket.send(&self.datagram).await?;
        loop {
            let n = self.socket.recv(&mut self.reply).await?;
            if n != self.datagram.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "echo of {n} bytes for a datagram of {}",
                        self.datagram.len()
                    ),
                ));
            }
            if !stamped || self.reply[..8] == self.datagram[..8] {
                return Ok(());
            }
        }
    }
}

impl Caller for RawUdp {
    async fn round(&mut self, tally: &Tally) {
        let started = Instant::now();
        // Loss is possible even on loopback (a full receive buffer), so this row alone pays for
        // a timer per call; raw-tcp, the row every ratio refers to, does not.
        match tokio::time::timeout(UDP_REPLY_TIMEOUT, self.echo()).await {
            Ok(Ok(())) => tally.ok(started.elapsed()),
            Ok(Err(err)) => tally.err(1, || format!("raw udp: {err}")),
            Err(_) => tally.err(1, || {
                format!(
                    "raw udp: no echo within {} ms (datagram lost)",
                    UDP_REPLY_TIMEOUT.as_millis()
                )
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("socket address")
    }

    #[test]
    fn udp_echo_refuses_sources_that_are_its_own_address() {
        // Bound to one address: that address, loopback and "this host" on its port are itself.
        let local = addr("127.0.0.1:7000");
        for forged in [
            "127.0.0.1:7000",
            "127.0.0.2:7000",
            "127.255.255.254:7000",
            "0.0.0.0:7000",
            "[::1]:7000",
            "[::ffff:127.0.0.1]:7000",
        ] {
            assert!(from_itself(local, addr(forged)), "{forged} answered");
        }
        let local = addr("10.1.2.3:7000");
        assert!(from_itself(local, addr("10.1.2.3:7000")));
        assert!(from_itself(local, addr("[::ffff:10.1.2.3]:7000")));
        // Bound to every address: any source on its port may be one of the host's own.
        for local in [addr("0.0.0.0:7000"), addr("[::]:7000")] {
            for forged in [
                "127.0.0.1:7000",
                "10.1.2.3:7000",
                "192.0.2.9:7000",
                "[::1]:7000",
            ] {
                assert!(
                    from_itself(local, addr(forged)),
                    "{local}: {forged} answered"
                );
            }
        }
    }

    #[test]
    fn udp_echo_answers_sources_on_other_ports_and_hosts() {
        let local = addr("127.0.0.1:7000");
        for peer in [
            "127.0.0.1:7001",
            "127.0.0.1:40000",
            "[::1]:7001",
            "10.1.2.3:7000",
        ] {
            assert!(!from_itself(local, addr(peer)), "{peer} refused");
        }
        let local = addr("10.1.2.3:7000");
        assert!(!from_itself(local, addr("10.1.2.4:7000")));
        assert!(!from_itself(local, addr("10.1.2.3:7001")));
        for local in [addr("0.0.0.0:7000"), addr("[::]:7000")] {
            assert!(!from_itself(local, addr("192.0.2.9:50000")));
            assert!(!from_itself(local, addr("127.0.0.1:50000")));
        }
    }

    /// Runs the UDP echo on a socket bound at `bind` after that very socket has sent a datagram
    /// to itself at `self_ip` (so its source is, truly, the echo's own address), checks that a
    /// peer is still answered, and returns what a second descriptor of the echo's socket
    /// catches within 500 ms: had the echo answered itself, that datagram would be circling
    /// through its socket for ever.
    async fn self_sent_datagram_caught(bind: &str, self_ip: &str) -> Option<Vec<u8>> {
        let socket = std::net::UdpSocket::bind(bind).expect("bind echo");
        socket.set_nonblocking(true).expect("nonblocking");
        let port = socket.local_addr().expect("local addr").port();
        let own = SocketAddr::new(self_ip.parse().expect("ip"), port);
        let watcher = socket.try_clone().expect("second descriptor");
        socket.send_to(b"from itself", own).expect("send to itself");
        let echo = tokio::spawn(serve_udp(
            UdpSocket::from_std(socket).expect("tokio socket"),
        ));

        // A peer's datagram, queued behind the forged one: once it is answered, the echo has
        // handled both.
        let peer = UdpSocket::bind("127.0.0.1:0").await.expect("bind peer");
        peer.connect(own).await.expect("connect peer");
        peer.send(b"hello").await.expect("send");
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), peer.recv(&mut buf))
            .await
            .expect("the echo answered no peer within 5 s")
            .expect("recv");
        assert_eq!(&buf[..n], b"hello");

        let watcher = UdpSocket::from_std(watcher).expect("tokio watcher");
        let caught = tokio::time::timeout(Duration::from_millis(500), watcher.recv_from(&mut buf))
            .await
            .ok()
            .map(|received| buf[..received.expect("recv").0].to_vec());
        echo.abort();
        caught
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn udp_echo_does_not_answer_a_datagram_from_its_own_address() {
        let caught = self_sent_datagram_caught("127.0.0.1:0", "127.0.0.1").await;
        assert_eq!(caught, None, "the echo answered itself");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn udp_echo_on_every_address_does_not_answer_its_own_loopback_address() {
        let caught = self_sent_datagram_caught("0.0.0.0:0", "127.0.0.1").await;
        assert_eq!(caught, None, "the echo answered itself");
    }
}
