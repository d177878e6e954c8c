use super::*;

// Certificates made with openssl

/// Runs openssl with `args` in `dir`; `false` when there is no openssl to run.
pub(crate) fn openssl(dir: &std::path::Path, args: &[&str]) -> bool {
    match std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
    {
        Ok(out) => {
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            true
        }
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_made_with_openssl_req_work_as_they_are() {
    let dir = std::env::temp_dir().join(format!("sockrpc-tls-openssl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    // An RSA server certificate (PKCS#8 key), and an EC client certificate whose key file
    // starts with an EC PARAMETERS block: both self-signed, so marked CA, and with no SAN.
    if !openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ],
    ) {
        eprintln!("no openssl on this machine: test skipped");
        return;
    }
    assert!(openssl(
        &dir,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-out",
            "client.key"
        ]
    ));
    assert!(openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-key",
            "client.key",
            "-out",
            "client.pem",
            "-days",
            "2",
            "-subj",
            "/CN=client",
        ]
    ));
    let server = TestServer::start(server_tls(
        ServerTlsConfig::new(
            Identity::from_pem_files(dir.join("server.pem"), dir.join("server.key"))
                .expect("server files"),
        )
        .client_ca(Certificates::from_pem_file(dir.join("client.pem")).expect("client CA")),
    ))
    .await;
    let client = ClientTlsConfig::new()
        .ca_pem_file(dir.join("server.pem"))
        .expect("CA file")
        .identity(
            Identity::from_pem_files(dir.join("client.pem"), dir.join("client.key"))
                .expect("client files"),
        );
    assert_eq!(
        greet(server.endpoint(client)).await.expect("call"),
        "Hello tls!"
    );
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pem_errors_say_what_is_wrong() {
    let err = Certificates::from_pem("no pem here").expect_err("no certificate");
    assert!(err.message().contains("no CERTIFICATE block"), "{err}");
    let ca = Ca::new("test CA");
    let leaf = ca.leaf(SERVER_NAMES);
    let err = Identity::from_pem(&leaf.cert_pem, "").expect_err("no key");
    assert!(err.message().contains("no private key found"), "{err}");
    // A key that is not the certificate's is caught when the configuration is built.
    let other = ca.leaf(SERVER_NAMES);
    let mismatched = Identity::from_pem(&leaf.cert_pem, &other.key_pem).expect("parses");
    let err = ServerTls::new(ServerTlsConfig::new(mismatched)).expect_err("mismatch");
    assert!(err.message().contains("unusable server identity"), "{err}");
    // Client authentication without client CAs.
    let err =
        ServerTls::new(ServerTlsConfig::new(leaf.identity()).client_auth(ClientAuth::Required))
            .expect_err("no client CA");
    assert!(err.message().contains("needs client CAs"), "{err}");
}

// ---------------------------------------------------------------------------------------------
