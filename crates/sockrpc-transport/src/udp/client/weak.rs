//! `WeakUdpClient`: a handle that does not keep a UDP client alive.
//!
//! Why: a channel used from one runtime after another keeps a client per runtime, but a
//! client's socket is read only by its own runtime's reactor. Holding them weakly lets the
//! client of a runtime that ended go with its last call, instead of piling up sockets.

use super::{Inner, UdpClient};
use std::sync::{Arc, Weak};

/// A [`UdpClient`] that is not kept alive by this handle ([`UdpClient::downgrade`]): the
/// client, its socket and its buffers go once its last strong handle does.
#[derive(Debug, Clone, Default)]
pub struct WeakUdpClient {
    inner: Weak<Inner>,
}

impl WeakUdpClient {
    /// The client, while a strong handle to it lives somewhere.
    pub fn upgrade(&self) -> Option<UdpClient> {
        self.inner.upgrade().map(|inner| UdpClient { inner })
    }
}

impl UdpClient {
    /// A handle that does not keep the client (its socket, its buffers) alive: a channel keeps
    /// one for each runtime that used it, and the client itself only while that runtime lives.
    pub fn downgrade(&self) -> WeakUdpClient {
        WeakUdpClient {
            inner: Arc::downgrade(&self.inner),
        }
    }
}
