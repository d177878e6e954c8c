//! GOAWAYs a server repeats cost the client no more than the calls they refuse.
//!
//! The client walked its whole table of calls in flight for every GOAWAY, under the
//! connection's lock, to find the calls above the frame's last id: a server repeating one (22
//! bytes a frame) while thousands of calls waited made the client walk them all per frame, and
//! every caller on the connection waited for the lock meanwhile (100,000 GOAWAYs with 4,000
//! calls in flight took 16 s of the driver's time in a debug build, with 10 calls 0.2 s). A
//! GOAWAY only takes calls away, and none starts after one, so only the calls between its id
//! and the lowest one named before are left to refuse. Counted here as the ids looked up and
//! ring positions walked (`State::goaway_looked`); every call still ends as the GOAWAYs say.

use super::scripted_tests::{connected, scripted};
use bytes::{Bytes, BytesMut};
use sockrpc_protocol::frame;
use sockrpc_protocol::{Code, MethodPath, Request};
use std::time::Duration;

/// Calls in flight when the GOAWAYs come.
const CALLS: u32 = 500;
/// GOAWAYs naming an id above every call, before those that fall.
const REPEATS: usize = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_and_falling_goaways_look_at_each_call_about_once() {
    let mut then = BytesMut::new();
    // Above every call, again and again: they refuse none.
    for _ in 0..REPEATS {
        frame::encode_goaway(&mut then, u32::MAX, Code::Unavailable, "draining");
    }
    // Then falling one id at a time, from above the calls to 0: each refuses the call just
    // above its id, and the last leaves none.
    for last in (0..CALLS + 10).rev() {
        frame::encode_goaway(&mut then, last, Code::Unavailable, "draining");
    }
    let (addr, go) = scripted(2 * CALLS as usize, then).await;
    let conn = connected(addr).await;
    let path = MethodPath::from_static("/t.S/Hold");
    let calls: Vec<_> = (0..CALLS)
        .map(|_| {
            let call = conn.unary(path.clone(), Request::new(Bytes::from_static(b"a")));
            tokio::spawn(call)
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(10), async {
        while conn.in_flight() < CALLS as usize {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("every call in flight");
    go.send(()).expect("server alive");
    for call in calls {
        let result = tokio::time::timeout(Duration::from_secs(10), call)
            .await
            .expect("refused in time")
            .expect("call task");
        let status = result.expect_err("the GOAWAYs refuse every call");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(status.is_not_processed(), "{status:?}");
    }
    let looked = conn.shared().lock().goaway_looked;
    eprintln!("{looked} ids and positions looked at");
    assert!(
        looked <= 2 * CALLS as usize,
        "{looked} ids and positions looked at for {CALLS} calls refused by {} GOAWAYs",
        REPEATS as u32 + CALLS + 10
    );
}
