//! Certificate verification: rustls' WebPKI verifiers, plus certificates trusted as they are.
//!
//! WebPKI refuses a certificate marked as a CA when it is presented as an end entity
//! (`CaUsedAsEndEntity`), and `openssl req -x509` marks every self-signed certificate as a CA.
//! So a certificate the user listed as trusted that the peer presents byte for byte is accepted
//! when WebPKI refuses it, as grpc-go accepts a leaf found among its roots, once it has been
//! checked here for what WebPKI would have checked on a chain: its validity period, its
//! extended key usage (server or client authentication), and on a client the server's name
//! among its subjectAltNames. The names must be checked: a file of trusted CAs often holds the
//! server's own certificate (a "full chain" file), and without the check any server holding
//! that certificate's key could pose as any name. A certificate with no subjectAltName at all
//! (`openssl req -x509 -subj /CN=HOST` makes those) names nothing WebPKI reads, so its pin
//! stands for its one key under any name, as it did before. Everything else is WebPKI's
//! verdict unchanged.
//!
//! A refusal's error stays rustls' own (it picks the alert the peer is sent), but rustls names
//! no certificate and gives times in seconds since the epoch. So the verifier also writes a
//! note for a person — which certificate, issued by whom, valid when, in UTC dates — into a
//! slot of the handshake's task ([`noting`]), where the code that ran the handshake finds it
//! when the handshake fails. Outside such a task (a listener of the caller's own that uses
//! these verifiers) there is no slot, and no note.

