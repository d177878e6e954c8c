//! The size of a chain of our own (a server's identity, or a client's for mutual TLS), checked
//! when the configuration is built: rustls, like most TLS stacks, refuses a handshake message
//! past 64 KiB, and the whole chain travels in one (the Certificate message). A chain past that
//! would make every handshake fail on the peer's side, long after the configuration was
//! accepted, with an error that names neither the chain nor its size; so it is refused here, at
//! start or at a rotation (which then keeps the identity in force).
//!
//! The size counted is the TLS 1.3 Certificate message's body, the larger of the two versions'
//! (each certificate has an extensions field there, and a request context comes first), as
//! rustls writes it for us: no OCSP response or SCT list is sent by sockrpc. The bound is not
//! 64 KiB itself: rustls holds a handshake message being joined from records in a buffer of
//! 64 KiB − 1, which must also hold the message's header, the record framing and the messages
//! of the same flight around it (EncryptedExtensions before it; CertificateVerify, whose RSA
//! signature may be 512 bytes, and Finished after it). [`ALONGSIDE`] leaves them 1 KiB: a
//! chain whose message fills 64 KiB − 1 exactly is refused by rustls all the same.

use super::pem::TlsError;
use rustls_pki_types::CertificateDer;

/// The largest handshake message body rustls takes (its `MAX_HANDSHAKE_SIZE`, also the size
/// of the buffer it joins one in): 64 KiB − 1.
pub(crate) const MAX_HANDSHAKE_MESSAGE: usize = 0xffff;

/// Room left in that buffer for what is held with the Certificate message (see the module's
/// docs).
pub(crate) const ALONGSIDE: usize = 1024;

/// The largest Certificate message body taken here: 64,511 bytes.
pub(crate) const MAX_CERTIFICATE_MESSAGE: usize = MAX_HANDSHAKE_MESSAGE - ALONGSIDE;

/// The body of a TLS 1.3 Certificate message carrying `chain`: an empty request context (its
/// one length byte), the list's 3-byte length, and per certificate a 3-byte length, the DER,
/// and a 2-byte (empty) extensions length. TLS 1.2's is smaller (3 bytes per certificate, no
/// context).
pub(crate) fn certificate_message_size(chain: &[CertificateDer<'_>]) -> usize {
    chain
        .iter()
        .fold(1 + 3, |size, cert| size.saturating_add(3 + cert.len() + 2))
}

/// Refuses `chain` when its Certificate message is past [`MAX_CERTIFICATE_MESSAGE`]; `whose` says
/// which identity it is (`"server"`, `"client"`), `source` where the chain came from.
pub(crate) fn check_chain_size(
    chain: &[CertificateDer<'_>],
    whose: &str,
    source: &str,
) -> Result<(), TlsError> {
    let size = certificate_message_size(chain);
    if size <= MAX_CERTIFICATE_MESSAGE {
        return Ok(());
    }
    let der: usize = chain.iter().map(|cert| cert.len()).sum();
    Err(TlsError::new(format!(
        "unusable {whose} identity: {source}: its chain ({} certificate(s), {der} bytes of DER) \
         makes a TLS Certificate message of {size} bytes, past the {MAX_CERTIFICATE_MESSAGE} \
         bytes that fit under the 64 KiB limit ({MAX_HANDSHAKE_MESSAGE} bytes) rustls and other \
         TLS stacks put on one handshake message, with the {ALONGSIDE} bytes of its flight held \
         beside it: every peer would refuse the handshake. Send fewer certificates (the leaf and \
         its intermediates; never the root, which peers have)",
        chain.len()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(sizes: &[usize]) -> Vec<CertificateDer<'static>> {
        sizes
            .iter()
            .map(|&n| CertificateDer::from(vec![0x30; n]))
            .collect()
    }

    #[test]
    fn the_message_counts_the_framing_of_each_certificate() {
        assert_eq!(certificate_message_size(&[]), 4);
        assert_eq!(certificate_message_size(&chain(&[100, 200])), 4 + 105 + 205);
    }

    #[test]
    fn a_chain_is_refused_one_byte_past_the_limit_and_not_at_it() {
        // One certificate filling the message exactly: 4 + 5 + n = 64,511.
        let at = chain(&[MAX_CERTIFICATE_MESSAGE - 9]);
        assert!(check_chain_size(&at, "server", "cert.pem").is_ok());
        let past = chain(&[MAX_CERTIFICATE_MESSAGE - 8]);
        let err = check_chain_size(&past, "server", "cert.pem").expect_err("past the limit");
        let text = err.to_string();
        assert!(text.contains("message of 64512 bytes"), "{text}");
        assert!(text.contains("65535 bytes"), "{text}");
        assert!(text.contains("64 KiB"), "{text}");
        assert!(text.contains("cert.pem"), "{text}");
    }
}
