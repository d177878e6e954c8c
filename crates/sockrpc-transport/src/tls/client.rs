//! The client's side: what it trusts, whom it expects, who it is; and the handshake itself.

use super::chain_size::check_chain_size;
use super::io::{Explained, Recorder};
use super::pem::{Certificates, Identity, TlsError};
use super::read_ahead::ReadAhead;
use super::split::{TlsReader, TlsWriter};
use super::verify::{noting, ServerVerifier};
use super::{explain_client_error, provider, versions, ALPN_PROTOCOL};
use crate::attempt::ConnectError;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::RootCertStore;
use sockrpc_protocol::frame::PREFACE;
use sockrpc_protocol::Status;
use std::{
    fmt,
    sync::atomic::AtomicBool,
    sync::{Arc, OnceLock},
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

type Built = Result<Arc<rustls::ClientConfig>, TlsError>;

/// TLS settings of a client: the CAs it trusts, the name it checks the server's certificate
/// against, and its own identity for mutual TLS.
///
/// ```ignore
/// let tls = ClientTlsConfig::new()
///     .ca_certificates(Certificates::from_pem_file("ca.pem")?)
///     .identity(Identity::from_pem_files("client.pem", "client.key")?); // for mutual TLS
/// let endpoint = Endpoint::from_uri("tcp://10.0.0.7:50051")?.tls(tls);
/// ```
///
/// With no CA given, the platform's CAs are trusted (read once, through
/// `rustls-native-certs`: the system store, which follows the distribution's updates and the CAs
/// an administrator added). The rustls configuration is built once, on first use, and shared by
/// every connection of the endpoint (and its clones), so reconnects can resume the TLS session.
#[derive(Clone)]
pub struct ClientTlsConfig {
    ca: Vec<CertificateDer<'static>>,
    native_roots: Option<bool>,
    server_name: Option<String>,
    identity: Option<Identity>,
    tls12: bool,
    built: Arc<OnceLock<Built>>,
}

impl fmt::Debug for ClientTlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTlsConfig")
            .field("ca", &self.ca.len())
            .field("native_roots", &self.native_roots)
            .field("server_name", &self.server_name)
            .field("identity", &self.identity)
            .field("tls12", &self.tls12)
            .finish()
    }
}

impl Default for ClientTlsConfig {
    fn default() -> ClientTlsConfig {
        ClientTlsConfig::new()
    }
}

impl ClientTlsConfig {
    /// TLS 1.3 and 1.2, the platform's CAs unless others are given, no client certificate.
    pub fn new() -> ClientTlsConfig {
        ClientTlsConfig {
            ca: Vec::new(),
            native_roots: None,
            server_name: None,
            identity: None,
            tls12: true,
            built: Arc::default(),
        }
    }

    fn changed(mut self) -> ClientTlsConfig {
        self.built = Arc::default();
        self
    }

    /// Trusts these CAs (added to any given before). A server that presents one of these very
    /// certificates as its own is trusted too (see [`Certificates`]), so the certificate of a
    /// server with a self-signed one works as its CA.
    pub fn ca_certificates(mut self, certs: Certificates) -> ClientTlsConfig {
        self.ca.extend(certs.as_slice().iter().cloned());
        self.changed()
    }

    /// Trusts the certificates of a PEM file.
    pub fn ca_pem_file(self, path: impl AsRef<std::path::Path>) -> Result<Self, TlsError> {
        Ok(self.ca_certificates(Certificates::from_pem_file(path)?))
    }

    /// Also trusts the platform's CAs (`true`), or never (`false`). Default: only when no CA is
    /// given.
    pub fn native_roots(mut self, on: bool) -> ClientTlsConfig {
        self.native_roots = Some(on);
        self.changed()
    }

    /// Checks the server's certificate against `name` (and sends it in SNI) instead of the
    /// endpoint's host: for a server reached by IP address, or through a tunnel.
    pub fn server_name(mut self, name: impl Into<String>) -> ClientTlsConfig {
        self.server_name = Some(name.into());
        self.changed()
    }

    /// Presents `identity` to servers that ask for a client certificate (mutual TLS). A chain
    /// too large for one TLS handshake message (64 KiB) is refused by [`build`](Self::build),
    /// and so by every connect, without contacting the server.
    pub fn identity(mut self, identity: Identity) -> ClientTlsConfig {
        self.identity = Some(identity);
        self.changed()
    }

    /// Allows TLS 1.2 as well as 1.3 (the default), or only TLS 1.3.
    pub fn tls12(mut self, on: bool) -> ClientTlsConfig {
        self.tls12 = on;
        self.changed()
    }

    /// A copy that builds a rustls configuration of its own, with its own TLS session cache (a
    /// clone shares the built one, and with it resumption).
    pub fn unshared(&self) -> ClientTlsConfig {
        self.clone().changed()
    }

    /// The name the server's certificate is checked against, for an endpoint whose host is
    /// `host`.
    pub fn server_name_for<'a>(&'a self, host: &'a str) -> &'a str {
        self.server_name.as_deref().unwrap_or(host)
    }

    /// The rustls configuration, built on first use and then shared.
    pub fn build(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        self.built.get_or_init(|| self.build_now()).clone()
    }