use super::x509::{
    allows_purpose, has_alt_names, name, tbs, utc, validity, CLIENT_AUTH, SERVER_AUTH,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_name, WebPkiServerVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use std::{cell::RefCell, future::Future, sync::Arc, time::Duration};

/// Checks the server's certificate on a client.
#[derive(Debug)]
pub(crate) struct ServerVerifier {
    pub(crate) inner: Arc<WebPkiServerVerifier>,
    pub(crate) pinned: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .or_else(|err| {
                let purpose = Purpose::Server(server_name);
                pinned_verdict(&self.pinned, end_entity, now, err, purpose)?;
                Ok(ServerCertVerified::assertion())
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Checks a client's certificate on a server.
#[derive(Debug)]
pub(crate) struct ClientVerifier {
    pub(crate) inner: Arc<dyn ClientCertVerifier>,
    pub(crate) pinned: Vec<CertificateDer<'static>>,
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
            .or_else(|err| {
                pinned_verdict(&self.pinned, end_entity, now, err, Purpose::Client)?;
                Ok(ClientCertVerified::assertion())
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// What a pinned certificate is presented as.
#[derive(Clone, Copy)]
enum Purpose<'a> {
    /// A server's, to a client that asked for this name.
    Server(&'a ServerName<'a>),
    /// A client's, to a server.
    Client,
}

/// The second look at a certificate WebPKI refused with `webpki`, for the server's and the
/// client's verifier alike: accepted (`Ok`) when it is one of `pinned`, byte for byte, within
/// its validity period, allowed for `purpose` by its extended key usage, and (a server's) valid
/// for the name asked for; otherwise the refusal (WebPKI's, or for a pinned certificate the
/// first of those checks that failed), noted for the handshake.
fn pinned_verdict(
    pinned: &[CertificateDer<'static>],
    cert: &CertificateDer<'_>,
    now: UnixTime,
    webpki: Error,
    purpose: Purpose<'_>,
) -> Result<(), Error> {
    if !pinned.iter().any(|pin| pin.as_ref() == cert.as_ref()) {
        return Err(noted(cert, now, webpki));
    }
    check_validity(cert, now)
        .and_then(|()| check_purpose(cert, purpose))
        .map_err(|pin_err| {
            tracing::debug!(%webpki, "pinned certificate refused");
            noted(cert, now, pin_err)
        })
}

/// Checks that `cert` may serve as `purpose` says: its extended key usage, and a server's names.
fn check_purpose(cert: &CertificateDer<'_>, purpose: Purpose<'_>) -> Result<(), Error> {
    let usage = match purpose {
        Purpose::Server(_) => SERVER_AUTH,
        Purpose::Client => CLIENT_AUTH,
    };
    match allows_purpose(cert, usage) {
        Some(true) => {}
        Some(false) => return Err(Error::InvalidCertificate(CertificateError::InvalidPurpose)),
        None => return Err(Error::InvalidCertificate(CertificateError::BadEncoding)),
    }
    let Purpose::Server(name) = purpose else {
        return Ok(());
    };
    match has_alt_names(cert) {
        Some(true) => verify_server_name(&ParsedCertificate::try_from(cert)?, name),
        // No subjectAltName at all (`openssl req -x509 -subj /CN=HOST`, the README's command):
        // WebPKI would not read its CN, so it names nothing, and the pin stands for the one
        // key, whatever name the client used.
        Some(false) => Ok(()),
        None => Err(Error::InvalidCertificate(CertificateError::BadEncoding)),
    }
}

/// Checks `cert`'s validity period against `now`.
fn check_validity(cert: &CertificateDer<'_>, now: UnixTime) -> Result<(), Error> {
    let (not_before, not_after) =
        validity(cert).ok_or(Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let at = |secs: u64| UnixTime::since_unix_epoch(Duration::from_secs(secs));
    if now.as_secs() < not_before {
        return Err(Error::InvalidCertificate(
            CertificateError::NotValidYetContext {
                time: now,
                not_before: at(not_before),
            },
        ));
    }
    if now.as_secs() > not_after {
        return Err(Error::InvalidCertificate(
            CertificateError::ExpiredContext {
                time: now,
                not_after: at(not_after),
            },
        ));
    }
    Ok(())
}

tokio::task_local! {
    /// Why the verifier refused a certificate, for the handshake that runs in this task.
    static NOTE: RefCell<Option<String>>;
}

/// Runs `handshake` with a slot for the verifier's note, and returns the note with the
/// outcome: `Some` when a certificate was refused during it.
pub(crate) async fn noting<F: Future>(handshake: F) -> (F::Output, Option<String>) {
    NOTE.scope(RefCell::new(None), async move {
        let outcome = handshake.await;
        let note = NOTE.with(|slot| slot.borrow_mut().take());
        (outcome, note)
    })
    .await
}

/// `err`, after writing in the task's slot (when there is one) what it means for `cert`.
fn noted(cert: &CertificateDer<'_>, now: UnixTime, err: Error) -> Error {
    let _ = NOTE.try_with(|slot| *slot.borrow_mut() = Some(describe(cert, now, &err)));
    err
}

/// Which certificate `err` refused and why, for a person: `certificate "CN=leaf" (issued by
/// "CN=CA"): not valid after 2026-01-01 00:00:00 UTC, now 2026-03-01 12:00:00 UTC`.
pub(crate) fn describe(cert: &[u8], now: UnixTime, err: &Error) -> String {
    let Some(tbs) = tbs(cert) else {
        return format!("an unreadable certificate: {err}");
    };
    let (subject, issuer) = (name(tbs.subject), name(tbs.issuer));
    let now = now.as_secs();
    let why = match err {
        Error::InvalidCertificate(cert_err) => match cert_err {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("not valid after {}, now {}", utc(tbs.not_after), utc(now))
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!("not valid before {}, now {}", utc(tbs.not_before), utc(now))
            }
            CertificateError::UnknownIssuer => format!(
                "its issuer \"{issuer}\" is not a trusted CA, and no certificate sent with it \
                 leads to one"
            ),
            CertificateError::NotValidForNameContext {
                expected,
                presented,
            } => format!(
                "valid for {}, not for \"{}\"",
                if presented.is_empty() {
                    "no name (no subjectAltName)".to_owned()
                } else {
                    presented.join(", ")
                },
                expected.to_str()
            ),
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                "its extended key usage does not allow it to be used this way (server or client \
                 authentication)"
                    .to_owned()
            }
            other => other.to_string(),
        },
        other => other.to_string(),
    };
    format!("certificate \"{subject}\" (issued by \"{issuer}\"): {why}")
}
