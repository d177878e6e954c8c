//! The server's side: its identity, the client CAs and client authentication; and the
//! handshake, run on each connection's own task.

use super::chain::certified_key;
use super::pem::{Certificates, Identity, TlsError};
use super::read_ahead::ReadAhead;
use super::refusals::{self, Refusal};
use super::reload::ServerTls;
use super::verify::{noting, ClientVerifier};
use super::{explain_server_error, provider, versions, TlsPeer, TlsVersion, ALPN_PROTOCOL};
use crate::log_limit::LogLimit;
use crate::server::BoxIo;
use bytes::BytesMut;
use rustls::server::{Acceptor, ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use sockrpc_protocol::frame::{self, PREFACE};
use sockrpc_protocol::{Code, MetadataMap};
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;

/// Whether a server asks its clients for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientAuth {
    /// No client certificate is asked for.
    None,
    /// A client may present a certificate, which must then chain to a client CA; one that
    /// presents none is served too (its calls see an empty chain).
    Optional,
    /// Every client must present a certificate that chains to a client CA (mutual TLS).
    Required,
}

/// TLS settings of a server: its identity, and the CAs its clients' certificates must chain to.
///
/// ```ignore
/// let tls = ServerTlsConfig::new(Identity::from_pem_files("server.pem", "server.key")?)
///     .client_ca(Certificates::from_pem_file("clients-ca.pem")?); // mutual TLS, required
/// Server::builder().tls(tls)?.add_service(..).serve(addr).await?;
/// ```
///
/// Hand it to a [`ServerTls`] to replace it while serving.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerTlsConfig {
    identity: Identity,
    client_ca: Option<Certificates>,
    client_auth: Option<ClientAuth>,
    tls12: bool,
}

impl ServerTlsConfig {
    /// Serves as `identity`, TLS 1.3 and 1.2, no client certificate asked for.
    pub fn new(identity: Identity) -> ServerTlsConfig {
        ServerTlsConfig {
            identity,
            client_ca: None,
            client_auth: None,
            tls12: true,
        }
    }

    /// Replaces the identity.
    pub fn identity(mut self, identity: Identity) -> ServerTlsConfig {
        self.identity = identity;
        self
    }

    /// Clients' certificates must chain to one of these CAs (or be one of them, byte for byte:
    /// see [`Certificates`]). Unless [`client_auth`](Self::client_auth) says otherwise, clients
    /// must then present one ([`ClientAuth::Required`]).
    pub fn client_ca(mut self, certs: Certificates) -> ServerTlsConfig {
        self.client_ca = Some(certs);
        self
    }

    /// Removes the client CAs (and with them client authentication, unless set explicitly).
    pub fn no_client_ca(mut self) -> ServerTlsConfig {
        self.client_ca = None;
        self
    }

    /// Whether clients must, may or need not present a certificate. `Optional` and `Required`
    /// need client CAs.
    pub fn client_auth(mut self, auth: ClientAuth) -> ServerTlsConfig {
        self.client_auth = Some(auth);
        self
    }

    /// Allows TLS 1.2 as well as 1.3 (the default), or only TLS 1.3.
    pub fn tls12(mut self, on: bool) -> ServerTlsConfig {
        self.tls12 = on;
        self
    }

    /// Client authentication in effect: as set, else `Required` with client CAs and `None`
    /// without.
    pub fn effective_client_auth(&self) -> ClientAuth {
        self.client_auth.unwrap_or(if self.client_ca.is_some() {
            ClientAuth::Required
        } else {
            ClientAuth::None
        })
    }

    /// The server's identity.
    pub fn get_identity(&self) -> &Identity {
        &self.identity
    }

    /// The client CAs.
    pub fn get_client_ca(&self) -> Option<&Certificates> {
        self.client_ca.as_ref()
    }

    /// Builds the rustls configuration: checks that the key belongs to the first certificate,
    /// that the chain's certificates are in order (each issued by the next; a lone certificate
    /// whose issuer is not in the file is logged as a warning, see `chain.rs`), that the chain
    /// fits in one TLS handshake message (64 KiB: see `chain_size.rs`), and that client
    /// authentication has CAs to check against.
    pub fn build(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = provider();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions(self.tls12))
            .map_err(|err| TlsError::new(err.to_string()))?;
        let auth = self.effective_client_auth();
        let builder = match (auth, &self.client_ca) {
            (ClientAuth::None, _) => builder.with_no_client_auth(),
            (_, None) => {
                return Err(TlsError::new(
                    "client authentication needs client CAs (ServerTlsConfig::client_ca)",
                ))
            }
            (_, Some(ca)) => {
                let mut roots = RootCertStore::empty();
                for cert in ca.as_slice() {
                    roots.add(cert.clone()).map_err(|err| {
                        TlsError::new(format!("unusable client CA certificate: {err}"))
                    })?;
                }
                let mut verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
                if auth == ClientAuth::Optional {
                    verifier = verifier.allow_unauthenticated();
                }
                let inner = verifier.build().map_err(|err| {
                    TlsError::new(format!("cannot build the client verifier: {err}"))
                })?;
                builder.with_client_cert_verifier(Arc::new(ClientVerifier {
                    inner,
                    pinned: ca.as_slice().to_vec(),
                }))
            }
        };
        let key = certified_key(&self.identity, &provider)?;
        let mut config = builder.with_cert_resolver(Arc::new(AlpnGate { key: Arc::new(key) }));
        config.alpn_protocols = vec![ALPN_PROTOCOL.to_vec()];
        Ok(Arc::new(config))
    }
}

