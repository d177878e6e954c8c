//! Closing a balanced channel for good: [`Balanced::close`], [`Balanced::close_now`],
//! [`Balanced::closed`], as on a [`Channel`] (grpc-java's `shutdown`, `shutdownNow`,
//! `awaitTermination`).
//!
//! Why apart: a balanced channel is many pools plus tasks that would bring them back (the task
//! following discovery, each member's connect task, health watches). Closing stops those first
//! (so nothing connects again), then closes every member's channel the same way; a member
//! whose connection comes up (or is still in its handshake) as the channel closes is closed
//! too, and waited for: [`Balanced::closed`] first waits for every connect task to end. The
//! connections of members discovery removed while they still carried calls are kept too, so
//! that `close_now` cancels those calls and `closed` waits for them.

use super::channel::{lock, Balanced, Shared};
use crate::{Channel, CloseSignal, CloseTrigger};
use sockrpc_transport::pool::closing_now_status;
use sockrpc_transport::ClientConnection;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::{watch, Notify};

/// Open: calls go through.
const OPEN: u8 = 0;
/// Closed gracefully.
const GRACEFUL: u8 = 1;
/// Closed at once.
const NOW: u8 = 2;

/// A balanced channel's shutdown state.
pub(super) struct Shut {
    /// [`OPEN`], [`GRACEFUL`] or [`NOW`]; only ever rises. Connect tasks watch it.
    level: watch::Sender<u8>,
    /// The member channels closed with the channel (what [`Balanced::closed`] waits for).
    closing: Mutex<Vec<Channel>>,
    /// A channel joined `closing`, or a member's connect task ended.
    changed: Notify,
    /// Members' connect tasks running (or about to): one may still bring a channel up, to be
    /// closed late, so [`Balanced::closed`] waits for them first.
    tasks: AtomicUsize,
    /// The connections of members discovery removed (or replaced), kept while they carry
    /// calls: the channel's close reaches them too (`close_now` cancels those calls, `closed`
    /// waits for them), as grpc-java's `shutdownNow` reaches subchannels still shutting down.
    retired: Mutex<Vec<ClientConnection>>,
    /// The close as the layers above see it ([`Balanced::close_signal`]): the balanced
    /// channel's own, which no member's close (discovery removing it) raises.
    signal: CloseTrigger,
}

/// One member connect task counted in [`Shut::task`]; uncounted as it ends, however it ends.
pub(super) struct Task(Weak<Shared>);

impl Drop for Task {
    fn drop(&mut self) {
        if let Some(shared) = self.0.upgrade() {
            shared.shut.tasks.fetch_sub(1, Ordering::SeqCst);
            shared.shut.changed.notify_waiters();
        }
    }
}

impl Default for Shut {
    fn default() -> Self {
        Shut {
            level: watch::Sender::new(OPEN),
            closing: Mutex::default(),
            changed: Notify::new(),
            tasks: AtomicUsize::new(0),
            retired: Mutex::default(),
            signal: CloseTrigger::new(),
        }
    }
}

impl Shut {
    /// Whether the channel was closed (either way).
    pub(super) fn is_closed(&self) -> bool {
        *self.level.borrow() != OPEN
    }

    /// Resolves once the channel is closed: what a connect task races its attempt against.
    pub(super) fn closing(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut level = self.level.subscribe();
        async move {
            let _ = level.wait_for(|l| *l != OPEN).await;
        }
    }

    /// Counts a member connect task (before it looks whether the channel closed).
    pub(super) fn task(&self, shared: &Arc<Shared>) -> Task {
        self.tasks.fetch_add(1, Ordering::SeqCst);
        Task(Arc::downgrade(shared))
    }

    /// Members left the set (removed, or replaced by another endpoint under their key): their
    /// connections close gracefully as their pools go, as before, and those still carrying
    /// calls are kept until they end, so that the channel's own close reaches them too.
    pub(super) fn retire(&self, conns: impl IntoIterator<Item = ClientConnection>) {
        let mut retired = lock(&self.retired);
        retired.retain(|c| !c.is_terminated());
        let before = retired.len();
        retired.extend(conns.into_iter().filter(|c| c.in_flight() > 0));
        let added: Vec<ClientConnection> = retired[before..].to_vec();
        drop(retired);
        // Closed already (or meanwhile: `shut_down` may have looked before they were in).
        let level = *self.level.borrow();
        if level != OPEN {
            for conn in &added {
                close_conn(conn, level);
            }
        }
    }

