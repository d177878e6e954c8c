//! What a UDP server counts: every datagram it received, answered, refused or dropped, and
//! why. A counter per outcome, so that a server under a flood (spoofed sources, a full reply
//! cache, calls past their limits) says which defence is working, without a log line per
//! datagram.

use super::counters;

counters! {
    /// What a UDP server has seen and done, at one moment.
    snapshot UdpServerCounters;
    /// A UDP server's live counters; [`snapshot`](UdpServerStats::snapshot) reads them.
    pub live UdpServerStats;
    {
        /// Datagrams received.
        received,
        /// Well-formed REQUESTs.
        requests,
        /// Calls run (a handler started).
        executed,
        /// REPLY datagrams sent.
        replies,
        /// TRUNCATED datagrams sent.
        truncated,
        /// Retransmissions answered from the cache, without running the call.
        resent,
        /// Retransmissions of a call still running, answered with PENDING.
        in_progress_duplicates,
        /// COOKIEs sent.
        cookies,
        /// Datagrams dropped as malformed.
        malformed,
        /// Server-kind datagrams (REPLY, TRUNCATED, COOKIE, PENDING) received, never answered.
        ignored_answers,
        /// Datagrams from unverified sources dropped by the rate limit.
        rate_limited,
        /// Answers not sent because even TRUNCATED would exceed the request's size.
        amplification_dropped,
        /// Requests refused unrun (NOT_PROCESSED) because `max_in_flight` calls were running.
        overloaded,
        /// Requests refused unrun because their source (an IPv4 address, an IPv6 /64) had
        /// `max_in_flight_per_source` calls running.
        over_in_flight_share,
        /// Handlers that panicked.
        panics,
        /// Requests dropped because the reply cache was full of answers too young to evict.
        cache_full,
        /// Requests refused unrun because their source (an IPv4 address, an IPv6 /64) held
        /// its share of the reply cache (`ReplyCacheConfig::max_entries_per_source`).
        over_share,
        /// Requests from sources without a valid cookie refused unrun: such sources, all told,
        /// held their pool of the reply cache or of the calls in flight (`in_flight.rs`).
        unverified_refused,
        /// Requests larger than `max_datagram`, refused without running.
        oversized,
        /// Requests below their client's watermark (late duplicates of calls it is done
        /// with), dropped without running.
        stale,
        /// Requests naming a client instance or call that another IP address owns: a call
        /// that address made, dropped unanswered, or a new call under an instance whose
        /// watermark that address holds, refused unrun (NOT_PROCESSED).
        other_source,
    }
}