    fn build_now(&self) -> Built {
        let provider = provider();
        let mut roots = RootCertStore::empty();
        for ca in &self.ca {
            roots
                .add(ca.clone())
                .map_err(|err| TlsError::new(format!("unusable CA certificate: {err}")))?;
        }
        if self.native_roots.unwrap_or(self.ca.is_empty()) {
            let loaded = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
            if added == 0 && self.ca.is_empty() {
                let why = loaded
                    .errors
                    .first()
                    .map_or_else(String::new, |err| format!(": {err}"));
                return Err(TlsError::new(format!(
                    "no CA certificate given and none found in the platform's store{why}"
                )));
            }
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|err| TlsError::new(format!("cannot build the verifier: {err}")))?;
        let verifier = Arc::new(ServerVerifier {
            inner: webpki,
            pinned: self.ca.clone(),
        });
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions(self.tls12))
            .map_err(|err| TlsError::new(err.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match &self.identity {
            Some(identity) => {
                check_chain_size(&identity.chain, "client", identity.cert_source())?;
                builder
                    .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
                    .map_err(|err| TlsError::new(format!("unusable client identity: {err}")))?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![ALPN_PROTOCOL.to_vec()];
        Ok(Arc::new(config))
    }

    /// Runs the handshake over `io` (connected to `endpoint`, whose host is `host`) and returns
    /// the stream's halves, whose errors explain what TLS refused.
    pub(crate) async fn connect<T>(
        &self,
        io: T,
        host: &str,
        endpoint: &(dyn fmt::Display + Sync),
    ) -> Result<ClientStream<T>, ConnectError>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static,
    {
        let refused = |status: Status| ConnectError {
            status,
            refused: true,
        };
        let config = self.build().map_err(|err| refused(Status::from(err)))?;
        let name = self.server_name_for(host);
        let server_name = ServerName::try_from(name.to_owned()).map_err(|_| {
            refused(Status::invalid_argument(format!(
                "TLS: {name:?} is not a valid server name"
            )))
        })?;
        let connector = TlsConnector::from(config);
        let (outcome, note) = noting(
            connector
                .connect(server_name, Recorder::new(ReadAhead::new(io)))
                .into_fallible(),
        )
        .await;
        let stream = match outcome {
            Ok(stream) => stream,
            Err((err, io)) => {
                let (why, deterministic) =
                    explain_handshake(&err, &io.first, note.as_deref(), self.identity.is_some());
                return Err(ConnectError {
                    status: Status::unavailable(format!(
                        "TLS handshake with {endpoint} failed: {why}"
                    )),
                    refused: deterministic,
                });
            }
        };
        let session = stream.get_ref().1;
        if session.alpn_protocol() != Some(ALPN_PROTOCOL) {
            return Err(refused(Status::unavailable(format!(
                "TLS handshake with {endpoint} failed: the server did not select ALPN protocol \
                 sockrpc/1, so it does not speak this wire version"
            ))));
        }
        let (reader, writer) = super::split::split(stream);
        let tls_error = Arc::new(AtomicBool::new(false));
        Ok(ClientStream {
            reader: Explained::new(reader, Arc::clone(&tls_error)),
            writer: Explained::new(writer, Arc::clone(&tls_error)),
            tls_error,
        })
    }
}

/// A client's TLS stream, split.
pub(crate) struct ClientStream<T> {
    pub(crate) reader: Explained<TlsReader<TlsStream<Recorder<ReadAhead<T>>>>>,
    pub(crate) writer: Explained<TlsWriter<TlsStream<Recorder<ReadAhead<T>>>>>,
    /// Set when either half failed with a TLS error (the server's alert that it refused our
    /// certificate, under TLS 1.3 after the handshake).
    pub(crate) tls_error: Arc<AtomicBool>,
}

/// Why a client's handshake failed, given what the server sent first, the verifier's note, and
/// whether this client has a certificate to present; and whether another attempt would fail the
/// same way (TLS refused it, rather than the network failing).
fn explain_handshake(
    err: &std::io::Error,
    first: &[u8],
    note: Option<&str>,
    has_identity: bool,
) -> (String, bool) {
    if !first.is_empty() && PREFACE.starts_with(&first[..first.len().min(PREFACE.len())]) {
        let why = "the server speaks plain-text sockrpc, not TLS (connect with tcp://, or \
                   enable TLS on the server)";
        return (why.to_owned(), true);
    }
    if let Some(tls) = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        // `access_denied` is also what a server says when it has no certificate for this
        // client (rustls picks the certificate before it looks at ALPN, so older sockrpc
        // servers answer a client without ALPN sockrpc/1 so): a client that has no certificate
        // to present does not blame one.
        if matches!(
            tls,
            rustls::Error::AlertReceived(rustls::AlertDescription::AccessDenied)
        ) && !has_identity
        {
            let why = format!(
                "the server denied access during the handshake, before any certificate of this \
                 client (it has none) was involved: the server may not serve this server name, \
                 or may not speak sockrpc/1 ({tls})"
            );
            return (why, true);
        }
        return (explain_client_error(tls, note), true);
    }
    let why = match err.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            "the server closed the connection during the handshake".to_owned()
        }
        _ => err.to_string(),
    };
    (why, false)
}
