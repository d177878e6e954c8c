//! `UdpClientConfig`: how large a client's datagrams may be, how long it waits before it
//! retransmits, and when it gives up on UDP for a while.

use super::datagram::{self, DEFAULT_MAX_DATAGRAM};
use bytes::Bytes;
use sockrpc_protocol::frame::check_metadata;
use sockrpc_protocol::{Limits, MethodPath, Request};
use std::time::Duration;

/// UDP client settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UdpClientConfig {
    /// Largest REQUEST datagram sent; a larger call is `NotSuitable`. Default 1232.
    pub max_datagram: usize,
    /// Metadata limits.
    pub limits: Limits,
    /// RTO before the first RTT sample. Default 100 ms.
    pub initial_rto: Duration,
    /// Smallest RTO. Default 25 ms: far below RFC 6298's 1 s (loopback and LAN round trips
    /// are microseconds), but above the stalls of a busy host (a server thread not scheduled
    /// for a few milliseconds), which are not loss: a retransmission then only adds load when
    /// the server is already behind. QUIC's probe timeout has the same margin (its default
    /// `max_ack_delay`, RFC 9002).
    pub min_rto: Duration,
    /// Largest RTO, also the cap on backoff. Default 1 s.
    pub max_rto: Duration,
    /// Consecutive timeouts (with no datagram from the server in between) after which new calls
    /// go over TCP for [`fallback_for`](Self::fallback_for). Default 8.
    pub fallback_after_losses: u32,
    /// How long new calls are `NotSuitable` after fallback starts. Default 5 s.
    pub fallback_for: Duration,
    /// A call stops retransmitting this long after its first transmission and fails with
    /// `Unavailable`, whatever its deadline. Default 20 s: below the server's reply-cache TTL
    /// (30 s), so no retransmission can outlive the record that it already ran.
    pub retransmit_window: Duration,
    /// Most calls started since this client's oldest unfinished one, the one its watermark
    /// names; a call past it is `NotSuitable` (a channel sends it over TCP) until that one
    /// finishes. The server keeps every answer after the watermark, so a call that needs
    /// retransmissions would otherwise make it keep each call made meanwhile, at 100 k calls/s
    /// thousands per RTO, enough to fill its reply cache for every client. Default 4096: at most
    /// about 5 MB of answers of the largest datagram.
    pub max_window: usize,
    /// `SO_RCVBUF` the socket is raised to when it has less (never lowered; the kernel caps it
    /// at `net.core.rmem_max`), so that a burst of datagrams is not dropped by a full buffer:
    /// Linux's default of 208 KiB holds about a hundred. `None` leaves the socket as it is.
    /// Default 4 MiB ([`UDP_RECV_BUFFER`](crate::socket::UDP_RECV_BUFFER)).
    pub recv_buffer_size: Option<usize>,
}

impl Default for UdpClientConfig {
    fn default() -> UdpClientConfig {
        UdpClientConfig {
            max_datagram: DEFAULT_MAX_DATAGRAM,
            limits: Limits::default(),
            initial_rto: Duration::from_millis(100),
            min_rto: Duration::from_millis(25),
            max_rto: Duration::from_secs(1),
            fallback_after_losses: 8,
            fallback_for: Duration::from_secs(5),
            retransmit_window: Duration::from_secs(20),
            max_window: 4096,
            recv_buffer_size: Some(crate::socket::UDP_RECV_BUFFER),
        }
    }
}

impl UdpClientConfig {
    /// Whether a call of `path` with `request` fits one REQUEST datagram of a client with this
    /// configuration (what [`UdpClient::fits`](super::UdpClient::fits) asks, without a client).
    pub fn fits(&self, path: &MethodPath, request: &Request<Bytes>) -> bool {
        check_metadata(request.metadata(), &self.limits).is_ok()
            && datagram::request_len(path, request.metadata(), request.get_ref())
                <= self.max_datagram
    }
}
