//! A member's health watch follows the member's channel. When the connect task sets a new one
//! (the old pool having reconnected by itself meanwhile, say), the watch on the old channel
//! ends and one starts on the new: kept by the watch, the old pool would live on with a
//! connection of its own, a second connection to the endpoint. The schedule is set by hand
//! (two channels, set one after the other), as the race that leads there in a real reconnect
//! cannot be hit on demand.

use super::health::{watch_member, HealthProbe};
use super::member::{Health, Member};
use crate::{BoxStream, Channel};
use bytes::BytesMut;
use sockrpc_protocol::frame::{self, PREFACE};
use sockrpc_protocol::Status;
use sockrpc_transport::endpoint::Endpoint;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server by hand on loopback: says hello on every connection, then reads and drops what
/// comes until the client leaves. Enough for a channel to connect; no call is answered.
pub(super) async fn hello_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut hello = BytesMut::new();
                hello.extend_from_slice(&PREFACE);
                frame::encode_settings(&mut hello, 0, 100);
                if socket.write_all(&hello).await.is_err() {
                    return;
                }
                let mut sink = vec![0u8; 16 * 1024];
                while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    port
}

/// Records the port of each channel it watches, and counts its streams dropped.
#[derive(Clone, Default)]
struct Recording {
    watched: Arc<Mutex<Vec<u16>>>,
    dropped: Arc<AtomicUsize>,
}

impl Recording {
    fn watched(&self) -> Vec<u16> {
        self.watched.lock().expect("watched").clone()
    }
}

impl HealthProbe for Recording {
    fn watch(&self, channel: Channel) -> BoxStream<bool> {
        self.watched
            .lock()
            .expect("watched")
            .push(channel.endpoint().port);
        Box::pin(Standing {
            answered: false,
            _channel: channel,
            dropped: Arc::clone(&self.dropped),
        })
    }
}

/// SERVING, then nothing more: a watch stream on a server whose answer stands. It keeps its
/// channel, as a real stream does.
struct Standing {
    answered: bool,
    _channel: Channel,
    dropped: Arc<AtomicUsize>,
}

impl futures_core::Stream for Standing {
    type Item = Result<bool, Status>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if std::mem::replace(&mut self.answered, true) {
            Poll::Pending
        } else {
            Poll::Ready(Some(Ok(true)))
        }
    }
}

impl Drop for Standing {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

/// Polls `cond` every 10 ms, for at most 10 s.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not within 10 s: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_watch_moves_to_the_members_new_channel() {
    let (old, new) = (hello_server().await, hello_server().await);
    let endpoint = |port| Endpoint::new("127.0.0.1", port);
    let member = Arc::new(Member::new(
        format!("127.0.0.1:{old}"),
        endpoint(old),
        1,
        Duration::from_secs(10),
    ));
    let first = Channel::connect(endpoint(old)).await.expect("connect");
    let _ = member.set_channel(first);
    let probe = Recording::default();
    let watch = tokio::spawn(watch_member(
        Arc::downgrade(&member),
        Arc::new(probe.clone()),
        || {},
    ));
    eventually("watched on the first channel", || {
        probe.watched() == [old] && member.health() == Health::Serving
    })
    .await;
    // The connect task sets the member's next channel.
    let second = Channel::connect(endpoint(new)).await.expect("connect");
    let _ = member.set_channel(second);
    eventually("the watch moved to the new channel", || {
        probe.watched() == [old, new] && probe.dropped.load(Ordering::SeqCst) == 1
    })
    .await;
    watch.abort();
}

/// Counts the polls of the future it wraps: the wake-ups of a task that runs it.
struct Polls<F> {
    inner: Pin<Box<F>>,
    polls: Arc<AtomicUsize>,
}

impl<F: std::future::Future> std::future::Future for Polls<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        self.inner.as_mut().poll(cx)
    }
}

/// Yields (the clock standing still: a paused clock moves only when every task waits) until
/// `cond` holds, for at most 10,000 turns; other tasks and the sockets make progress meanwhile.
pub(super) async fn without_time_passing(what: &str, mut cond: impl FnMut() -> bool) {
    let start = tokio::time::Instant::now();
    for _ in 0..10_000 {
        if cond() {
            assert_eq!(
                tokio::time::Instant::now(),
                start,
                "{what}: the clock moved"
            );
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("not without time passing: {what}");
}

/// A member with no connection costs its health watch nothing: it is woken by the member's
/// channel being set, or its pool's connection coming up, not every so often to look. And the
/// connection is watched as soon as it is up.
#[tokio::test(start_paused = true)]
async fn an_unconnected_members_health_watch_waits_for_word_of_a_connection() {
    let port = hello_server().await;
    let endpoint = Endpoint::new("127.0.0.1", port);
    let member = Arc::new(Member::new(
        format!("127.0.0.1:{port}"),
        endpoint.clone(),
        1,
        Duration::from_secs(10),
    ));
    let probe = Recording::default();
    let polls = Arc::new(AtomicUsize::new(0));
    let watch = tokio::spawn(Polls {
        inner: Box::pin(watch_member(
            Arc::downgrade(&member),
            Arc::new(probe.clone()),
            || {},
        )),
        polls: Arc::clone(&polls),
    });
    // No channel for a minute: the watch is not woken.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let idle = polls.load(Ordering::SeqCst);
    assert!(idle <= 2, "woken {idle} times without a channel");

    // A channel that has not connected yet (lazy): still nothing to do.
    let channel = Channel::lazy(endpoint).expect("lazy");
    let _ = member.set_channel(channel.clone());
    tokio::time::sleep(Duration::from_secs(60)).await;
    let unconnected = polls.load(Ordering::SeqCst) - idle;
    assert!(
        unconnected <= 3,
        "woken {unconnected} times with an unconnected channel"
    );
    assert!(probe.watched().is_empty(), "{:?}", probe.watched());

    // Its pool connects (for a call): the watch starts on that connection at once.
    let call = tokio::spawn({
        let mut channel = channel.clone();
        async move {
            use tower_service::Service;
            let _ = channel.call(super::member::test_set::call()).await;
        }
    });
    without_time_passing("watched on the pool's connection", || {
        probe.watched() == [port] && member.health() == Health::Serving
    })
    .await;
    call.abort();
    watch.abort();
}