/// Presents the server's certificate only to a client that offers ALPN, for a listener of the
/// caller's own built on [`ServerTls::rustls_config`]: rustls resolves the certificate before it
/// looks at ALPN, so a resolver that refused every client without `sockrpc/1` would make rustls
/// answer a client that offers other protocols with `access_denied` (which reads like a refused
/// certificate); this one lets rustls answer it `no_application_protocol`. A client that offers
/// no ALPN at all, which rustls would serve, is refused here (`access_denied`, the only alert a
/// resolver can cause). sockrpc's own listeners look at the ClientHello before rustls does, and
/// answer both `no_application_protocol` (see [`accept`]).
#[derive(Debug)]
struct AlpnGate {
    key: Arc<CertifiedKey>,
}

impl ResolvesServerCert for AlpnGate {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if hello.alpn().is_none() {
            tracing::debug!("TLS client offers no ALPN (this server speaks sockrpc/1): refused");
            return None;
        }
        Some(Arc::clone(&self.key))
    }
}

/// A TLS alert record, in plain text as before a ServerHello: fatal (2),
/// `no_application_protocol` (120).
const NO_APPLICATION_PROTOCOL_ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 120];

/// Why a ClientHello that does not offer ALPN `sockrpc/1` is refused, or `None` when it does.
fn alpn_mismatch(hello: &ClientHello<'_>) -> Option<String> {
    let offered: Vec<String> = hello
        .alpn()?
        .map(|protocol| String::from_utf8_lossy(protocol).into_owned())
        .collect();
    if offered.iter().any(|p| p.as_bytes() == ALPN_PROTOCOL) {
        return None;
    }
    Some(format!(
        "the client offered ALPN {offered:?}, this server speaks sockrpc/1 (alert \
         no_application_protocol sent)"
    ))
}

/// What a plain-text sockrpc client is told on a TLS port.
pub(crate) const PLAINTEXT_REFUSED: &str = "this server requires TLS: connect with tls:// (on a \
     Unix socket: an endpoint with `.tls(...)`; the connection was plain text)";

/// Time a failed connection is given to take our last words before it is closed.
const LINGER: Duration = Duration::from_secs(1);

/// A server's side of one TLS connection, handshake done.
pub(crate) struct Accepted {
    pub(crate) stream: TlsStream<ReadAhead<BoxIo>>,
    pub(crate) peer: Arc<TlsPeer>,
}

