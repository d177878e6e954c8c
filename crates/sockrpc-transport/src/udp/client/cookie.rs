//! The client's side of the cookie exchange: a COOKIE_REQUEST, retransmitted until the
//! server's COOKIE comes, before the first call (`docs/UDP.md`, *Cookies*).

use super::super::datagram;
use super::super::inbox::Waited;
use super::{bump, lock, Shared, UdpOutcome};
use bytes::BytesMut;
use sockrpc_protocol::Status;
use tokio::time::Instant;

impl Shared {
    /// Gets a cookie if there is none yet. `Err` is the outcome the call ends with.
    pub(super) async fn ensure_cookie(&self, deadline: Option<Instant>) -> Result<(), UdpOutcome> {
        if self.cookie.borrow().is_some() {
            return Ok(());
        }
        let deadline_exceeded = || {
            bump(&self.stats.deadline_exceeded);
            UdpOutcome::Reply(Err(Status::deadline_exceeded(
                "deadline exceeded waiting for a UDP cookie",
            )))
        };
        let _exchange = match deadline {
            Some(d) => tokio::time::timeout_at(d, self.cookie_exchange.lock())
                .await
                .map_err(|_| deadline_exceeded())?,
            None => self.cookie_exchange.lock().await,
        };
        let mut rx = self.cookie.subscribe();
        let mut out = BytesMut::new();
        datagram::encode_cookie_request(&mut out, self.instances.current());
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            if self.cookie.borrow().is_some() {
                return Ok(());
            }
            // Nothing has been sent that could run the call, so giving up here is safe.
            if self.in_fallback() {
                bump(&self.stats.not_suitable);
                return Err(UdpOutcome::NotSuitable);
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Err(deadline_exceeded());
            }
            if attempt > 0 {
                bump(&self.stats.retransmits);
            }
            bump(&self.stats.cookie_requests);
            self.send(&out, false).await;
            let rto_at = now + self.backoff(attempt);
            let wake = deadline.map_or(rto_at, |d| d.min(rto_at));
            // The watch's guard is not Send: only whether the cookie came leaves the future.
            let came = async { rx.wait_for(Option::is_some).await.is_ok() };
            let got = tokio::time::timeout_at(wake, self.read_until(came, None))
                .await
                .map(|waited| matches!(waited, Waited::Done(true)));
            match got {
                Ok(true) => {
                    if attempt == 0 {
                        lock(&self.rtt).sample(started.elapsed());
                    }
                    return Ok(());
                }
                Ok(false) => return Err(UdpOutcome::NotSuitable),
                Err(_) if wake == rto_at => {
                    // The COOKIE may be in the socket's buffer already (`inbox.rs`).
                    self.catch_up();
                    if self.cookie.borrow().is_some() {
                        return Ok(());
                    }
                    self.record_loss();
                    attempt += 1;
                    if started.elapsed() >= self.config.retransmit_window {
                        bump(&self.stats.not_suitable);
                        return Err(UdpOutcome::NotSuitable);
                    }
                }
                Err(_) => {}
            }
        }
    }
}
