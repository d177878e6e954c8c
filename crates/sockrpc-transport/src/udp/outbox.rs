//! `Outbox`: the answers a UDP server made while handling one batch of datagrams, sent together
//! when the batch is done.
//!
//! ```text
//!  batch of requests ─▶ answers pushed here, encoded back to back in one buffer
//!  flush ─▶ runs of datagrams to one address, of one size (the last of a run may be shorter)
//!           ─▶ one segmented send per run (GSO), or one send per datagram where there is none
//! ```
//!
//! A client with many calls in flight gets its answers in a few system calls instead of one
//! each (on loopback a run travels as one packet, cut apart at the client's socket). A lone
//! request's answer leaves as soon as its batch (of one) is handled: nothing waits for company.

use super::socket::{transmit, BatchSocket, GSO_MAX_BYTES, GSO_MAX_SEGMENT};
use bytes::BytesMut;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Largest buffer kept between batches.
const KEPT: usize = 256 * 1024;

/// One datagram waiting in the outbox.
#[derive(Clone, Copy)]
struct Queued {
    to: SocketAddr,
    src_ip: Option<IpAddr>,
    /// Where the datagram ends in the buffer (it starts where the previous one ends).
    end: usize,
}

/// Answers waiting to be sent; see the module docs.
#[derive(Default)]
pub(super) struct Outbox {
    buf: BytesMut,
    queued: Vec<Queued>,
    /// When [`waited`](Self::waited) first saw a datagram queued (no clock is read per push:
    /// a lone call's answer never waits for another).
    since: Option<Instant>,
}

impl Outbox {
    /// Queues the datagram `encode` appends to the buffer, for `to`, sent from `src_ip` when
    /// given. An `encode` that appends nothing queues nothing.
    pub(super) fn push(
        &mut self,
        to: SocketAddr,
        src_ip: Option<IpAddr>,
        encode: impl FnOnce(&mut BytesMut),
    ) {
        let start = self.buf.len();
        encode(&mut self.buf);
        if self.buf.len() > start {
            self.queued.push(Queued {
                to,
                src_ip,
                end: self.buf.len(),
            });
        }
    }

    /// How long datagrams have waited here, counted from the first call that saw one queued
    /// (zero when none is).
    pub(super) fn waited(&mut self) -> Duration {
        if self.queued.is_empty() {
            return Duration::ZERO;
        }
        self.since.get_or_insert_with(Instant::now).elapsed()
    }

    /// Whether nothing is queued.
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// Sends everything queued: a run of datagrams of one size to one address goes in one
    /// segmented send. A failed send loses its datagrams, as a network would (the client
    /// retransmits and the reply cache answers); a segmented send the kernel refuses is sent
    /// again one datagram at a time.
    pub(super) async fn flush(&mut self, socket: &BatchSocket) {
        let max_segments = socket.max_segments().max(1);
        let mut start = 0;
        let mut i = 0;
        while let Some(run) = self.run(i, start, max_segments) {
            let out = transmit(run.to, run.src_ip, &self.buf[start..run.end], run.segment);
            let sent = socket.send(&out).await;
            if let Err(err) = sent {
                self.refused(socket, &run, start, err);
            }
            (i, start) = (run.next, run.end);
        }
        self.clear();
    }

    /// The run of datagrams that starts with datagram `i` at byte `start`: same address, same
    /// source, same size (a shorter datagram ends it), within the segmented send's limits.
    fn run(&self, i: usize, start: usize, max_segments: usize) -> Option<Run> {
        let first = *self.queued.get(i)?;
        let size = first.end - start;
        let mut next = i + 1;
        let mut end = first.end;
        if size <= GSO_MAX_SEGMENT {
            while next < self.queued.len() && next - i < max_segments {
                let queued = self.queued[next];
                let len = queued.end - end;
                if queued.to != first.to
                    || queued.src_ip != first.src_ip
                    || len > size
                    || queued.end - start > GSO_MAX_BYTES
                {
                    break;
                }
                end = queued.end;
                next += 1;
                if len < size {
                    break;
                }
            }
        }
        Some(Run {
            to: first.to,
            src_ip: first.src_ip,
            end,
            next,
            segment: (next - i > 1).then_some(size),
        })
    }

    /// A run's send failed with `err`: a segmented one goes again one datagram at a time,
    /// without waiting (a kernel or device without GSO says so only here).
    fn refused(&self, socket: &BatchSocket, run: &Run, start: usize, err: std::io::Error) {
        tracing::debug!(to = %run.to, error = %err, "udp send failed");
        if let Some(size) = run.segment {
            for datagram in self.buf[start..run.end].chunks(size) {
                if let Err(err) = socket.send_now(&transmit(run.to, run.src_ip, datagram, None)) {
                    tracing::debug!(to = %run.to, error = %err, "udp send failed");
                }
            }
        }
    }

