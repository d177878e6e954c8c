//! What a [`ReplyCache`](super::ReplyCache) may hold, in all and per source: the limits that
//! keep one host, or a flood of unverified (possibly forged) sources, from filling the cache
//! that lets every client's retransmissions be answered without running a call twice.

use std::time::Duration;

/// Settings for a [`ReplyCache`](super::ReplyCache).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ReplyCacheConfig {
    /// Most finished calls kept; past it new calls are refused until entries age out.
    /// Default 262,144: about 8,700 calls/s sustained over a 30 s `ttl` from clients that send
    /// no watermark; answers a client is done with do not count.
    pub max_entries: usize,
    /// Most bytes of answers kept (messages, status text, metadata). Default 64 MiB.
    pub max_bytes: usize,
    /// How long a finished call's answer is kept. Default 30 s: longer than a client keeps
    /// retransmitting (its `retransmit_window`, 20 s by default), so a late duplicate still finds
    /// the answer instead of running the call again.
    pub ttl: Duration,
    /// Most entries (calls running or finished) one verified source holds: an IPv4 address, or
    /// an IPv6 /64 (unverified sources draw on `max_unverified_entries` instead). Past it that
    /// source's new calls are refused unrun, as a full cache refuses them, so one host cannot fill the cache for everyone. Default 32,768 (an eighth of
    /// `max_entries`): a client that sends watermarks holds about its calls in flight (at most
    /// 4,096). A source here is a host's address, or its /64: clients behind one NAT address
    /// share one share. 0 admits no call from anyone.
    pub max_entries_per_source: usize,
    /// Most bytes of answers one source holds before its new calls are refused. Default 8 MiB
    /// (an eighth of `max_bytes`). Only admission is refused: the answer of a call already
    /// running is kept whole even past it (`max_bytes` bounds the memory), since a truncated
    /// call's client fetches that answer over TCP.
    pub max_bytes_per_source: usize,
    /// Most entries (calls running or finished) held by all sources without a valid cookie
    /// together, whatever addresses they claim; past it every unverified call is refused unrun
    /// (counted `unverified_refused`), while verified clients keep the rest of `max_entries`.
    /// Unverified calls count here only, never against a verified source's share, so calls
    /// forged from a client's address cannot use up that client's share. Default 16,384 (a
    /// sixteenth of `max_entries`): our clients' calls are unverified only before their cookie
    /// exchange and the first call after a cookie goes stale.
    pub max_unverified_entries: usize,
    /// Most bytes of answers held by unverified sources together. Default 4 MiB (a sixteenth
    /// of `max_bytes`); an answer to an unverified source is no larger than its request anyway.
    pub max_unverified_bytes: usize,
}

impl Default for ReplyCacheConfig {
    fn default() -> ReplyCacheConfig {
        ReplyCacheConfig {
            max_entries: 256 * 1024,
            max_bytes: 64 * 1024 * 1024,
            ttl: Duration::from_secs(30),
            max_entries_per_source: 32 * 1024,
            max_bytes_per_source: 8 * 1024 * 1024,
            max_unverified_entries: 16 * 1024,
            max_unverified_bytes: 4 * 1024 * 1024,
        }
    }
}
