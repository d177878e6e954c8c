//! tonic's `tls_config` on `Endpoint` and on the server builder: `Result`s, as tonic's, that
//! set up the same TLS as sockrpc's `tls(..)`: a call goes through over TLS, and a
//! configuration rustls cannot use fails at `tls_config` already (tonic builds its connector
//! there), not at the first connect.

use crate::support::bounded;
use sockrpc::tls::{Certificates, ClientTlsConfig, Identity, ServerTlsConfig};
use sockrpc::transport::{Endpoint, EndpointExt, Server};
use sockrpc::{Request, Response, Status};
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::{Input, Output};
use sockrpc_tests::serve::Running;

struct Answers;

impl Test for Answers {
    async fn unary_call(&self, _: Request<Input>) -> Result<Response<Output>, Status> {
        Ok(Response::new(Output::default()))
    }
}

/// A self-signed certificate for `localhost` and its key, in PEM.
fn self_signed() -> (String, String) {
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("certificate");
    (cert.pem(), key.serialize_pem())
}

#[tokio::test]
async fn tls_config_sets_up_tls_on_both_ends() {
    let (cert, key) = self_signed();
    let identity = Identity::from_pem(&cert, &key).expect("identity");
    let server = Running::start(
        Server::builder()
            .tls_config(ServerTlsConfig::new(identity))
            .expect("a usable identity")
            .add_service(TestServer::new(Answers)),
    );
    let tls = ClientTlsConfig::new()
        .ca_certificates(Certificates::from_pem(&cert).expect("CA"))
        .server_name("localhost");
    let endpoint = Endpoint::from_shared(format!("tcp://{}", server.addr))
        .expect("uri")
        .tls_config(tls)
        .expect("a usable configuration");
    assert!(endpoint.is_tls());
    let channel = bounded("connect", endpoint.connect())
        .await
        .expect("TLS handshake with the server");
    bounded("call", TestClient::new(channel).unary_call(Input {}))
        .await
        .expect("a call over TLS");

    // A plain-text client of the same server gets nowhere: the call above spoke TLS.
    let plain = Endpoint::from_shared(format!("tcp://{}", server.addr)).expect("uri");
    let call = async {
        let channel = plain.connect().await?;
        TestClient::new(channel).unary_call(Input {}).await
    };
    bounded("plain call", call)
        .await
        .expect_err("the server speaks only TLS");
    server.stop().await;
}

#[test]
fn an_unusable_configuration_fails_at_tls_config() {
    // A CERTIFICATE block whose bytes are no certificate.
    let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    let tls = ClientTlsConfig::new().ca_certificates(Certificates::from_pem(garbage).expect("PEM"));
    let err = Endpoint::from_static("tcp://127.0.0.1:1")
        .tls_config(tls)
        .expect_err("rustls cannot use that CA");
    assert!(err.to_string().contains("CA"), "{err}");

    // A key that is not the certificate's.
    let (cert, _) = self_signed();
    let (_, other_key) = self_signed();
    let identity = Identity::from_pem(&cert, &other_key).expect("parses");
    let refused = Server::builder().tls_config(ServerTlsConfig::new(identity));
    assert!(refused.is_err(), "a key that does not match is refused");
}
