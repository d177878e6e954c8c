//! TLS (1.3 and 1.2) on stream connections, TCP and Unix sockets alike, with rustls and its
//! `ring` provider; mutual TLS; server certificates and client CAs that rotate while serving.
//!
//! ```text
//!  client: connect ──▶ TLS handshake (ALPN sockrpc/1, SNI) ──▶ preface + frames, as in plain text
//!  server: accept ──▶ connection task: first byte? 0x16 ─▶ TLS handshake (≤ handshake_timeout)
//!                                                 'S'  ─▶ plain-text sockrpc: told, in its own
//!                                                         protocol, that TLS is required; closed
//! ```
//!
//! - [`ClientTlsConfig`]: the CAs a client trusts (PEM, or the platform's), the server name it
//!   checks, its own identity for mutual TLS. Set on an [`Endpoint`](crate::Endpoint) with
//!   `.tls(..)`, or connect to a `tls://host:port` URI.
//! - [`ServerTlsConfig`]: a server's identity, the CAs its clients' certificates must chain to,
//!   and whether clients must present one ([`ClientAuth`]). [`ServerTls`] holds it live: new
//!   handshakes use whatever it holds now, so it can be replaced while serving
//!   ([`ServerTls::reload`], or a watch on the files, [`ServerTls::watch`]); connections already
//!   up keep the session they have.
//! - [`TlsPeer`]: what a handshake established about the peer (its verified chain, the SNI
//!   name), one `Arc` per connection, in every call's `ConnInfo` (`request.conn_info()?.tls`).
//!
//! The ALPN protocol id [`ALPN_PROTOCOL`] (`sockrpc/1`) names the wire version: a server refuses
//! a client that does not offer it, a client refuses a server that does not select it.

pub use sockrpc_protocol::{TlsPeer, TlsVersion};

#[cfg(feature = "tls")]
mod chain;
#[cfg(feature = "tls")]
mod chain_size;
#[cfg(feature = "tls")]
mod client;
#[cfg(feature = "tls")]
mod io;
#[cfg(feature = "tls")]
mod pem;
#[cfg(feature = "tls")]
mod read_ahead;
#[cfg(feature = "tls")]
pub(crate) mod refusals;
#[cfg(feature = "tls")]
mod reload;
#[cfg(feature = "tls")]
pub(crate) mod server;
#[cfg(feature = "tls")]
pub(crate) mod split;
#[cfg(feature = "tls")]
mod verify;
#[cfg(feature = "tls")]
mod x509;

#[cfg(feature = "tls")]
pub use client::ClientTlsConfig;
#[cfg(feature = "tls")]
pub use pem::{Certificates, Identity, TlsError};
#[cfg(feature = "tls")]
pub use reload::{ServerTls, TlsFiles, TlsWatch};
/// The rustls crate sockrpc uses, for settings this module does not cover.
#[cfg(feature = "tls")]
pub use rustls;
/// DER certificate and key types.
pub use rustls_pki_types as pki_types;
#[cfg(feature = "tls")]
pub use server::{ClientAuth, ServerTlsConfig};

/// The ALPN protocol id of sockrpc's wire protocol, version 1.
pub const ALPN_PROTOCOL: &[u8] = b"sockrpc/1";

/// The crypto provider: `ring` (pure Rust and assembly, no C toolchain step beyond `cc`).
///
/// rustls 0.23.48 deprecated `ring::default_provider` because ring offers no post-quantum key
/// exchange (rustls has X25519MLKEM768 in its `aws-lc-rs` provider, which builds AWS-LC's C
/// code). sockrpc keeps `ring` by choice: key exchange is X25519, P-256 or P-384, as with every
/// rustls release before (`docs/TLS.md`).
#[cfg(feature = "tls")]
#[allow(deprecated)]
pub(crate) fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: std::sync::OnceLock<std::sync::Arc<rustls::crypto::CryptoProvider>> =
        std::sync::OnceLock::new();
    std::sync::Arc::clone(
        PROVIDER.get_or_init(|| std::sync::Arc::new(rustls::crypto::ring::default_provider())),
    )
}

/// The protocol versions to allow: TLS 1.3, and 1.2 unless turned off.
#[cfg(feature = "tls")]
pub(crate) fn versions(tls12: bool) -> &'static [&'static rustls::SupportedProtocolVersion] {
    static TLS13_ONLY: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    if tls12 {
        rustls::ALL_VERSIONS
    } else {
        &TLS13_ONLY
    }
}

