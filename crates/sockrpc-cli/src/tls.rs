//! TLS for the benchmark: the embedded server's certificate (a CA and a leaf made in memory),
//! the client's settings from the flags, and handshake timing.

use crate::raw_tls::connect_tls;
use sockrpc::tls::pki_types::ServerName;
use sockrpc::tls::rustls::client::Resumption;
use sockrpc::tls::{Certificates, ClientTlsConfig, Identity, ServerTls, ServerTlsConfig};
use sockrpc::{Channel, Endpoint};
use std::{
    net::SocketAddr,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};
use tokio_rustls::TlsConnector;

/// Handshakes timed per report.
const HANDSHAKES: usize = 20;

/// A server's TLS configuration and a client's that trusts it.
#[derive(Debug)]
pub(crate) struct Pair {
    pub(crate) server: ServerTls,
    pub(crate) client: ClientTlsConfig,
}

/// A CA and a server certificate for `localhost` and 127.0.0.1 signed by it (ECDSA P-256), made
/// now, for the embedded server.
pub(crate) fn made_in_memory() -> Result<Pair, String> {
    let fail = |err: rcgen::Error| format!("cannot make a test certificate: {err}");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "sockrpc bench CA");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().map_err(fail)?)
        .map_err(fail)?;
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .map_err(fail)?;
    let key = rcgen::KeyPair::generate().map_err(fail)?;
    let cert = leaf.signed_by(&key, &ca).map_err(fail)?;
    let identity =
        Identity::from_pem(cert.pem(), key.serialize_pem()).map_err(|err| err.to_string())?;
    let server = ServerTls::new(ServerTlsConfig::new(identity)).map_err(|err| err.to_string())?;
    let trust = Certificates::from_pem(ca.pem()).map_err(|err| err.to_string())?;
    Ok(Pair {
        server,
        client: ClientTlsConfig::new().ca_certificates(trust),
    })
}

/// The client's TLS settings from `--tls-ca`, `--tls-cert`/`--tls-key` and `--tls-server-name`.
pub(crate) fn client_from_flags(
    ca: Option<&Path>,
    cert: Option<&Path>,
    key: Option<&Path>,
    server_name: Option<&str>,
) -> Result<ClientTlsConfig, String> {
    let mut tls = ClientTlsConfig::new();
    if let Some(ca) = ca {
        tls = tls.ca_pem_file(ca).map_err(|err| err.to_string())?;
    }
    match (cert, key) {
        (Some(cert), Some(key)) => {
            tls = tls.identity(Identity::from_pem_files(cert, key).map_err(|err| err.to_string())?)
        }
        (None, None) => {}
        _ => return Err("--tls-cert and --tls-key go together".to_owned()),
    }
    if let Some(name) = server_name {
        tls = tls.server_name(name);
    }
    Ok(tls)
}

/// p50 and p90 of `times`, in µs, as text.
fn describe(times: &mut [Duration]) -> String {
    times.sort();
    let at = |q: f64| {
        let index = ((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1;
        times[index].as_secs_f64() * 1e6
    };
    format!(
        "p50 {:.0} µs, p90 {:.0} µs over {}",
        at(0.5),
        at(0.9),
        times.len()
    )
}

/// Times full handshakes (no session resumption) to the raw TLS echo at `addr`: TCP connect and
/// TLS handshake.
pub(crate) async fn raw_handshakes(
    addr: SocketAddr,
    tls: &ClientTlsConfig,
    host: &str,
) -> Result<String, String> {
    let built = tls.build().map_err(|err| err.to_string())?;
    let mut config = (*built).clone();
    config.resumption = Resumption::disabled();
    let connector = TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from(tls.server_name_for(host).to_owned())
        .map_err(|err| err.to_string())?;
    let mut times = Vec::with_capacity(HANDSHAKES);
    let mut version = None;
    for _ in 0..HANDSHAKES {
        let started = Instant::now();
        let session = connect_tls(&connector, addr, name.clone())
            .await
            .map_err(|err| err.to_string())?;
        times.push(started.elapsed());
        version = session.get_ref().1.protocol_version();
    }
    Ok(format!(
        "handshake (TCP connect + full {} handshake, no resumption): {}",
        version.map_or_else(|| "TLS".to_owned(), |v| format!("{v:?}")),
        describe(&mut times)
    ))
}

/// Times sockrpc connects over TLS to `endpoint` (TCP, a full TLS handshake, the server's
/// sockrpc preface), each with a configuration of its own so none resumes a session.
pub(crate) async fn sockrpc_connects(endpoint: &Endpoint) -> Result<String, String> {
    let Some(tls) = &endpoint.tls else {
        return Err("not a TLS endpoint".to_owned());
    };
    let mut times = Vec::with_capacity(HANDSHAKES);
    for _ in 0..HANDSHAKES {
        let fresh = tls.unshared();
        fresh.build().map_err(|err| err.to_string())?;
        let endpoint = endpoint.clone().tls(fresh);
        let started = Instant::now();
        let channel = Channel::connect(endpoint)
            .await
            .map_err(|status| status.message().to_owned())?;
        times.push(started.elapsed());
        drop(channel);
    }
    Ok(format!(
        "connect (TCP + full TLS handshake + sockrpc preface): {}",
        describe(&mut times)
    ))
}
