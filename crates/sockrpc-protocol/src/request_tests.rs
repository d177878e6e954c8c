//! `Request`'s own tests: its size, shared connection info, the `grpc-timeout` entry.

use super::*;

/// Every move of a request, a `Call` or a call's future through the client's layers copies
/// the request (docs/PERFORMANCE.md): session 24 brought `Request<Bytes>` to 112 bytes, and
/// the fixed deadline must not undo it (`request_timing.rs` packs it with the timeout), and
/// session 60 to 96 (its extensions a pointer, `extensions.rs`).
#[test]
fn a_request_of_bytes_is_at_most_96_bytes() {
    assert!(std::mem::size_of::<Request<bytes::Bytes>>() <= 96);
}

#[test]
fn shared_conn_info_is_copied_on_write() {
    let peer: SocketAddr = "127.0.0.1:1000".parse().expect("addr");
    let local: SocketAddr = "127.0.0.1:2000".parse().expect("addr");
    let shared = Arc::new(ConnInfo::new(TransportKind::Tcp, Some(peer), Some(local)));
    let mut first = Request::new(());
    first.set_shared_conn_info(Some(Arc::clone(&shared)));
    let mut second = Request::new(());
    second.set_shared_conn_info(first.shared_conn_info().cloned());
    assert!(Arc::ptr_eq(
        second.shared_conn_info().expect("set"),
        &shared
    ));

    // Changing one request's peer leaves the connection's record and the other alone.
    let other: SocketAddr = "127.0.0.2:3000".parse().expect("addr");
    second.set_remote_addr(Some(other));
    assert_eq!(second.remote_addr(), Some(other));
    assert_eq!(second.conn_info().expect("set").local, Some(local));
    assert_eq!(first.remote_addr(), Some(peer));
    assert_eq!(shared.peer, Some(peer));

    // Without any, a peer address makes a record of its own.
    let mut bare = Request::new(());
    bare.set_remote_addr(Some(other));
    let conn = bare.conn_info().expect("made");
    assert_eq!(
        (conn.transport, conn.peer),
        (TransportKind::Other, Some(other))
    );
}

#[test]
fn resolve_timeout_moves_a_valid_grpc_timeout_entry_into_the_timeout() {
    let with_entry = |value: &str| {
        let mut request = Request::new(());
        request
            .metadata_mut()
            .insert_str(crate::GRPC_TIMEOUT_KEY, value)
            .expect("ascii");
        request
    };
    let mut request = with_entry("250m");
    assert_eq!(request.resolve_timeout(), Some(Duration::from_millis(250)));
    assert_eq!(request.timeout(), Some(Duration::from_millis(250)));
    assert!(!request.metadata().contains_key(crate::GRPC_TIMEOUT_KEY));

    // A timeout set wins; the entry is then left alone, as the channel leaves it.
    let mut request = with_entry("250m");
    request.set_timeout(Duration::from_secs(3));
    assert_eq!(request.resolve_timeout(), Some(Duration::from_secs(3)));
    assert_eq!(
        request.metadata().get_str(crate::GRPC_TIMEOUT_KEY),
        Some("250m")
    );

    // Not a gRPC timeout: no deadline, and the entry stays.
    let mut request = with_entry("250ms");
    assert_eq!(request.resolve_timeout(), None);
    assert_eq!(
        request.metadata().get_str(crate::GRPC_TIMEOUT_KEY),
        Some("250ms")
    );

    assert_eq!(Request::new(()).resolve_timeout(), None);
}
