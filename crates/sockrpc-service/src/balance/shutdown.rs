//! Closing a balanced channel for good: [`Balanced::close`], [`Balanced::close_now`],
//! [`Balanced::closed`], as on a [`Channel`] (grpc-java's `shutdown`, `shutdownNow`,
//! `awaitTermination`).
//!
//! Why apart: a balanced channel is many pools plus tasks that would bring them back (the task
//! following discovery, each member's connect task, health watches). Closing stops those first
//! (so nothing connects again), then closes every member's channel the same way; a member
//! whose connection comes up as the channel closes is closed too, and waited for.

use super::channel::{lock, Balanced, Shared};
use crate::Channel;
use std::sync::Mutex;
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
    /// A channel joined `closing`.
    changed: Notify,
}

impl Default for Shut {
    fn default() -> Self {
        Shut {
            level: watch::Sender::new(OPEN),
            closing: Mutex::default(),
            changed: Notify::new(),
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

    /// A member channel that came up as the balanced channel closed: closed its way too.
    pub(super) fn close_late(&self, channel: Channel) {
        close_one(&channel, *self.level.borrow());
        lock(&self.closing).push(channel);
        self.changed.notify_waiters();
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
        // Nothing follows discovery or reconnects from now on (`ensure_driver` and `connect`
        // look at the level first).
        if let Some(driver) = lock(&self.driver).take() {
            driver.abort();
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

    /// Whether [`close`](Self::close) or [`close_now`](Self::close_now) was called on any clone.
    pub fn is_closed(&self) -> bool {
        self.shared.shut.is_closed()
    }

    /// Waits until the channel is closed and every endpoint's connections have ended
    /// (grpc-java's `awaitTermination`, with the caller's own timeout). Waits for a close first.
    pub async fn closed(&self) {
        self.shared.shut.closing().await;
        let mut done = 0;
        loop {
            let changed = self.shared.shut.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let channels: Vec<Channel> = lock(&self.shared.shut.closing)
                .iter()
                .skip(done)
                .cloned()
                .collect();
            if channels.is_empty() {
                return;
            }
            done += channels.len();
            for channel in channels {
                channel.closed().await;
            }
        }
    }
}