/// Runs the server's side of the handshake on `io`. The first bytes decide: a TLS record
/// (0x16) goes on to the handshake with the configuration `tls` holds now; a plain-text sockrpc
/// preface is answered, in sockrpc, that TLS is required; anything else is closed. A
/// ClientHello that does not offer ALPN `sockrpc/1` (none, or others only) is answered with the
/// alert `no_application_protocol`, before rustls picks a certificate. `None`: the connection
/// is done (the reason is logged, at WARN within the server's budget `limit`: see
/// `refusals.rs`).
pub(crate) async fn accept(
    tls: &ServerTls,
    limit: &LogLimit,
    mut io: BoxIo,
    peer: Option<SocketAddr>,
) -> Option<Accepted> {
    let mut first = vec![0u8; 16];
    let n = match io.read(&mut first).await {
        Ok(0) | Err(_) => return None,
        Ok(n) => n,
    };
    first.truncate(n);
    const HANDSHAKE_RECORD: u8 = 0x16;
    if first[0] != HANDSHAKE_RECORD {
        let sockrpc = PREFACE.starts_with(&first[..n.min(PREFACE.len())]);
        if sockrpc {
            refusals::log(
                limit,
                Refusal::PlainText,
                peer,
                "the client spoke sockrpc without TLS (it was told to connect with tls://)",
            );
            refuse_plaintext(io, first).await;
        } else {
            let reason = format!("the first bytes were {:02x?}", &first[..n.min(8)]);
            refusals::log(limit, Refusal::NotTls, peer, &reason);
        }
        return None;
    }
    let mut lazy = LazyConfigAcceptor::new(Acceptor::default(), ReadAhead::with_prefix(first, io));
    let start = match (&mut lazy).await {
        Ok(start) => start,
        Err(err) => {
            let reason = err
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .map_or_else(|| err.to_string(), |tls| explain_server_error(tls, None));
            refusals::log(limit, Refusal::Handshake, peer, &reason);
            if let Some(io) = lazy.take_io() {
                linger(io.into_inner()).await;
            }
            return None;
        }
    };
    let hello = start.client_hello();
    let refused = match hello.alpn() {
        None => Some(
            "the client offered no ALPN, this server speaks sockrpc/1 (alert \
             no_application_protocol sent; a sockrpc client always offers it)"
                .to_owned(),
        ),
        Some(_) => alpn_mismatch(&hello),
    };
    if let Some(reason) = refused {
        refusals::log(limit, Refusal::Alpn, peer, &reason);
        let mut io = start.io;
        if io.write_all(&NO_APPLICATION_PROTOCOL_ALERT).await.is_ok() {
            linger(io.into_inner()).await;
        }
        return None;
    }
    let (outcome, note) = noting(start.into_stream(tls.current()).into_fallible()).await;
    match outcome {
        Ok(stream) => {
            let session = stream.get_ref().1;
            let peer_info = TlsPeer::new(
                session
                    .peer_certificates()
                    .map(<[_]>::to_vec)
                    .unwrap_or_default(),
                session.server_name().map(str::to_owned),
                match session.protocol_version() {
                    Some(rustls::ProtocolVersion::TLSv1_2) => TlsVersion::Tls12,
                    _ => TlsVersion::Tls13,
                },
            )
            .with_cipher_suite(
                session
                    .negotiated_cipher_suite()
                    .and_then(|suite| suite.suite().as_str()),
            );
            Some(Accepted {
                stream,
                peer: Arc::new(peer_info),
            })
        }
        Err((err, io)) => {
            let reason = err
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .map_or_else(
                    || err.to_string(),
                    |tls| explain_server_error(tls, note.as_deref()),
                );
            refusals::log(limit, Refusal::Handshake, peer, &reason);
            // The alert is written; let it reach the client before the close, rather than
            // resetting a connection whose request bytes we never read.
            linger(io.into_inner()).await;
            None
        }
    }
}

/// Answers a plain-text sockrpc client in its own protocol: the server's preface, its first
/// call ended `UNAVAILABLE` with the reason, and GOAWAY for the rest, which it may send
/// elsewhere. Then closes. `first` is what was read of the client so far.
async fn refuse_plaintext(mut io: BoxIo, first: Vec<u8>) {
    let call_id = first_open(&mut io, first).await.unwrap_or(1);
    let mut buf = BytesMut::with_capacity(256);
    buf.extend_from_slice(&PREFACE);
    frame::encode_end(
        &mut buf,
        call_id,
        Code::Unavailable,
        PLAINTEXT_REFUSED,
        &[],
        &MetadataMap::new(),
    );
    frame::encode_goaway(&mut buf, call_id, Code::Unavailable, PLAINTEXT_REFUSED);
    if io.write_all(&buf).await.is_ok() {
        linger(io).await;
    }
}

/// How long a plain-text client's first OPEN is waited for ([`first_open`]).
const FIRST_OPEN_WAIT: Duration = Duration::from_millis(100);

/// The id of the first call a plain-text client opens, read within [`FIRST_OPEN_WAIT`] and
/// 4 KiB of what it sent (`read`: its first bytes, the preface). Ending that call, not call 1
/// blindly, gives the call the reason itself: a client that connected as its first call began
/// (a lazy channel) wrote its OPEN just after the preface, and an END that overtook the OPEN
/// was taken for a stray one, the call left to fail as never processed and wait out a
/// reconnect's backoff (a second) before it heard why.
async fn first_open(io: &mut BoxIo, mut read: Vec<u8>) -> Option<u32> {
    let deadline = tokio::time::Instant::now() + FIRST_OPEN_WAIT;
    let mut at = PREFACE.len();
    let mut chunk = [0u8; 1024];
    while read.len() <= 4096 {
        // Whole frame heads from `at`: an OPEN's call id, or the next frame.
        while let Some(head) = read.get(at..at.saturating_add(frame::HEADER_LEN)) {
            if head[4] == frame::FrameKind::Open as u8 {
                return Some(u32::from_be_bytes([head[8], head[9], head[10], head[11]]));
            }
            let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
            at = at.saturating_add(frame::HEADER_LEN).saturating_add(len);
        }
        match tokio::time::timeout_at(deadline, io.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => read.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
    None
}

/// Half-closes, then reads and drops what the peer still sends for up to [`LINGER`], so that
/// what we wrote last is read before the connection goes (closing with unread bytes would
/// reset it, and a reset can overtake our last words).
async fn linger(mut io: BoxIo) {
    let _ = io.flush().await;
    let _ = io.shutdown().await;
    let drain = async {
        let mut sink = [0u8; 4096];
        let mut total = 0usize;
        while total < 256 * 1024 {
            match io.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}
