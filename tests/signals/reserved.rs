//! The `sockrpc-` metadata prefix is reserved.

use super::support::*;

use bytes::Bytes;
use prost::Message as _;
use sockrpc::{MetadataMap, Request, Status};
use sockrpc_tests::echo::{EchoReply, EchoRequest};
use std::sync::atomic::Ordering;
use tokio::io::AsyncWriteExt;

// ---------------------------------------------------------------------------------------------
// (3) The `sockrpc-` prefix is reserved.

#[test]
fn sockrpc_prefixed_metadata_keys_are_refused_on_insert() {
    let mut map = MetadataMap::new();
    for key in [
        "sockrpc-x",
        "sockrpc-not-processed",
        "sockrpc-udp-reissue",
        "Sockrpc-Not-Processed",
    ] {
        assert!(map.insert_str(key, "1").is_err(), "{key} accepted");
    }
    assert!(map.insert_bin("sockrpc-x-bin", vec![1u8].into()).is_err());
    assert!(map.is_empty(), "{map:?}");
    // Only the exact prefix: look-alikes are ordinary keys.
    map.insert_str("sockrpc", "1")
        .expect("no dash: not the prefix");
    map.insert_str("x-sockrpc-y", "1")
        .expect("not at the start");
    map.insert_str("sockrpcx", "1").expect("not the prefix");
    assert_eq!(map.len(), 3);

    let mut request = Request::new(EchoRequest::default());
    assert!(request
        .metadata_mut()
        .insert_str("sockrpc-udp-reissue", "0000000000000001.00000001")
        .is_err());
    let mut status = Status::internal("x");
    assert!(status
        .metadata_mut()
        .insert_str("sockrpc-not-processed", "1")
        .is_err());
}

/// A raw OPEN carrying the old signal keys is an ordinary call, on a server with UDP and one
/// without: it runs once, answers OK without the refusal flag, and the handler never sees the
/// reserved keys (only the ordinary one next to them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_keys_in_a_raw_open_reach_no_handler_and_signal_nothing() {
    for udp in [false, true] {
        let server = Running::echo(udp).await;
        let mut raw = raw_connect(server.tcp).await;
        let mut out = Vec::new();
        put_unary(
            &mut out,
            1,
            &ECHO,
            &[
                ("sockrpc-udp-reissue", "0000000000000001.00000001"),
                ("sockrpc-not-processed", "1"),
                ("x-keep", "yes"),
            ],
            &EchoRequest {
                payload: Bytes::from_static(b"plain"),
                id: 5,
            },
        );
        raw.write_all(&out).await.expect("write");
        let (end, before) = read_until(&mut raw, END, 1).await;
        let ended = parse_end(&end.body);
        assert_eq!(ended.code, 0, "udp={udp}: {}", ended.message);
        assert_eq!(end.flags & FLAG_NOT_PROCESSED, 0, "udp={udp}");
        let message = before
            .iter()
            .find(|f| f.kind == MESSAGE && f.call_id == 1)
            .unwrap_or_else(|| panic!("udp={udp}: no answer message in {before:?}"));
        let reply = EchoReply::decode(&message.body[..]).expect("EchoReply");
        assert_eq!((reply.id, &reply.payload[..]), (5, &b"plain"[..]));
        assert_eq!(
            server.handlers.echoes.load(Ordering::SeqCst),
            1,
            "udp={udp}: ran once"
        );
        assert_eq!(
            *server.handlers.seen_keys.lock().expect("lock"),
            [vec!["x-keep".to_owned()]],
            "udp={udp}: the handler saw only the ordinary key"
        );
        drop(raw);
        server.stop().await;
    }
}
