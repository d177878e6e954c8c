//! A unary call in flight over TLS on a connection whose runtime ends while the call's lives
//! on: the TLS session (its reader half) went with that runtime; the call must fail
//! `UNAVAILABLE` at once, and the next call must make a session on the call's runtime.

use super::slow::{Options, SlowServer};
use super::support::{serving, Flavor};
use super::unary_in_flight::in_flight_when_the_connections_runtime_ends;
use sockrpc::tls::{Certificates, ClientTlsConfig, Identity, ServerTlsConfig};
use sockrpc::Endpoint;

/// A CA and a server certificate it issued for 127.0.0.1: (the CA's PEM, the server's identity).
fn certificates() -> (String, Identity) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA certificate");
    let leaf_params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("leaf params");
    let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
    let leaf = leaf_params.signed_by(&leaf_key, &ca).expect("leaf");
    let identity = Identity::from_pem(leaf.pem(), leaf_key.serialize_pem()).expect("identity");
    (ca.pem(), identity)
}

#[test]
fn a_tls_call_in_flight_fails_unavailable_and_the_next_works() {
    let (ca, identity) = certificates();
    let serving = serving();
    let server = serving.block_on(SlowServer::start(Options {
        tls: Some(ServerTlsConfig::new(identity)),
        udp: false,
    }));
    let endpoint = Endpoint::new("127.0.0.1", server.tcp.port())
        .tls(ClientTlsConfig::new().ca_certificates(Certificates::from_pem(ca).expect("CA PEM")));
    in_flight_when_the_connections_runtime_ends(
        Flavor::Current,
        Flavor::Current,
        endpoint,
        &server,
        1,
        1,
    );
    drop(server);
    drop(serving);
}
