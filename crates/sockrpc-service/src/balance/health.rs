//! Client-side health checking: each endpoint of a balanced channel is watched through a
//! [`HealthProbe`], and one that reports `NOT_SERVING` leaves the rotation until it reports
//! `SERVING` again.
//!
//! The probe is a trait because the standard probe speaks `grpc.health.v1.Health`, whose
//! generated client lives in the `sockrpc-health` crate (generated code refers to
//! `::sockrpc::`, which this crate cannot depend on): `sockrpc_health::GrpcHealthProbe`
//! implements it with the `Watch` call.

use super::member::{Health, Member};
use crate::{BoxStream, Channel};
use sockrpc_protocol::Code;
use std::sync::Weak;
use std::time::Duration;

/// Watches one endpoint's health over its channel.
pub trait HealthProbe: Send + Sync + 'static {
    /// A stream of answers, `true` for `SERVING`: the current status first, then each change.
    /// The balancer restarts it (after a pause) when it ends or fails, except when it fails with
    /// `Unimplemented`: the server has no health service and counts as serving.
    fn watch(&self, channel: Channel) -> BoxStream<bool>;
}

/// Pause before watching again after the stream ended or failed.
const REWATCH: Duration = Duration::from_millis(200);

/// Runs `probe` on `member` until the member is gone (the member aborts the task as it goes:
/// between changes a watch stream says nothing, so the loop would not see it go); `changed` is
/// called on each change.
pub(crate) async fn watch_member(
    member: Weak<Member>,
    probe: std::sync::Arc<dyn HealthProbe>,
    changed: impl Fn() + Send,
) {
    loop {
        let Some(channel) = member.upgrade().and_then(|m| m.channel()) else {
            return;
        };
        let mut stream = probe.watch(channel);
        loop {
            let next = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await;
            let Some(member) = member.upgrade() else {
                return;
            };
            let health = match next {
                Some(Ok(true)) => Health::Serving,
                Some(Ok(false)) => Health::NotServing,
                Some(Err(status)) if status.code() == Code::Unimplemented => {
                    if member.set_health(Health::Serving) {
                        changed();
                    }
                    return;
                }
                Some(Err(status)) => {
                    tracing::debug!(endpoint = member.key(), error = %status, "health watch failed");
                    // Unknown until the server answers again (its connection may be gone).
                    if member.set_health(Health::Unknown) {
                        changed();
                    }
                    break;
                }
                None => break,
            };
            if member.set_health(health) {
                tracing::debug!(endpoint = member.key(), ?health, "health changed");
                changed();
            }
        }
        tokio::time::sleep(REWATCH).await;
    }
}
