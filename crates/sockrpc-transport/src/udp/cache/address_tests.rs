//! The reply cache's answers and watermarks, bound to the address that made them: the client
//! instance is plain text in every datagram, so it alone gives nothing away.

use super::size::ENTRY_OVERHEAD;
use super::*;
use std::net::IpAddr;
use std::time::Duration;

const PATH: &[u8] = b"/p.S/M";
/// The client's address.
const HOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

fn path() -> Bytes {
    Bytes::from_static(PATH)
}

fn ok(n: usize) -> Result<Response<Bytes>, Status> {
    Ok(Response::new(Bytes::from(vec![1u8; n])))
}

/// The instance is plain text on the wire: a call's answer goes only to the address that made
/// it, over UDP and over TCP, whatever form of the address (IPv4-mapped or not) the socket
/// reports; and a peer with no address (a Unix socket, on this host) only calls made from a
/// loopback address.
#[test]
fn answers_go_only_to_the_address_that_made_the_call() {
    let cache = ReplyCache::default();
    let other = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
    let mapped = IpAddr::V6(std::net::Ipv4Addr::LOCALHOST.to_ipv6_mapped());
    assert!(matches!(cache.begin(HOST, 1, 1, &path(), None), Begin::New));
    assert!(matches!(
        cache.lookup(Some(other), 1, 1, PATH),
        Lookup::Missing
    ));
    assert!(matches!(
        cache.begin(other, 1, 1, &path(), None),
        Begin::OtherSource
    ));
    cache.complete(1, 1, ok(3));
    assert!(matches!(
        cache.begin(other, 1, 1, &path(), None),
        Begin::OtherSource
    ));
    assert!(matches!(
        cache.begin(Source::new(other, false), 1, 1, &path(), None),
        Begin::OtherSource
    ));
    assert!(matches!(
        cache.lookup(Some(other), 1, 1, PATH),
        Lookup::Missing
    ));
    assert!(matches!(
        cache.lookup(None, 1, 1, PATH),
        Lookup::Done(Ok(_))
    ));
    let remote = IpAddr::V6("2001:db8::1".parse().expect("addr"));
    assert!(matches!(
        cache.begin(remote, 2, 1, &path(), None),
        Begin::New
    ));
    cache.complete(2, 1, ok(3));
    assert!(matches!(cache.lookup(None, 2, 1, PATH), Lookup::Missing));
    assert!(matches!(
        cache.lookup(Some(remote), 2, 1, PATH),
        Lookup::Done(Ok(_))
    ));
    assert!(matches!(
        cache.lookup(Some(mapped), 1, 1, PATH),
        Lookup::Done(Ok(_))
    ));
    assert!(matches!(
        cache.begin(mapped, 1, 1, &path(), None),
        Begin::Done(Ok(_))
    ));
}

/// Another address can neither move a client's watermark (and so sweep its answers) nor
/// start calls under its instance; once the mark is unmoved for the ttl (the client moved:
/// NAT rebinding), it passes to the next address.
#[test]
fn a_watermark_moves_only_for_its_own_address() {
    let ttl = Duration::from_millis(50);
    let cache = ReplyCache::new(ReplyCacheConfig {
        ttl,
        ..ReplyCacheConfig::default()
    });
    let other = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
    assert!(matches!(
        cache.begin(HOST, 4, 1, &path(), Some(1)),
        Begin::New
    ));
    cache.complete(4, 1, ok(3));
    // Done with nothing past 1 yet: the answer of 1 is kept.
    assert!(matches!(
        cache.begin(other, 4, 50, &path(), Some(50)),
        Begin::Foreign
    ));
    cache.ack(other, 4, 60);
    assert!(matches!(
        cache.lookup(Some(HOST), 4, 1, PATH),
        Lookup::Done(Ok(_))
    ));
    assert!(matches!(
        cache.begin(Source::new(other, false), 4, 2, &path(), None),
        Begin::Foreign
    ));
    // The owner's own calls carry on, its mark where it set it.
    assert!(matches!(
        cache.begin(HOST, 4, 2, &path(), Some(1)),
        Begin::New
    ));
    assert_eq!(cache.len(), 1);
    // The owner silent past the ttl: the mark passes to the next address, afresh.
    std::thread::sleep(ttl + Duration::from_millis(10));
    assert!(matches!(
        cache.begin(other, 4, 70, &path(), Some(70)),
        Begin::New
    ));
}

/// What the address adds to an entry is counted: even an empty answer counts its key and slot
/// in the map (the slot with the address) against the byte bound.
#[test]
fn an_entry_with_its_address_counts_what_it_takes() {
    let entry = std::mem::size_of::<(Key, Slot)>();
    assert!(ENTRY_OVERHEAD >= entry);
    let cache = ReplyCache::default();
    assert!(matches!(cache.begin(HOST, 1, 1, &path(), None), Begin::New));
    cache.complete(1, 1, ok(0));
    assert!(cache.bytes() >= entry, "{} < {entry}", cache.bytes());
}