/// What a client-side TLS error means, in a sentence; in parentheses the verifier's note on the
/// certificate it refused (which one, why, when), else rustls' own words.
#[cfg(feature = "tls")]
pub(crate) fn explain_client_error(err: &rustls::Error, note: Option<&str>) -> String {
    use rustls::{AlertDescription as Alert, CertificateError as Cert, Error};
    let what = match err {
        Error::InvalidCertificate(cert) => match cert {
            Cert::UnknownIssuer => {
                "the server's certificate is not signed by a CA this client trusts".to_owned()
            }
            Cert::NotValidForNameContext { presented, .. } if presented.is_empty() => {
                "the server's certificate is not valid for the name this client checks: it has \
                 no subjectAltName, so it names nothing (its CN is not used)"
                    .to_owned()
            }
            Cert::NotValidForName | Cert::NotValidForNameContext { .. } => {
                "the server's certificate is not valid for the name this client checks (set the \
                 server name to one the certificate names)"
                    .to_owned()
            }
            Cert::InvalidPurpose | Cert::InvalidPurposeContext { .. } => {
                "the server's certificate is not for server authentication (its extended key \
                 usage does not allow it)"
                    .to_owned()
            }
            Cert::Expired | Cert::ExpiredContext { .. } => {
                "the server's certificate has expired".to_owned()
            }
            Cert::NotValidYet | Cert::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet".to_owned()
            }
            // WebPKI's CaUsedAsEndEntity: a certificate marked CA (every `openssl req -x509`
            // one) that is not the very one trusted.
            Cert::Other(other) if format!("{other:?}").contains("CaUsedAsEndEntity") => {
                "the server's certificate is a self-signed (CA) certificate this client does not \
                 trust (give exactly that certificate, or the CA that signed it, as the client's \
                 CA)"
                .to_owned()
            }
            _ => "the server's certificate was refused".to_owned(),
        },
        Error::AlertReceived(alert) => match alert {
            Alert::CertificateRequired => {
                "the server requires a client certificate and this client sent none".to_owned()
            }
            Alert::UnknownCA
            | Alert::BadCertificate
            | Alert::CertificateUnknown
            | Alert::UnsupportedCertificate
            | Alert::DecryptError => "the server refused this client's certificate".to_owned(),
            // Not necessarily about a certificate: also what a server says when it has none for
            // this client (see the handshake's own explanation, `client.rs`).
            Alert::AccessDenied => {
                "the server denied access: it refused this client's certificate, or does not \
                 serve this client at all"
                    .to_owned()
            }
            Alert::CertificateExpired => {
                "the server refused this client's certificate: it has expired".to_owned()
            }
            Alert::NoApplicationProtocol => {
                "the server does not speak sockrpc/1 (no common ALPN protocol); this is not \
                 about certificates"
                    .to_owned()
            }
            Alert::HandshakeFailure | Alert::ProtocolVersion | Alert::InsufficientSecurity => {
                "the server refused the handshake (no TLS version or cipher suite in common, or \
                 no ALPN sockrpc/1 offered)"
                    .to_owned()
            }
            other => format!("the server ended the TLS session with alert {other:?}"),
        },
        Error::NoApplicationProtocol => {
            "the server did not select ALPN protocol sockrpc/1: it does not speak this wire \
             version"
                .to_owned()
        }
        Error::PeerIncompatible(_) => {
            "the server has no TLS version or cipher suite in common with this client".to_owned()
        }
        Error::InvalidMessage(rustls::InvalidMessage::HandshakePayloadTooLarge) => {
            format!(
                "the server sent a handshake message past TLS's {TOO_LARGE} (a certificate chain \
                 that large?): refused before it was held whole"
            )
        }
        Error::InvalidMessage(_) | Error::InappropriateMessage { .. } => {
            "the server did not answer in TLS".to_owned()
        }
        _ => "TLS failed".to_owned(),
    };
    with_detail(&what, err, note)
}

/// The bound rustls puts on one handshake message (a certificate chain travels in one), which
/// it checks from the message's header, before buffering it whole.
#[cfg(feature = "tls")]
const TOO_LARGE: &str = "64 KiB limit on one handshake message";

/// `what`, then the note if there is one, else `err`, in parentheses.
#[cfg(feature = "tls")]
fn with_detail(what: &str, err: &rustls::Error, note: Option<&str>) -> String {
    match note {
        Some(note) => format!("{what} ({note})"),
        None => format!("{what} ({err})"),
    }
}

/// What a server-side TLS error means, for the log (with the verifier's note, as
/// [`explain_client_error`]).
#[cfg(feature = "tls")]
pub(crate) fn explain_server_error(err: &rustls::Error, note: Option<&str>) -> String {
    use rustls::{CertificateError as Cert, Error};
    let what = match err {
        Error::NoCertificatesPresented => "the client sent no certificate",
        Error::InvalidCertificate(Cert::UnknownIssuer) => {
            "the client's certificate is not signed by a trusted client CA"
        }
        Error::InvalidCertificate(Cert::Expired | Cert::ExpiredContext { .. }) => {
            "the client's certificate has expired"
        }
        Error::InvalidCertificate(_) => "the client's certificate was refused",
        Error::NoApplicationProtocol => "the client does not offer ALPN sockrpc/1",
        Error::AlertReceived(_) => "the client refused the server (see its side)",
        Error::PeerIncompatible(_) => "no TLS version or cipher suite in common",
        Error::InvalidMessage(rustls::InvalidMessage::HandshakePayloadTooLarge) => {
            return with_detail(
                &format!(
                    "the client sent a handshake message past TLS's {TOO_LARGE} (a certificate \
                     chain that large?): refused before it was held whole"
                ),
                err,
                note,
            );
        }
        Error::InvalidMessage(_) => "the client did not speak TLS",
        _ => "TLS handshake failed",
    };
    with_detail(what, err, note)
}

/// What a TLS error on an established session means (a record that does not decrypt, bytes that
/// are not TLS, a fatal alert, a peer past rustls' bounds), for the server's log.
#[cfg(feature = "tls")]
pub(crate) fn explain_session_error(err: &rustls::Error) -> String {
    use rustls::Error;
    let what = match err {
        Error::DecryptError => "a record did not decrypt (bad_record_mac: altered or forged)",
        Error::InvalidMessage(_) | Error::InappropriateMessage { .. } => {
            "bytes that are not a TLS record of this session"
        }
        Error::AlertReceived(_) => "the client ended the session with a fatal alert",
        Error::PeerMisbehaved(_) => {
            "the client broke TLS's rules (too many empty records, warning alerts or \
             renegotiation attempts, say)"
        }
        _ => "TLS failed",
    };
    format!("{what} ({err})")
}