    fn clear(&mut self) {
        self.queued.clear();
        self.since = None;
        if self.buf.capacity() > KEPT {
            self.buf = BytesMut::new();
        } else {
            self.buf.clear();
        }
    }
}

/// Datagrams that leave in one send.
struct Run {
    to: SocketAddr,
    src_ip: Option<IpAddr>,
    /// Where the run ends in the buffer.
    end: usize,
    /// The first datagram after it.
    next: usize,
    /// `Some(size)`: several datagrams of `size` bytes (the last may be shorter).
    segment: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        ([127, 0, 0, 1], port).into()
    }

    /// The runs `flush` would send: (first datagram, datagrams, segment size).
    fn runs(outbox: &Outbox, max_segments: usize) -> Vec<(usize, usize, Option<usize>)> {
        let (mut i, mut start, mut out) = (0, 0, Vec::new());
        while let Some(run) = outbox.run(i, start, max_segments) {
            out.push((i, run.next - i, run.segment));
            (i, start) = (run.next, run.end);
        }
        out
    }

    fn outbox(datagrams: &[(u16, usize)]) -> Outbox {
        let mut outbox = Outbox::default();
        for &(port, len) in datagrams {
            outbox.push(addr(port), None, |out| out.extend_from_slice(&vec![0; len]));
        }
        outbox
    }

    #[test]
    fn a_run_is_one_address_and_one_size_and_a_shorter_datagram_ends_it() {
        let queued = outbox(&[
            (1, 100),
            (1, 100),
            (1, 40), // shorter: last of the run
            (1, 100),
            (2, 100), // another address
            (2, 200), // larger: a run of its own
            (2, 200),
        ]);
        assert_eq!(
            runs(&queued, 64),
            [
                (0, 3, Some(100)),
                (3, 1, None),
                (4, 1, None),
                (5, 2, Some(200))
            ]
        );
    }

    #[test]
    fn runs_keep_to_the_segment_count_and_size_limits() {
        let queued = outbox(&[(1, 10); 5]);
        assert_eq!(
            runs(&queued, 2),
            [(0, 2, Some(10)), (2, 2, Some(10)), (4, 1, None)]
        );
        assert_eq!(
            runs(&queued, 1),
            (0..5).map(|i| (i, 1, None)).collect::<Vec<_>>()
        );
        // Larger than a segment may be: one send each.
        let large = outbox(&[(1, GSO_MAX_SEGMENT + 1); 2]);
        assert_eq!(runs(&large, 64), [(0, 1, None), (1, 1, None)]);
        // No more bytes in one send than an IP packet holds.
        let many = outbox(&[(1, 1000); 64]);
        let sizes: Vec<usize> = runs(&many, 64).iter().map(|r| r.1).collect();
        assert_eq!(sizes, [GSO_MAX_BYTES / 1000, 64 - GSO_MAX_BYTES / 1000]);
    }

    #[test]
    fn an_encoder_that_writes_nothing_queues_nothing() {
        let mut queued = Outbox::default();
        queued.push(addr(1), None, |_| {});
        assert!(queued.is_empty());
    }

    /// Random queues (seeded, bounded): the runs cover every datagram once, in order, and each
    /// keeps the kernel's rules for a segmented send.
    #[test]
    fn runs_of_random_queues_cover_every_datagram_within_the_rules() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move |bound: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % bound
        };
        for _ in 0..500 {
            let count = 1 + next(100) as usize;
            let datagrams: Vec<(u16, usize)> = (0..count)
                .map(|_| {
                    let port = 1 + next(2) as u16;
                    // Mostly one size (long runs), sometimes shorter or larger ones.
                    let len = match next(4) {
                        0 => 1 + next(1400) as usize,
                        _ => 100,
                    };
                    (port, len)
                })
                .collect();
            let queued = outbox(&datagrams);
            let max_segments = 1 + next(70) as usize;
            let mut expected_next = 0;
            for (first, n, segment) in runs(&queued, max_segments) {
                assert_eq!(first, expected_next, "runs in order, none skipped");
                let run = &datagrams[first..first + n];
                expected_next = first + n;
                assert!(n <= max_segments);
                match segment {
                    None => assert_eq!(n, 1),
                    Some(size) => {
                        assert!(n > 1 && size <= GSO_MAX_SEGMENT);
                        assert!(run.iter().all(|&(port, _)| port == run[0].0));
                        let (last, rest) = run.split_last().expect("a run");
                        assert!(rest.iter().all(|&(_, len)| len == size));
                        assert!(last.1 <= size);
                        assert!(run.iter().map(|&(_, len)| len).sum::<usize>() <= GSO_MAX_BYTES);
                    }
                }
            }
            assert_eq!(expected_next, count, "every datagram in a run");
        }
    }
}
