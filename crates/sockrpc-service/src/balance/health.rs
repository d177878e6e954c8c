//! Client-side health checking: each endpoint of a balanced channel is watched through a
//! [`HealthProbe`], and one that reports `NOT_SERVING` leaves the rotation until it reports
//! `SERVING` again. So does one whose watch stream ends, cleanly or failing (but for
//! `UNIMPLEMENTED`), while its connection stays up: its last answer no longer stands, and it
//! takes calls again once a new watch answers `SERVING` (grpc-go's health client, gRFC A17).
//!
//! The probe is a trait because the standard probe speaks `grpc.health.v1.Health`, whose
//! generated client lives in the `sockrpc-health` crate (generated code refers to
//! `::sockrpc::`, which this crate cannot depend on): `sockrpc_health::GrpcHealthProbe`
//! implements it with the `Watch` call.
//!
//! A watch belongs to one connection, as grpc-go's health stream belongs to its transport:
//! what it says is that server's word, and a `Watch` stream stays open for as long as the
//! server's answer stands. So it ends when its connection stops taking calls (the server sent
//! it away with GOAWAY, or it broke), and starts again on the member's next connection. Left
//! open on a connection the server is draining, it would hold the server's graceful shutdown
//! for the whole grace period. It also moves when the member's connect task sets a new channel:
//! kept for the watch, the old channel's pool would reconnect by itself, a second connection
//! to the endpoint. Between connections it waits for word of the next (its pool's connection
//! coming up, a channel set): a member without a connection costs nothing, and its next one is
//! watched as soon as it is up.

use super::member::{Health, Member};
use crate::{BoxStream, Channel};
use sockrpc_protocol::{Code, Status};
use sockrpc_transport::backoff::BackoffState;
use sockrpc_transport::ClientConnection;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Watches one endpoint's health over its channel.
pub trait HealthProbe: Send + Sync + 'static {
    /// A stream of answers, `true` for `SERVING`: the current status first, then each change.
    /// The balancer restarts it when it ends or fails, except when it fails with
    /// `Unimplemented`: the server has no health service and counts as serving (until the
    /// connection goes). An end (a clean one too) or another error counts the endpoint as
    /// failing, its last answer gone, until a new stream answers (fail-fast calls do not wait
    /// for it), as grpc-go's health client does; the watch is restarted 200 ms after a stream
    /// that answered, else with the endpoint's reconnect backoff. The balancer drops the
    /// stream when the connection it runs on is sent away or closes, and watches again on the
    /// endpoint's next connection.
    fn watch(&self, channel: Channel) -> BoxStream<bool>;
}

/// Pause before watching again after a stream that answered ended: a server whose `Watch`
/// answers once and ends (a `Check` in disguise) is not asked in a loop. One that ended or
/// failed without an answer waits out the backoff instead. Either way the endpoint is failing
/// meanwhile, until the next stream answers. (grpc-go asks again at once after a stream that
/// answered, and backs off only from the next failure.)
const REWATCH: Duration = Duration::from_millis(200);

/// How one watch stream ended.
enum Ended {
    /// Its connection stopped taking calls, or the member has a new channel: watch again on
    /// the member's next connection.
    Moved,
    /// It ended or failed on a connection still up, the member failing until a new watch
    /// answers: watch again there after a pause, the backoff's unless it `answered` first.
    Again { answered: bool },
    /// The member is gone.
    Gone,
}

/// Runs `probe` on `member` until the member is gone (the member aborts the task as it goes:
/// between changes a watch stream says nothing, so the loop would not see it go); `changed` is
/// called on each change.
pub(crate) async fn watch_member(
    member: Weak<Member>,
    probe: Arc<dyn HealthProbe>,
    changed: impl Fn() + Send,
) {
    // The waits between watches that brought no answer: the endpoint's reconnect backoff
    // (gRPC's: 1 s, ×1.6, ±20 %, at most 120 s), started over by an answer or a new connection.
    let mut backoff: Option<BackoffState> = None;
    loop {
        // Subscribed before the look at its channel: one set after it wakes the waits below.
        let Some((channels, bound)) = member.upgrade().map(|m| (m.channel_changes(), bind(&m)))
        else {
            return;
        };
        // No connection to watch on: wait, doing nothing meanwhile, until its pool reconnects
        // by itself or the connect task sets a new channel (or takes it away: pick first).
        let (channel, conn) = match bound {
            Bound::On(channel, conn) => (channel, conn),
            Bound::Unconnected(channel) => {
                let mut channels = channels;
                tokio::select! {
                    () = channel.connection_up() => {}
                    _ = channels.changed() => {}
                }
                continue;
            }
            Bound::NoChannel => {
                let mut channels = channels;
                // Fails once the member is gone: the next turn sees it.
                let _ = channels.changed().await;
                continue;
            }
        };
        let config = channel.endpoint().backoff;
        let mut on = Watched { conn, channels };
        let pause = match watch_on(&member, &*probe, channel, &mut on, &changed).await {
            Ended::Gone => return,
            Ended::Moved => None,
            Ended::Again { answered: true } => {
                backoff = None;
                Some(REWATCH)
            }
            Ended::Again { answered: false } => {
                let state = backoff.get_or_insert_with(|| BackoffState::new(config));
                let wait = state.current();
                state.fail();
                Some(wait)
            }
        };
        let moved = match pause {
            None => true,
            Some(pause) => tokio::select! {
                () = tokio::time::sleep(pause) => false,
                () = on.moved() => true,
            },
        };
        if moved {
            backoff = None;
            // What the server said on that connection no longer stands, nor how its watch
            // failed: unknown until the next connection's watch answers.
            let Some(m) = member.upgrade() else {
                return;
            };
            if m.set_health(Health::Unknown) | m.set_health_failure(None) {
                changed();
            }
        }
    }
}

