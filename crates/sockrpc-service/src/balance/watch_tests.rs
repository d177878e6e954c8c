//! A member's health watch started after the balanced channel closed: the connect task looks
//! at the channel's level, then (with no await between, on another thread) the channel closes
//! and `shut_down` finds no watch to stop, then the task starts the watch. The test replays
//! that interleaving step by step, as no real race window is wide enough to hit on demand.

use super::follow::watch_health;
use super::health::HealthProbe;
use super::member::{Member, Members};
use super::BalanceBuilder;
use crate::discovery::Discovery;
use crate::{BoxStream, Channel};
use sockrpc_protocol::Status;
use sockrpc_transport::endpoint::Endpoint;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Counts the watches asked for; each fails at once (as on a closed channel).
struct Counting(Arc<AtomicUsize>);

impl HealthProbe for Counting {
    fn watch(&self, _channel: Channel) -> BoxStream<bool> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(Once(Some(Err(Status::unavailable("channel closed")))))
    }
}

/// A stream of one item.
struct Once(Option<Result<bool, Status>>);

impl futures_core::Stream for Once {
    type Item = Result<bool, Status>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::task::Poll::Ready(self.0.take())
    }
}

#[tokio::test(start_paused = true)]
async fn a_health_watch_started_just_after_the_close_stops_at_once() {
    let watches = Arc::new(AtomicUsize::new(0));
    let (_changes, discovery) = Discovery::channel();
    let balanced = BalanceBuilder::default()
        .health_check(Counting(Arc::clone(&watches)))
        .build(discovery);
    let shared = Arc::clone(&balanced.shared);
    let endpoint = Endpoint::new("127.0.0.1", 1);
    let member = Arc::new(Member::new(
        "127.0.0.1:1".into(),
        endpoint.clone(),
        1,
        shared.decay,
    ));
    *shared.members.write().expect("members") =
        Arc::new(Members::new(1, vec![Arc::clone(&member)]));
    // The connect task's connection is up and set; it looked at the level: open.
    let _ = member.set_channel(Channel::lazy(endpoint).expect("lazy"));
    assert!(!balanced.is_closed());
    // The close runs now: no watch handle to stop yet.
    balanced.close();
    // The connect task goes on and starts the watch.
    let probe = shared.probe.clone().expect("probe");
    watch_health(&shared, &member, &probe);
    // Left running, it would look for the member's connection (and watch on each) for as long
    // as the channel lives.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !member.health_watch_running(),
        "the watch ran on after the close"
    );
    let asked = watches.load(Ordering::SeqCst);
    assert!(
        asked <= 1,
        "the watch ran on after the close: {asked} watches"
    );
}
