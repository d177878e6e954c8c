//! `TlsPeer`: what a TLS handshake established about the other end, shared by every call on
//! the connection.

use rustls_pki_types::CertificateDer;

/// The TLS version a connection negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

/// The other end of a TLS connection as the handshake established it: its verified certificate
/// chain (leaf first), and on a server the name the client asked for (SNI).
///
/// A server builds one per connection, in an `Arc` that every call on the connection shares
/// (no allocation per call): handlers and interceptors read it from the request's
/// [`ConnInfo`](crate::ConnInfo) (`request.conn_info()?.tls`), middleware also through the
/// service layer's `Call::tls_peer()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPeer {
    certificates: Vec<CertificateDer<'static>>,
    server_name: Option<String>,
    version: TlsVersion,
    cipher_suite: Option<&'static str>,
}

impl TlsPeer {
    /// A peer with this chain (leaf first; empty when the peer sent no certificate), SNI name
    /// and version.
    pub fn new(
        certificates: Vec<CertificateDer<'static>>,
        server_name: Option<String>,
        version: TlsVersion,
    ) -> TlsPeer {
        TlsPeer {
            certificates,
            server_name,
            version,
            cipher_suite: None,
        }
    }

    /// Sets the cipher suite's name.
    pub fn with_cipher_suite(mut self, name: Option<&'static str>) -> TlsPeer {
        self.cipher_suite = name;
        self
    }

    /// The peer's certificate chain as it presented it, leaf first, verified against the
    /// configured CAs during the handshake. Empty when the peer sent none (a client, when the
    /// server's client authentication is optional).
    pub fn certificates(&self) -> &[CertificateDer<'static>] {
        &self.certificates
    }

    /// The peer's own certificate (the chain's first), DER-encoded.
    pub fn leaf(&self) -> Option<&CertificateDer<'static>> {
        self.certificates.first()
    }

    /// On a server: the host name the client sent in SNI (clients connecting to an IP address
    /// send none).
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// The negotiated TLS version.
    pub fn version(&self) -> TlsVersion {
        self.version
    }

    /// The negotiated cipher suite, e.g. `TLS13_AES_128_GCM_SHA256`.
    pub fn cipher_suite(&self) -> Option<&'static str> {
        self.cipher_suite
    }
}
