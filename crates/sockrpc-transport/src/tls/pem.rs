//! Certificates and keys from PEM (what `openssl req` and most tools write) or DER, and the
//! error every TLS setting reports.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::{fmt, path::Path, sync::Arc};

/// A TLS setting that cannot be used: a PEM file with no certificate, a key that does not match
/// its certificate, a file that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError {
    message: String,
}

impl TlsError {
    pub(crate) fn new(message: impl Into<String>) -> TlsError {
        TlsError {
            message: message.into(),
        }
    }

    /// What is wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TlsError {}

impl From<TlsError> for std::io::Error {
    fn from(err: TlsError) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, err)
    }
}

impl From<TlsError> for sockrpc_protocol::Status {
    fn from(err: TlsError) -> sockrpc_protocol::Status {
        sockrpc_protocol::Status::invalid_argument(format!("TLS configuration: {err}"))
    }
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path)
        .map_err(|err| TlsError::new(format!("cannot read {what} {}: {err}", path.display())))
}

/// A list of certificates: the CAs a side trusts.
///
/// A certificate in this list is also trusted **as it is** when the peer presents exactly it as
/// its own certificate (byte for byte), so a self-signed certificate made with
/// `openssl req -x509` works unchanged: give it to the server as its identity and to the client
/// as its CA. Such a pinned certificate is still checked for its validity period; its names are
/// not checked (the pin names exactly one certificate).
#[derive(Clone, PartialEq, Eq)]
pub struct Certificates {
    certs: Vec<CertificateDer<'static>>,
}

impl fmt::Debug for Certificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificates")
            .field("count", &self.certs.len())
            .finish()
    }
}

impl Certificates {
    /// Every `CERTIFICATE` block of a PEM text; other blocks are skipped. At least one is
    /// required.
    pub fn from_pem(pem: impl AsRef<[u8]>) -> Result<Certificates, TlsError> {
        Self::parse_pem(pem.as_ref(), "PEM text")
    }

    /// Every certificate of a PEM file.
    pub fn from_pem_file(path: impl AsRef<Path>) -> Result<Certificates, TlsError> {
        let path = path.as_ref();
        let pem = read_file(path, "certificate file")?;
        Self::parse_pem(&pem, &path.display().to_string())
    }

    /// DER-encoded certificates.
    pub fn from_der(certs: Vec<CertificateDer<'static>>) -> Result<Certificates, TlsError> {
        if certs.is_empty() {
            return Err(TlsError::new("no certificate given"));
        }
        Ok(Certificates { certs })
    }

    fn parse_pem(pem: &[u8], source: &str) -> Result<Certificates, TlsError> {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| TlsError::new(format!("{source}: malformed PEM: {err}")))?;
        if certs.is_empty() {
            return Err(TlsError::new(format!(
                "{source}: no CERTIFICATE block found"
            )));
        }
        Ok(Certificates { certs })
    }

    /// The certificates, DER-encoded, in the order given.
    pub fn as_slice(&self) -> &[CertificateDer<'static>] {
        &self.certs
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    /// Always false: a list is never empty.
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }
}

/// A certificate chain (leaf first) and its private key: who a side is.
#[derive(Clone)]
pub struct Identity {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: Arc<PrivateKeyDer<'static>>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("Identity")
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl PartialEq for Identity {
    fn eq(&self, other: &Identity) -> bool {
        self.chain == other.chain && self.key.secret_der() == other.key.secret_der()
    }
}

impl Identity {
    /// A chain from `cert_pem` (every `CERTIFICATE` block, leaf first) and the first private key
    /// in `key_pem` (`PRIVATE KEY` (PKCS#8), `RSA PRIVATE KEY` or `EC PRIVATE KEY`; other blocks,
    /// such as `EC PARAMETERS`, are skipped). Whether the key matches the certificate is checked
    /// when a TLS configuration is built from it.
    pub fn from_pem(
        cert_pem: impl AsRef<[u8]>,
        key_pem: impl AsRef<[u8]>,
    ) -> Result<Identity, TlsError> {
        Self::parse(
            cert_pem.as_ref(),
            "certificate PEM",
            key_pem.as_ref(),
            "key PEM",
        )
    }

    /// As [`from_pem`](Identity::from_pem), from two files (they may be one and the same file).
    pub fn from_pem_files(
        cert_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
    ) -> Result<Identity, TlsError> {
        let (cert_path, key_path) = (cert_path.as_ref(), key_path.as_ref());
        let cert = read_file(cert_path, "certificate file")?;
        let key = read_file(key_path, "key file")?;
        Self::parse(
            &cert,
            &cert_path.display().to_string(),
            &key,
            &key_path.display().to_string(),
        )
    }

    /// A DER chain (leaf first) and key.
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Identity, TlsError> {
        if chain.is_empty() {
            return Err(TlsError::new("an identity needs at least one certificate"));
        }
        Ok(Identity {
            chain,
            key: Arc::new(key),
        })
    }

    fn parse(
        cert_pem: &[u8],
        cert_source: &str,
        key_pem: &[u8],
        key_source: &str,
    ) -> Result<Identity, TlsError> {
        let chain = Certificates::parse_pem(cert_pem, cert_source)?.certs;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|err| match err {
            rustls_pki_types::pem::Error::NoItemsFound => TlsError::new(format!(
                "{key_source}: no private key found (expected a PRIVATE KEY, RSA PRIVATE KEY or \
                 EC PRIVATE KEY block; an encrypted key must be decrypted first)"
            )),
            err => TlsError::new(format!("{key_source}: malformed PEM: {err}")),
        })?;
        Ok(Identity {
            chain,
            key: Arc::new(key),
        })
    }

    /// The chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }
}
