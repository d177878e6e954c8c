//! One connection attempt for a pool: connect (TCP or Unix socket, every resolved address in
//! turn), the TLS handshake when the endpoint asks for it, all within the connect timeout; and
//! what a failed attempt means for the next (`ConnectError::refused`).
//!
//! Kept apart from `pool.rs`, which decides when to make an attempt and what its outcome means
//! for the calls waiting; this file only makes one.

use crate::endpoint::Endpoint;
use crate::{connect_tcp, ClientConnection, ConnectionOptions};
use sockrpc_protocol::Status;
#[cfg(feature = "tls")]
use std::sync::atomic::Ordering;
use std::{sync::Arc, time::Duration};
use tokio::sync::Notify;

/// Why a connection attempt failed, and whether the same attempt would fail again.
#[derive(Debug)]
pub(crate) struct ConnectError {
    pub(crate) status: Status,
    /// Refused for a reason another attempt meets again (a TLS certificate, plain text on a
    /// TLS port), not a passing condition.
    pub(crate) refused: bool,
}

impl From<Status> for ConnectError {
    fn from(status: Status) -> ConnectError {
        ConnectError {
            status,
            refused: false,
        }
    }
}

/// One connection attempt, through the handshake.
pub(crate) async fn connect_one(
    endpoint: &Endpoint,
    timeout: Duration,
    on_close: Arc<Notify>,
) -> Result<ClientConnection, ConnectError> {
    let options = ConnectionOptions::new(endpoint.limits)
        .keepalive(endpoint.keepalive)
        .on_close(on_close);
    let attempt = async {
        let conn = if let Some(path) = &endpoint.unix_path {
            let stream = crate::connect_unix(path)
                .await
                .and_then(crate::UnixIo::from_tokio)
                .map_err(|err| {
                    Status::unavailable(format!("cannot connect to {endpoint}: {err}"))
                        .with_source(err)
                })?;
            #[cfg(feature = "tls")]
            if let Some(tls) = &endpoint.tls {
                return connect_tls(tls, stream, endpoint, options, None).await;
            }
            let (reader, writer) = stream.into_split();
            ClientConnection::spawn_with(reader, writer, options, None)
        } else {
            let mut last = None;
            let mut stream = None;
            let mut addrs = endpoint.resolve().await?;
            if let Some(udp) = endpoint.udp_in_effect() {
                udp_address_first(&mut addrs, udp.addr.ip());
            }
            for addr in addrs {
                match connect_tcp(addr, &endpoint.socket, timeout).await {
                    Ok(s) => {
                        stream = Some(s);
                        break;
                    }
                    Err(err) => {
                        last = Some(
                            Status::unavailable(format!("cannot connect to {addr}: {err}"))
                                .with_source(err),
                        )
                    }
                }
            }
            let Some(stream) = stream else {
                return Err(last
                    .unwrap_or_else(|| Status::unavailable(format!("cannot connect to {endpoint}")))
                    .into());
            };
            #[cfg(feature = "tls")]
            if let Some(tls) = &endpoint.tls {
                let peer = stream.peer_addr().ok();
                return connect_tls(tls, stream, endpoint, options, peer).await;
            }
            ClientConnection::spawn_tcp_with(stream, options)
        };
        // Not waiting for the server's preface here keeps connecting at one round trip; the
        // maintainer resets backoff only once a connection has shown it (see `maintain`).
        Ok(conn)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(Status::unavailable(format!(
            "connecting to {endpoint} timed out after {timeout:?}"
        ))
        .into()),
    }
}

/// The TLS handshake over a connected stream, then the sockrpc one: a TLS connection counts as
/// up only once the server's preface has arrived (all within the connect timeout). Under TLS
/// 1.3 a server refuses a client certificate only after the client's side of the handshake is
/// over; waiting for the preface makes that refusal this connect's error, so the first call
/// fails at once with it (and the connection is never handed to calls). It costs one round trip
/// per TLS connection, not per call.
#[cfg(feature = "tls")]
async fn connect_tls<T>(
    tls: &crate::tls::ClientTlsConfig,
    stream: T,
    endpoint: &Endpoint,
    options: ConnectionOptions,
    peer: Option<std::net::SocketAddr>,
) -> Result<ClientConnection, ConnectError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + Sync + 'static,
{
    let stream = tls.connect(stream, &endpoint.host, endpoint).await?;
    let refused_by_tls = Arc::clone(&stream.tls_error);
    let conn = ClientConnection::spawn_with(stream.reader, stream.writer, options, peer);
    if let Err(status) = conn.ready().await {
        conn.close();
        return Err(ConnectError {
            status: Status::unavailable(format!(
                "connection to {endpoint} ended after the TLS handshake: {}",
                status.message()
            )),
            refused: refused_by_tls.load(Ordering::Acquire),
        });
    }
    // A server past its connection cap sends its preface and a GOAWAY together: a connection
    // closed before it carried a call is a failed attempt with the server's reason (which the
    // calls waiting for it then fail with), not a live one to hand calls to and reconnect from
    // without backoff.
    if let Some(status) = conn.closed_reason() {
        return Err(ConnectError::from(Status::unavailable(format!(
            "{endpoint} closed the connection at once: {}",
            status.message()
        ))));
    }
    Ok(conn)
}

/// Puts first the resolved addresses that are the UDP side's server address (then those of its
/// family), keeping the resolver's order otherwise. The server answers a TCP re-issue of a
/// TRUNCATED UDP call only from the address the call came from (docs/UDP.md, *Bound to the
/// client's address*), and this host sends from the same address to the same server address:
/// a name resolving to `::1` and `127.0.0.1`, UDP to one and TCP to the other, made every large
/// answer of a method not marked idempotent come back `ABORTED`.
fn udp_address_first(addrs: &mut [std::net::SocketAddr], udp: std::net::IpAddr) {
    let udp = udp.to_canonical();
    addrs.sort_by_key(|addr| {
        let ip = addr.ip().to_canonical();
        (ip != udp, ip.is_ipv4() != udp.is_ipv4())
    });
}

#[cfg(test)]
mod tests {
    use super::udp_address_first;
    use std::net::SocketAddr;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().expect("addr")).collect()
    }

    #[test]
    fn the_udp_servers_address_is_tried_first() {
        let mut resolved = addrs(&["127.0.0.1:9", "[::1]:9"]);
        udp_address_first(&mut resolved, "::1".parse().expect("ip"));
        assert_eq!(resolved, addrs(&["[::1]:9", "127.0.0.1:9"]));
        // Then its family, the resolver's order kept among equals.
        let mut resolved = addrs(&["[2001:db8::1]:9", "10.0.0.2:9", "10.0.0.1:9", "[::1]:9"]);
        udp_address_first(&mut resolved, "10.0.0.1".parse().expect("ip"));
        assert_eq!(
            resolved,
            addrs(&["10.0.0.1:9", "10.0.0.2:9", "[2001:db8::1]:9", "[::1]:9"])
        );
        // An IPv4-mapped UDP address is its IPv4 address.
        let mut resolved = addrs(&["[::1]:9", "127.0.0.1:9"]);
        udp_address_first(&mut resolved, "::ffff:127.0.0.1".parse().expect("ip"));
        assert_eq!(resolved, addrs(&["127.0.0.1:9", "[::1]:9"]));
    }
}
