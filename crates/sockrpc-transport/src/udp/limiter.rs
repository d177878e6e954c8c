//! Per-source rate limit for datagrams from sources without a valid cookie.
//!
//! Only unverified sources are limited: they are the ones a spoofer can impersonate, so they
//! are what could turn this server into a reflector. A token bucket per source (per IPv4
//! address, per IPv6 /64 — one host usually owns a whole /64) in a bounded table; when the
//! table is full and nothing in it is idle, new sources share one overflow bucket, so a flood
//! of spoofed addresses costs bounded memory and gets bounded answers.

use std::{
    collections::HashMap,
    net::IpAddr,
    time::{Duration, Instant},
};

/// Rate limit settings for unverified sources.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct RateLimit {
    /// Datagrams per second answered (or run) per source. Default 200.
    pub per_second: f64,
    /// Burst allowance per source. Default 400.
    pub burst: f64,
    /// Sources tracked at once. Default 4096.
    pub max_sources: usize,
}

impl Default for RateLimit {
    fn default() -> RateLimit {
        RateLimit {
            per_second: 200.0,
            burst: 400.0,
            max_sources: 4096,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn take(&mut self, limit: &RateLimit, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * limit.per_second).min(limit.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The table of buckets.
pub(crate) struct Limiter {
    limit: RateLimit,
    table: HashMap<IpAddr, Bucket>,
    overflow: Bucket,
    last_sweep: Instant,
}

/// Sweeps for idle entries at most this often, so a full table under a flood costs one scan
/// per interval rather than one per datagram.
const SWEEP_EVERY: Duration = Duration::from_millis(100);

pub(crate) fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::V6(octets.into())
            }
        },
    }
}

impl Limiter {
    pub(crate) fn new(limit: RateLimit) -> Limiter {
        let now = Instant::now();
        Limiter {
            limit,
            table: HashMap::new(),
            overflow: Bucket {
                tokens: limit.burst,
                last: now,
            },
            last_sweep: now,
        }
    }

    /// Whether one more datagram from `ip` may be served now.
    pub(crate) fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        let key = source_key(ip);
        let limit = self.limit;
        if let Some(bucket) = self.table.get_mut(&key) {
            return bucket.take(&limit, now);
        }
        if self.table.len() >= limit.max_sources
            && now.saturating_duration_since(self.last_sweep) >= SWEEP_EVERY
        {
            self.last_sweep = now;
            // A bucket idle long enough to be full again is the same as no bucket.
            let refill = Duration::from_secs_f64(limit.burst / limit.per_second.max(f64::EPSILON));
            self.table
                .retain(|_, b| now.saturating_duration_since(b.last) < refill);
        }
        if self.table.len() >= limit.max_sources {
            return self.overflow.take(&limit, now);
        }
        let mut bucket = Bucket {
            tokens: limit.burst,
            last: now,
        };
        let allowed = bucket.take(&limit, now);
        self.table.insert(key, bucket);
        allowed
    }

    /// Sources tracked.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.table.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_per_source_and_bounded_table() {
        let limit = RateLimit {
            per_second: 10.0,
            burst: 3.0,
            max_sources: 2,
        };
        let mut limiter = Limiter::new(limit);
        let now = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        for _ in 0..3 {
            assert!(limiter.allow(a, now));
        }
        assert!(!limiter.allow(a, now));
        assert!(limiter.allow(a, now + Duration::from_millis(150)));
        // IPv6 hosts in one /64 share a bucket.
        let b: IpAddr = "2001:db8::1".parse().expect("ip");
        let c: IpAddr = "2001:db8::2".parse().expect("ip");
        assert!(limiter.allow(b, now));
        assert!(limiter.allow(c, now));
        assert_eq!(limiter.tracked(), 2);
        // Full table: new sources share the overflow bucket, the table does not grow.
        for i in 0..10u8 {
            limiter.allow(IpAddr::from([10, 1, 0, i]), now);
        }
        assert_eq!(limiter.tracked(), 2);
        assert!(!limiter.allow(IpAddr::from([10, 2, 0, 0]), now));
    }
}