/// What a member's watch can run on now ([`bind`]).
enum Bound {
    /// Its channel, and the connection a watch on it runs on.
    On(Channel, ClientConnection),
    /// A channel, with no connection up.
    Unconnected(Channel),
    /// No channel (not connected yet, or pick first holds no connection to it).
    NoChannel,
}

/// The member's channel and the connection a watch on it runs on: the first live one (a
/// member's pool has one connection unless its endpoint asks for more, and a stream goes to
/// the first with room). Without one, the watch waits for one rather than make its pool
/// connect, as a call would.
fn bind(member: &Member) -> Bound {
    let Some(channel) = member.channel() else {
        return Bound::NoChannel;
    };
    let conn = channel
        .connections()
        .into_iter()
        .find(|c| !c.is_closed() && c.is_handshaken());
    match conn {
        Some(conn) => Bound::On(channel, conn),
        None => Bound::Unconnected(channel),
    }
}

/// What a watch runs on: a connection of the member's channel, and word of the next channel.
struct Watched {
    conn: ClientConnection,
    channels: tokio::sync::watch::Receiver<u64>,
}

impl Watched {
    /// Resolves when the watch must move: its connection stopped taking calls (sent away,
    /// broken), or the member has a new channel (its old pool would otherwise live on for the
    /// watch, with a connection of its own), or the member is gone.
    async fn moved(&mut self) {
        tokio::select! {
            () = self.conn.closing() => {}
            _ = self.channels.changed() => {}
        }
    }
}

/// One watch stream on `channel`, until it ends, fails, or must move ([`Watched::moved`]).
async fn watch_on(
    member: &Weak<Member>,
    probe: &dyn HealthProbe,
    channel: Channel,
    on: &mut Watched,
    changed: &(impl Fn() + Send),
) -> Ended {
    let mut stream = probe.watch(channel);
    let mut answered = false;
    loop {
        let next = tokio::select! {
            next = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)) => next,
            // Dropping the stream cancels the call: a draining server is not kept waiting.
            () = on.moved() => return Ended::Moved,
        };
        let Some(member) = member.upgrade() else {
            return Ended::Gone;
        };
        let health = match next {
            Some(Ok(true)) => Health::Serving,
            Some(Ok(false)) => Health::NotServing,
            // Ended or failed with its connection: the next one is watched.
            None | Some(Err(_)) if on.conn.is_closed() => return Ended::Moved,
            // Ended cleanly on a connection still up: the server's answer no longer stands (it
            // may be going away, or its health service broken). As grpc-go's health client
            // takes an end of the stream (`io.EOF`), and gRFC A17 "any other status" than
            // UNIMPLEMENTED: failing until a new watch answers.
            None => {
                tracing::debug!(endpoint = member.key(), "health watch ended");
                let failed = member.set_health_failure(Some(ended()));
                if member.set_health(Health::Unknown) | failed {
                    changed();
                }
                return Ended::Again { answered };
            }
            Some(Err(status)) if status.code() == Code::Unimplemented => {
                if member.set_health(Health::Serving) | member.set_health_failure(None) {
                    changed();
                }
                drop((member, stream));
                // No health service there: serving for as long as this connection lasts.
                on.moved().await;
                return Ended::Moved;
            }
            Some(Err(status)) => {
                tracing::debug!(endpoint = member.key(), error = %status, "health watch failed");
                // Failing until the server answers again: fail-fast calls hear why at once.
                let failed = member.set_health_failure(Some(failure(&status)));
                if member.set_health(Health::Unknown) | failed {
                    changed();
                }
                return Ended::Again { answered };
            }
        };
        answered = true;
        let cleared = member.set_health_failure(None);
        if member.set_health(health) | cleared {
            tracing::debug!(endpoint = member.key(), ?health, "health changed");
            changed();
        }
    }
}

/// How a watch that ended cleanly is told: in grpc-go's words (its error is `io.EOF`).
fn ended() -> String {
    "connection active but received health check RPC error: EOF (the server ended the Watch \
     stream)"
        .to_owned()
}

/// How a failed watch is told: in grpc-go's words, and the server's.
fn failure(status: &Status) -> String {
    format!(
        "connection active but received health check RPC error: {:?}: {}",
        status.code(),
        status.message()
    )
}
