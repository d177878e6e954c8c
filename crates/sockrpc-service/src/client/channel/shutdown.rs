//! Closing a [`Channel`]: grpc-java's `shutdown`, `shutdownNow`, `isShutdown` and
//! `awaitTermination`, grpc-go's `ClientConn.Close`. The pool does the work (its own
//! `pool/shutdown.rs`); the channel adds its UDP client, which must let its socket go too.

use super::Channel;

impl Channel {
    /// Closes the channel, and every clone of it, gracefully (grpc-java's `shutdown`): new
    /// calls fail at once `UNAVAILABLE` ("channel closed", nothing sent), calls in flight
    /// (unary and streams, those still waiting for room under the server's limit of calls
    /// included) finish normally, then each connection closes; nothing reconnects
    /// and the UDP client lets its socket go once its calls end (a UDP call whose answer comes
    /// back truncated still fetches it over TCP, on a connection of its own:
    /// `Pool::get_started`). Idempotent; never blocks.
    pub fn close(&self) {
        self.pool.close();
        if let Some(udp) = &self.udp {
            udp.close();
        }
    }

    /// Closes the channel at once (grpc-java's `shutdownNow`, grpc-go's `ClientConn.Close`):
    /// as [`close`](Self::close), and the calls in flight over its connections, streams
    /// included, fail `CANCELLED` as the connections close now (the server sees them end
    /// and cancels their handlers). Also after `close`. Idempotent; never blocks. A UDP call
    /// already sent is not cut short: it ends with its answer or its deadline.
    pub fn close_now(&self) {
        self.pool.close_now();
        if let Some(udp) = &self.udp {
            udp.close();
        }
    }

    /// The channel's close as a layer above it sees it: build a retry layer with it
    /// (`RetryLayer::close_signal`) so that a call waiting between two attempts ends at the
    /// close (`CANCELLED` after `close_now`, `UNAVAILABLE` after `close`).
    pub fn close_signal(&self) -> crate::CloseSignal {
        self.pool.close_signal()
    }

    /// Whether [`close`](Self::close) or [`close_now`](Self::close_now) was called on any
    /// clone (grpc-java's `isShutdown`).
    pub fn is_closed(&self) -> bool {
        self.pool.is_closed()
    }

    /// Waits until the channel is closed and every connection it had has ended (grpc-java's
    /// `awaitTermination`; wrap it in `tokio::time::timeout` for a bound, then
    /// [`close_now`](Self::close_now) if it ran out). Waits for a close first. After a
    /// graceful close it also waits for the UDP calls begun before it, and for the TCP fetch
    /// of an answer that came back truncated. The channel's
    /// tasks (its reconnecting task, each connection's driver) end on the runtime the channel
    /// was used from: if that runtime is alive but no longer driven, this waits until it runs
    /// again or is dropped.
    pub async fn closed(&self) {
        self.pool.closed().await;
    }
}
