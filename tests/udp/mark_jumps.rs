//! A verified client whose watermark jumps by almost 2³¹ ids, over and over: each REQUEST
//! sweeps at most 256 ids from a cursor kept behind the mark (`watermark.rs`), so the cursor
//! falls ever further behind. Once it is 2³¹ or more behind, the ids it sweeps next are no
//! longer before the mark in serial order (RFC 1982) but after it: calls the client has not
//! said it is done with. Before, their answers were dropped, and a retransmission of such a
//! call ran it a second time.

use crate::at_most_once::HandBuilt;
use crate::in_flight_share::cookie_for;
use crate::paths::call;
use crate::support::{BOUND, ECHO};
use bytes::BytesMut;
use prost::Message as _;
use sockrpc::service::udp::datagram::{self, Header, Kind, COOKIE_LEN};
use sockrpc::service::udp::{ReplyCacheConfig, UdpServerConfig};
use sockrpc::MetadataMap;
use sockrpc_tests::echo::EchoRequest;
use tokio::net::UdpSocket;

/// The largest forward move of a mark one REQUEST can make (serial order: under 2³¹).
const JUMP: u32 = (1 << 31) - 1;

/// An `Echo` REQUEST, its message's id the call id, with watermark `done_below`.
fn echo(call_id: u32, done_below: u32, cookie: [u8; COOKIE_LEN]) -> BytesMut {
    let header = Header {
        kind: Kind::Request,
        flags: 0,
        client_instance: 0x3A3A,
        call_id,
        cookie,
    };
    let message = EchoRequest {
        payload: bytes::Bytes::new(),
        id: u64::from(call_id),
    }
    .encode_to_vec();
    let mut out = BytesMut::new();
    let metadata = MetadataMap::new();
    datagram::encode_request(
        &mut out,
        &header,
        None,
        Some(done_below),
        &ECHO,
        &metadata,
        &message,
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_never_drops_answers_past_the_mark() {
    let server = HandBuilt::start(UdpServerConfig::default(), ReplyCacheConfig::default()).await;
    let socket = UdpSocket::bind("127.0.0.5:0")
        .await
        .expect("bind 127.0.0.5");
    socket.connect(server.addr).await.expect("connect");
    let cookie = cookie_for(&socket).await;
    let test = async {
        // The mark at 1000, then two jumps: to 1000 + JUMP, then round to 998. The sweep's
        // cursor is at 1512, far more than 2³¹ ids behind 998.
        let mut mark = 1000u32;
        call(&socket, &echo(mark, mark, cookie)).await;
        for _ in 0..2 {
            mark = mark.wrapping_add(JUMP);
            call(&socket, &echo(mark, mark, cookie)).await;
        }
        assert_eq!(mark, 998);
        // A call after the mark, answered; the client has not said it is done with it.
        let kept = echo(2000, mark, cookie);
        call(&socket, &kept).await;
        // Later calls, each sweeping from the cursor (which then passes 2000 within two).
        for id in 2001..2005 {
            call(&socket, &echo(id, mark, cookie)).await;
        }
        // The answer of 2000 lost (say): the client retransmits it.
        call(&socket, &kept).await;
        let runs = server.handlers.runs();
        assert_eq!(
            runs.get(&2000),
            Some(&1),
            "call 2000 ran once, its retransmission answered from the cache: {:?}",
            server.counters()
        );
    };
    tokio::time::timeout(BOUND, test).await.expect("bounded");
    server.shutdown().await;
}
