//! An endpoint discovery inserts as a pick-first pass ends on an empty set: the insert finds
//! the pass still running (its flag set) and starts none, then the pass gives its flag back.
//! Nothing started a pass after that until the next call (an unconnected member with no
//! channel is not in the driver's upkeep), so `Balanced::ready` waited in vain. The schedule is
//! replayed by hand (the pass's flag held, the insert, the pass task's end), as the window,
//! between the pass's last look at the set and its flag's clearing, has no await in it.

use super::health_tests::{hello_server, without_time_passing};
use super::in_order::{pass_ended, Passing};
use super::{BalanceBuilder, PickFirst};
use crate::discovery::{Change, Discovery};
use sockrpc_transport::endpoint::Endpoint;
use std::sync::atomic::Ordering;
use std::sync::Arc;

#[tokio::test(start_paused = true)]
async fn an_endpoint_inserted_as_a_pass_ends_on_an_empty_set_is_connected() {
    let port = hello_server().await;
    let (changes, discovery) = Discovery::channel();
    let balanced = BalanceBuilder::default()
        .picker(PickFirst::new())
        .build(discovery);
    let shared = Arc::clone(&balanced.shared);
    // A pass runs, and has just found the set empty.
    assert!(!shared.passing.swap(true, Ordering::AcqRel), "no pass yet");
    let passing = Passing::held(&shared);
    // Discovery inserts an endpoint: the driver applies it, and finds the pass running.
    let insert = Change::insert(
        format!("127.0.0.1:{port}"),
        Endpoint::new("127.0.0.1", port),
    );
    changes.send(insert).expect("the driver listens");
    without_time_passing("the insert applied", || shared.snapshot().list().len() == 1).await;
    assert!(
        shared.passing.load(Ordering::Acquire),
        "the pass still runs"
    );
    // The pass ends, its flag given back. No call comes; the endpoint is connected all the same.
    pass_ended(passing, &Arc::downgrade(&shared));
    let member = Arc::clone(&shared.snapshot().list()[0]);
    without_time_passing("the inserted endpoint connected", || member.is_connected()).await;
}
