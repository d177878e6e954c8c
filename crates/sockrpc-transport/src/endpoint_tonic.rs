//! tonic's `Endpoint` builder names for socket options (`tcp_nodelay`, `tcp_keepalive`),
//! kept apart from the endpoint itself: thin setters over its
//! [`SocketConfig`](crate::SocketConfig), which every TCP connection of the endpoint is made
//! with.

use crate::Endpoint;
use std::time::Duration;

/// tonic's names for socket options, over [`SocketConfig`](crate::SocketConfig).
impl Endpoint {
    /// Sets `TCP_NODELAY` on this endpoint's connections (on by default, as tonic's).
    pub fn tcp_nodelay(mut self, on: bool) -> Self {
        self.socket = self.socket.nodelay(on);
        self
    }

    /// Sends TCP keepalive probes after `idle` without traffic (`None`: none; default 60 s),
    /// tonic's `tcp_keepalive`. sockrpc's own PING keepalive is
    /// [`keepalive`](Endpoint::keepalive).
    pub fn tcp_keepalive(mut self, idle: Option<Duration>) -> Self {
        self.socket = self.socket.keepalive(idle);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tonic's `tcp_nodelay` and `tcp_keepalive` reach the socket a connection is made with
    /// (`attempt.rs` connects with the endpoint's `socket`).
    #[tokio::test]
    async fn tonics_socket_options_reach_the_connected_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let connect = |endpoint: Endpoint| async move {
            let stream = crate::socket::connect_tcp(addr, &endpoint.socket, Duration::from_secs(5))
                .await
                .expect("connect");
            crate::socket::SocketOptions::read(&stream).expect("read")
        };
        let base = Endpoint::from_static("tcp://127.0.0.1:1");
        let tuned = base
            .clone()
            .tcp_nodelay(false)
            .tcp_keepalive(Some(Duration::from_secs(7)));
        let opts = connect(tuned).await;
        assert!(!opts.nodelay, "{opts:?}");
        assert_eq!(
            opts.keepalive_idle,
            Some(Duration::from_secs(7)),
            "{opts:?}"
        );
        let opts = connect(base.clone().tcp_keepalive(None)).await;
        assert!(opts.nodelay, "{opts:?}");
        assert!(!opts.keepalive, "{opts:?}");
    }
}
