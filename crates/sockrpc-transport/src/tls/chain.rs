//! Checks of a server's own identity, when a configuration is built (at start and at every
//! rotation): the key belongs to the first certificate, the certificates of the chain file
//! form a chain, in order, and the chain fits in one handshake message (see `chain_size.rs`).
//!
//! What is checked, and why no more:
//! - The key must belong to the first certificate (an error otherwise, naming both files and,
//!   when the key belongs to another certificate of the file, which one: the leaf must come
//!   first).
//! - A file of several certificates must hold them in order, each issued by the next (an error
//!   otherwise: wrong order, or a certificate of another chain). TLS 1.2 requires this order
//!   (RFC 5246) and TLS 1.3 asks for it (RFC 8446: each certificate SHOULD certify the one
//!   before it); clients that do not reorder would refuse the server, others would be sent a
//!   certificate they do not need. The file is refused rather than served half-working, and a
//!   rotation to such a file keeps the configuration in force. Only names are compared (each certificate's issuer against the next one's subject), not
//!   signatures: this catches mistakes, it does not vouch for the chain.
//! - The last certificate's issuer is expected to be missing (a root is not sent: clients have
//!   it). But a file of one certificate, not self-signed, works only if the clients trust its
//!   issuer directly; if that issuer is an intermediate CA, clients that do not happen to have
//!   it refuse the server (unknown issuer). This cannot be told apart from here, so it is a
//!   warning naming the file and the issuer, not an error: a leaf issued by a private root CA
//!   that every client trusts is a normal setup. It is given once per file and issuer, not at
//!   every rotation.
//!
//! The chain is not verified against any CA here, as neither openssl s_server nor grpc-go
//! verify their own: the server does not know which CAs its clients trust.

use super::chain_size::check_chain_size;
use super::pem::{Identity, TlsError};
use super::x509::{name, tbs, Tbs};
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;

/// `identity` as rustls serves it, once checked (see the module's docs).
pub(crate) fn certified_key(
    identity: &Identity,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let (cert_source, key_source) = (identity.cert_source(), identity.key_source());
    let key = provider
        .key_provider
        .load_private_key(identity.key.clone_key())
        .map_err(|err| {
            TlsError::new(format!(
                "unusable server identity: {key_source}: unusable private key: {err}"
            ))
        })?;
    let certs: Vec<Option<Tbs<'_>>> = identity.chain.iter().map(|c| tbs(c)).collect();
    if let (Some(spki), Some(Some(leaf))) = (key.public_key(), certs.first()) {
        if spki.as_ref() != leaf.spki {
            let owner = certs
                .iter()
                .position(|cert| cert.as_ref().is_some_and(|c| c.spki == spki.as_ref()));
            let hint = match owner {
                Some(at) => format!(
                    "it belongs to certificate {} of the file (\"{}\"): the server's own \
                     certificate must come first, its issuers after it",
                    at + 1,
                    certs[at]
                        .as_ref()
                        .map_or_else(String::new, |c| name(c.subject)),
                ),
                None => "it belongs to none of the file's certificates: the leaf (the \
                         server's own certificate) must come first, and the key must be its \
                         key (a rotation half done, one file new and one old?)"
                    .to_owned(),
            };
            return Err(TlsError::new(format!(
                "unusable server identity: the private key in {key_source} does not belong to \
                 the first certificate of {cert_source} (\"{}\"); {hint}",
                name(leaf.subject)
            )));
        }
    }
    check_order(cert_source, &certs)?;
    check_chain_size(&identity.chain, "server", cert_source)?;
    if let [Some(only)] = certs.as_slice() {
        if only.issuer != only.subject && first_time(cert_source, only.issuer) {
            tracing::warn!(
                file = cert_source,
                issuer = %name(only.issuer),
                "TLS: {cert_source} holds only the server's certificate, issued by \"{}\", which \
                 the file does not hold. Clients must trust \"{}\" itself as a CA; if it is an \
                 intermediate CA, append its certificate to the file after the server's, or \
                 clients that do not have it will refuse this server (unknown issuer)",
                name(only.issuer),
                name(only.issuer),
            );
        }
    }
    Ok(CertifiedKey::new(identity.chain.clone(), key))
}

/// Whether the lone-certificate warning for this file and issuer is new: it is given once per
/// process, not at every rotation of the same file (a leaf issued by a trusted root is a
/// normal setup, and a warning each hour would be noise).
fn first_time(file: &str, issuer: &[u8]) -> bool {
    static WARNED: std::sync::Mutex<Vec<(String, Vec<u8>)>> = std::sync::Mutex::new(Vec::new());
    let mut warned = WARNED.lock().unwrap_or_else(|p| p.into_inner());
    if warned.iter().any(|(f, i)| f == file && i == issuer) {
        return false;
    }
    // Bounded: past 1,024 files and issuers, the oldest are forgotten (and warned again).
    if warned.len() >= 1024 {
        warned.remove(0);
    }
    warned.push((file.to_owned(), issuer.to_vec()));
    true
}

/// Each certificate must be issued by the next one; certificates that cannot be read are left
/// to rustls.
fn check_order(source: &str, certs: &[Option<Tbs<'_>>]) -> Result<(), TlsError> {
    for (at, pair) in certs.windows(2).enumerate() {
        let [Some(cert), Some(next)] = pair else {
            continue;
        };
        if cert.issuer == next.subject {
            continue;
        }
        let elsewhere = certs
            .iter()
            .position(|c| c.as_ref().is_some_and(|c| c.subject == cert.issuer));
        let hint = match elsewhere {
            Some(issuer) => format!(
                "its issuer is certificate {} of the file: the certificates are out of order \
                 (the server's first, then each one's issuer)",
                issuer + 1
            ),
            None => "its issuer is not in the file: certificate {next} belongs to another \
                     chain, or the issuer is missing (the server's certificate first, then each \
                     one's issuer)"
                .replace("{next}", &(at + 2).to_string()),
        };
        return Err(TlsError::new(format!(
            "unusable server identity: {source}: certificate {} (\"{}\", issued by \"{}\") is \
             followed by certificate {} (\"{}\"), which did not issue it; {hint}",
            at + 1,
            name(cert.subject),
            name(cert.issuer),
            at + 2,
            name(next.subject),
        )));
    }
    Ok(())
}