    /// A member channel that came up as the balanced channel closed: closed its way too.
    pub(super) fn close_late(&self, channel: Channel) {
        close_one(&channel, *self.level.borrow());
        lock(&self.closing).push(channel);
        self.changed.notify_waiters();
    }
}

/// A retired member's connection, closed the channel's way.
fn close_conn(conn: &ClientConnection, level: u8) {
    if level >= NOW {
        conn.close_now(closing_now_status());
    } else {
        conn.close();
    }
}

fn close_one(channel: &Channel, level: u8) {
    if level >= NOW {
        channel.close_now();
    } else {
        channel.close();
    }
}

impl Shared {
    fn shut_down(&self, level: u8) {
        let raised = self.shut.level.send_if_modified(|l| {
            let raised = *l < level;
            *l = (*l).max(level);
            raised
        });
        if !raised {
            return;
        }
        self.shut.signal.raise(level >= NOW);
        // Nothing follows discovery or reconnects from now on (`ensure_driver` and `connect`
        // look at the level first).
        if let Some(driver) = lock(&self.driver).take() {
            driver.abort();
        }
        // Discovery is let go (the aborted driver lets its stream go too, `driver_stopped`): a
        // source with a task of its own (DNS re-resolution, an etcd watch) stops with it,
        // rather than looking up names for a closed channel for as long as a clone lives.
        let changes = lock(&self.changes).take();
        drop(changes);
        for conn in lock(&self.shut.retired).iter() {
            close_conn(conn, level);
        }
        let mut channels = Vec::new();
        for member in self.snapshot().list() {
            member.stop_health_watch();
            channels.extend(member.channel());
        }
        let channels = {
            let mut closing = lock(&self.shut.closing);
            closing.extend(channels);
            closing.clone()
        };
        for channel in &channels {
            close_one(channel, level);
        }
        self.shut.changed.notify_waiters();
        // Calls waiting for an endpoint look again, and fail.
        self.bump();
    }
}

impl Balanced {
    /// Closes the channel, and every clone of it, gracefully (grpc-java's `shutdown`): new
    /// calls fail at once `UNAVAILABLE` ("channel closed", nothing sent), calls in flight
    /// finish on their endpoint, then every endpoint's connections close; discovery is no
    /// longer followed, health watches stop, nothing reconnects. Idempotent; never blocks.
    pub fn close(&self) {
        self.shared.shut_down(GRACEFUL);
    }

    /// Closes the channel at once (grpc-java's `shutdownNow`): as [`close`](Self::close), and
    /// calls in flight, streams included, fail `CANCELLED` as every connection closes now.
    pub fn close_now(&self) {
        self.shared.shut_down(NOW);
    }

    /// The channel's close as a layer above it sees it (as [`Channel::close_signal`]): raised
    /// by this channel's own close only, not when discovery removes a member (whose pool
    /// closes), so a retry built with it goes on over the other members.
    pub fn close_signal(&self) -> CloseSignal {
        self.shared.shut.signal.signal()
    }

    /// Whether [`close`](Self::close) or [`close_now`](Self::close_now) was called on any clone.
    pub fn is_closed(&self) -> bool {
        self.shared.shut.is_closed()
    }

    /// Waits until the channel is closed and every endpoint's connections have ended
    /// (grpc-java's `awaitTermination`, with the caller's own timeout). Waits for a close first.
    ///
    /// It also waits for the channel's connect tasks to end, which they do at the close, but
    /// only when their runtime runs them: if the channel was used from a runtime that is still
    /// alive but no longer driven (a current-thread runtime nobody blocks on), `closed` waits
    /// until that runtime runs again or is dropped (its tasks then end with it). Bound it with
    /// a timeout of your own.
    pub async fn closed(&self) {
        let shut = &self.shared.shut;
        shut.closing().await;
        // Connect tasks first: one may still hand a channel in (`close_late`).
        loop {
            let changed = shut.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if shut.tasks.load(Ordering::SeqCst) == 0 {
                break;
            }
            changed.await;
        }
        let mut done = 0;
        loop {
            let channels: Vec<Channel> = lock(&shut.closing).iter().skip(done).cloned().collect();
            if channels.is_empty() {
                break;
            }
            done += channels.len();
            for channel in channels {
                channel.closed().await;
            }
        }
        // The connections of members that left the set, still carrying calls at the close.
        let retired = lock(&shut.retired).clone();
        for conn in retired {
            conn.terminated().await;
        }
    }
}
