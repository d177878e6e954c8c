//! Stateless cookies: proof that a source address receives what this server sends it.
//!
//! ```text
//! cookie(src) = SipHash_k(0 ‖ ip ‖ port ‖ bucket) ‖ SipHash_k(1 ‖ ip ‖ port ‖ bucket)
//! bucket      = (now − server start) / lifetime
//! valid       = matches the current bucket or the one before (so 1–2 lifetimes)
//! ```
//!
//! `k` is 128 random bits drawn when the server starts (`std::hash::RandomState`, seeded from
//! the OS) and never leaves the process, so nobody else can compute a cookie for an address
//! they cannot receive at; the server keeps no per-client state (as DNS cookies, RFC 7873).
//!
//! Why std's keyed SipHash and not a MAC crate: SipHash is a keyed PRF designed for exactly
//! this (short inputs, secret key, attacker sees outputs), a cookie only needs to be unforgeable
//! by someone blind to it, and the key and the algorithm never outlive this process — so std's
//! "the algorithm may change between releases" does not matter, and no dependency is added.

use super::datagram::{Cookie, COOKIE_LEN};
use std::{
    hash::{BuildHasher, RandomState},
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

/// Mints and checks cookies with a per-server secret key.
pub(crate) struct CookieJar {
    key: RandomState,
    started: Instant,
    lifetime: Duration,
}

impl CookieJar {
    /// A jar with a fresh random key; a cookie stays valid for `lifetime` to 2 × `lifetime`.
    pub(crate) fn new(lifetime: Duration) -> CookieJar {
        CookieJar {
            key: RandomState::new(),
            started: Instant::now(),
            lifetime: lifetime.max(Duration::from_secs(1)),
        }
    }

    fn bucket(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.started);
        (elapsed.as_millis() / self.lifetime.as_millis().max(1)) as u64
    }

    fn mint(&self, addr: SocketAddr, bucket: u64) -> Cookie {
        let ip = match addr.ip() {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        };
        let half = |domain: u8| self.key.hash_one((domain, ip, addr.port(), bucket));
        let mut cookie = [0u8; COOKIE_LEN];
        cookie[..8].copy_from_slice(&half(0).to_be_bytes());
        cookie[8..].copy_from_slice(&half(1).to_be_bytes());
        cookie
    }

    /// The cookie `addr` should use now.
    #[cfg(test)]
    pub(crate) fn current(&self, addr: SocketAddr, now: Instant) -> Cookie {
        self.mint(addr, self.bucket(now))
    }

    /// Whether `cookie` is one this server gave `addr` recently. All zeros means "none".
    #[cfg(test)]
    pub(crate) fn check(&self, addr: SocketAddr, cookie: &Cookie, now: Instant) -> bool {
        self.verify(&mut LastCookie::default(), addr, cookie, now).0
    }

    /// Whether `cookie` is one this server gave `addr` recently (all zeros means "none"), and
    /// the cookie `addr` should use now. `last` remembers the last current cookie verified, so
    /// a source that sends again within the same bucket costs a comparison, not four SipHashes.
    pub(crate) fn verify(
        &self,
        last: &mut LastCookie,
        addr: SocketAddr,
        cookie: &Cookie,
        now: Instant,
    ) -> (bool, Cookie) {
        let bucket = self.bucket(now);
        if let Some((a, b, known)) = last.0 {
            if a == addr && b == bucket && same(&known, cookie) {
                return (true, known);
            }
        }
        let current = self.mint(addr, bucket);
        if cookie.iter().all(|&b| b == 0) {
            return (false, current);
        }
        if same(&current, cookie) {
            last.0 = Some((addr, bucket, current));
            return (true, current);
        }
        let previous = bucket > 0 && same(&self.mint(addr, bucket - 1), cookie);
        (previous, current)
    }
}

/// Compares every byte, so the time taken says nothing about where a guess differs.
fn same(a: &Cookie, b: &Cookie) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// The last source whose current cookie [`CookieJar::verify`] accepted, with the bucket and
/// the cookie: only ever a cookie this jar minted for that address in that bucket, so taking it
/// again as valid is what minting it again would say. One per server receive loop.
#[derive(Debug, Default)]
pub(crate) struct LastCookie(Option<(SocketAddr, u64, Cookie)>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_bind_address_and_expire() {
        let jar = CookieJar::new(Duration::from_secs(10));
        let a: SocketAddr = "127.0.0.1:1000".parse().expect("addr");
        let b: SocketAddr = "127.0.0.1:1001".parse().expect("addr");
        let now = Instant::now();
        let cookie = jar.current(a, now);
        assert!(jar.check(a, &cookie, now));
        assert!(!jar.check(b, &cookie, now));
        assert!(!jar.check(a, &[0; COOKIE_LEN], now));
        assert!(jar.check(a, &cookie, now + Duration::from_secs(10)));
        assert!(!jar.check(a, &cookie, now + Duration::from_secs(25)));
        let other = CookieJar::new(Duration::from_secs(10));
        assert!(!other.check(a, &cookie, now));
    }

    #[test]
    fn the_remembered_cookie_is_only_taken_from_its_address_in_its_bucket() {
        let jar = CookieJar::new(Duration::from_secs(10));
        let a: SocketAddr = "127.0.0.1:1000".parse().expect("addr");
        let b: SocketAddr = "127.0.0.1:1001".parse().expect("addr");
        let now = Instant::now();
        let mut last = LastCookie::default();
        let cookie = jar.current(a, now);
        assert_eq!(jar.verify(&mut last, a, &cookie, now), (true, cookie));
        assert_eq!(
            jar.verify(&mut last, a, &cookie, now),
            (true, cookie),
            "remembered"
        );
        assert!(!jar.verify(&mut last, b, &cookie, now).0, "another address");
        let mut forged = cookie;
        forged[15] ^= 1;
        assert!(!jar.verify(&mut last, a, &forged, now).0);
        let later = now + Duration::from_secs(10);
        let (valid, fresh) = jar.verify(&mut last, a, &cookie, later);
        assert!(valid, "the bucket before is still valid");
        assert_ne!(fresh, cookie, "but a new one is handed out");
        assert!(
            !jar.verify(&mut last, a, &cookie, now + Duration::from_secs(25))
                .0
        );
    }
}
