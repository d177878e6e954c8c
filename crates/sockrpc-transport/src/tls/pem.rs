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
/// as its CA. Such a pinned certificate is still checked for its validity period, its extended
/// key usage and (a server's) the names in its subjectAltName; one with no subjectAltName at all
/// is trusted under any name (the pin stands for its one key).
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

    /// Every certificate of a PEM text read from `path` (named in messages).
    pub(crate) fn from_pem_named(pem: &[u8], path: &Path) -> Result<Certificates, TlsError> {
        Self::parse_pem(pem, &path.display().to_string())
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
            .map_err(|err| {
                // A traditional encrypted key's headers make the whole file unreadable as PEM,
                // certificates and all (a certificate and its key may share one file).
                encrypted_key(pem, source).unwrap_or_else(|| malformed(source, &err))
            })?;
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

/// Why a PEM text holding a private key cannot be read, when the reason is that the key is
/// encrypted: PKCS#8 (`ENCRYPTED PRIVATE KEY`, what `openssl genpkey -aes256` writes) or the
/// traditional format (`RSA PRIVATE KEY` with `Proc-Type: 4,ENCRYPTED` and `DEK-Info` headers,
/// `openssl genrsa -aes256 -traditional`). rustls reads neither: the first is skipped as an
/// unknown block, the second is malformed PEM to it.
fn encrypted_key(pem: &[u8], source: &str) -> Option<TlsError> {
    let has = |needle: &[u8]| pem.windows(needle.len()).any(|window| window == needle);
    let kind = if has(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        "a PKCS#8 ENCRYPTED PRIVATE KEY"
    } else if has(b"Proc-Type: 4,ENCRYPTED") {
        "a traditional PEM key with Proc-Type: 4,ENCRYPTED"
    } else {
        return None;
    };
    // Quote a file name for the shell only when it needs it.
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:@".contains(c);
    let input = if source.contains(' ') && !std::path::Path::new(source).exists() {
        "key.pem".to_owned()
    } else if source.chars().all(plain) {
        source.to_owned()
    } else {
        format!("'{}'", source.replace('\'', r"'\''"))
    };
    Some(TlsError::new(format!(
        "{source}: the private key is encrypted ({kind}); sockrpc needs it unencrypted: \
         decrypt it first, e.g. `openssl pkey -in {input} -out plain.pem` (it asks for the \
         passphrase), keep plain.pem readable by the server only, and give that file"
    )))
}

/// A certificate chain (leaf first) and its private key: who a side is.
#[derive(Clone)]
pub struct Identity {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: Arc<PrivateKeyDer<'static>>,
    /// Where the chain and the key came from (file names, when read from files), for messages.
    pub(crate) sources: Arc<(String, String)>,
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
    /// A chain from `cert_pem` (every `CERTIFICATE` block: the leaf first, then the certificate
    /// that issued it, and so on) and the first private key in `key_pem` (`PRIVATE KEY`
    /// (PKCS#8), `RSA PRIVATE KEY` or `EC PRIVATE KEY`, unencrypted; other blocks, such as `EC
    /// PARAMETERS`, are skipped). Whether the key matches the first certificate, and the chain's
    /// order, are checked when a server's TLS configuration is built from it.
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
            sources: Arc::new(("the certificate chain".to_owned(), "its key".to_owned())),
        })
    }

    /// As [`from_pem`](Identity::from_pem), with the names of the files the texts were read
    /// from, for messages.
    pub(crate) fn from_pem_named(
        cert_pem: &[u8],
        cert_path: &Path,
        key_pem: &[u8],
        key_path: &Path,
    ) -> Result<Identity, TlsError> {
        Self::parse(
            cert_pem,
            &cert_path.display().to_string(),
            key_pem,
            &key_path.display().to_string(),
        )
    }

    /// Where the certificate chain came from: its file, or a description.
    pub(crate) fn cert_source(&self) -> &str {
        &self.sources.0
    }

    /// Where the key came from: its file, or a description.
    pub(crate) fn key_source(&self) -> &str {
        &self.sources.1
    }

    fn parse(
        cert_pem: &[u8],
        cert_source: &str,
        key_pem: &[u8],
        key_source: &str,
    ) -> Result<Identity, TlsError> {
        let chain = Certificates::parse_pem(cert_pem, cert_source)?.certs;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|err| {
            if let Some(encrypted) = encrypted_key(key_pem, key_source) {
                return encrypted;
            }
            match err {
                rustls_pki_types::pem::Error::NoItemsFound => TlsError::new(format!(
                    "{key_source}: no private key found (expected a PRIVATE KEY, RSA PRIVATE \
                     KEY or EC PRIVATE KEY block)"
                )),
                err => malformed(key_source, &err),
            }
        })?;
        Ok(Identity {
            chain,
            key: Arc::new(key),
            sources: Arc::new((cert_source.to_owned(), key_source.to_owned())),
        })
    }

    /// The chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }
}

