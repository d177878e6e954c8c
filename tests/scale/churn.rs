//! Discovery churn: endpoints that come and go under fresh keys (pods replaced, each with an
//! address of its own) must not grow a balanced channel's per-key state without end. The
//! channel keeps each key's count of answered calls after the endpoint leaves
//! (`Balanced::answered`), so the departed keys it keeps are bounded.

use sockrpc::service::balance::{BalanceBuilder, DEPARTED_KEPT};
use sockrpc::service::discovery::{Change, Discovery};
use sockrpc::Endpoint;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn departed_keys_are_bounded_under_churn() {
    // A port nobody listens on: each endpoint's connection attempt is refused at once.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr");
    let (changes, discovery) = Discovery::channel();
    let channel = BalanceBuilder::default().build(discovery);
    let churned = 2 * DEPARTED_KEPT + 500;
    for i in 0..churned {
        let key = format!("pod-{i}");
        let endpoint = Endpoint::new(closed.ip().to_string(), closed.port());
        changes
            .send(Change::insert(key.clone(), endpoint))
            .expect("driver alive");
        changes.send(Change::Remove(key)).expect("driver alive");
    }
    // The last change applied: the set is empty, and what the channel keeps is settled.
    changes
        .send(Change::insert(
            "last",
            Endpoint::new(closed.ip().to_string(), closed.port()),
        ))
        .expect("driver alive");
    for _ in 0..1000 {
        if channel.stats().iter().any(|s| s.key == "last") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        channel.stats().len(),
        1,
        "only the last endpoint is current"
    );
    let kept = channel.answered().len();
    assert!(
        kept <= 2 * DEPARTED_KEPT + 1,
        "{kept} keys kept after {churned} endpoints came and went"
    );
    assert!(kept > DEPARTED_KEPT, "recent departures are kept: {kept}");
}