/// A PEM file that does not parse, said in words: rustls-pki-types writes the markers it
/// expected as lists of byte values (`[69, 78, 68, ...]`), which no one can read.
fn malformed(source: &str, err: &rustls_pki_types::pem::Error) -> TlsError {
    use rustls_pki_types::pem::Error;
    let what = match err {
        Error::MissingSectionEnd { end_marker } => format!(
            "a block is not closed: no \"-----END {}-----\" line (a file cut short, or still \
             being written?)",
            String::from_utf8_lossy(end_marker)
        ),
        Error::IllegalSectionStart { line } => {
            format!(
                "a malformed BEGIN line: {:?}",
                String::from_utf8_lossy(line)
            )
        }
        other => other.to_string(),
    };
    TlsError::new(format!("{source}: malformed PEM: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRADITIONAL: &str = "-----BEGIN RSA PRIVATE KEY-----\n\
        Proc-Type: 4,ENCRYPTED\n\
        DEK-Info: AES-256-CBC,0123456789ABCDEF0123456789ABCDEF\n\
        \n\
        AAAA\n\
        -----END RSA PRIVATE KEY-----\n";

    const PKCS8: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n\
        -----END ENCRYPTED PRIVATE KEY-----\n";

    #[test]
    fn encrypted_keys_are_named_as_such() {
        for (pem, kind) in [(TRADITIONAL, "Proc-Type: 4,ENCRYPTED"), (PKCS8, "PKCS#8")] {
            let err = PrivateKeyDer::from_pem_slice(pem.as_bytes())
                .err()
                .and_then(|_| encrypted_key(pem.as_bytes(), "/etc/k.pem"))
                .map(|err| err.to_string())
                .unwrap_or_default();
            assert!(err.contains("the private key is encrypted"), "{err}");
            assert!(err.contains(kind), "{err}");
            assert!(
                err.contains("openssl pkey -in /etc/k.pem -out plain.pem"),
                "{err}"
            );
        }
        // A certificate file that also holds the encrypted key says so too.
        let err = Certificates::parse_pem(TRADITIONAL.as_bytes(), "both.pem")
            .err()
            .map(|err| err.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("both.pem: the private key is encrypted"),
            "{err}"
        );
        // Names that need it are quoted for the shell; a text that is no file gets a stand-in.
        let err = encrypted_key(PKCS8.as_bytes(), "my keys/k.pem").map(|e| e.to_string());
        assert!(
            err.is_some_and(|err| err.contains("-in key.pem")),
            "a description is not a file"
        );
        let err = encrypted_key(PKCS8.as_bytes(), "it's.pem").map(|e| e.to_string());
        assert!(
            err.is_some_and(|err| err.contains(r"-in 'it'\''s.pem'")),
            "quoted"
        );
        assert!(encrypted_key(b"-----BEGIN PRIVATE KEY-----", "k").is_none());
    }

    #[test]
    fn a_file_cut_short_is_said_in_words() {
        let cut = "-----BEGIN CERTIFICATE-----\nAAAA\n";
        let err = Certificates::parse_pem(cut.as_bytes(), "half.pem")
            .err()
            .map(|err| err.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("half.pem: malformed PEM: a block is not closed")
                && err.contains("-----END CERTIFICATE-----"),
            "{err}"
        );
    }
}
