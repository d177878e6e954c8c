//! A server's own key that cannot be served, refused with a message that names the file and
//! says what to do: an encrypted key.

use super::openssl::openssl;
use super::*;

/// A fresh directory for one test's files.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sockrpc-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_key_is_named_as_such_and_the_hint_works() {
    let dir = scratch("encrypted");
    // Traditional PEM encryption (Proc-Type/DEK-Info headers), and PKCS#8 encryption.
    if !openssl(
        &dir,
        &[
            "genrsa",
            "-aes256",
            "-traditional",
            "-passout",
            "pass:secret",
            "-out",
            "traditional.key",
            "2048",
        ],
    ) {
        eprintln!("no openssl on this machine: test skipped");
        return;
    }
    assert!(openssl(
        &dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-aes256",
            "-pass",
            "pass:secret",
            "-out",
            "pkcs8.key",
        ]
    ));
    for key in ["traditional.key", "pkcs8.key"] {
        assert!(openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-key",
                key,
                "-passin",
                "pass:secret",
                "-out",
                &format!("{key}.pem"),
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ]
        ));
    }
    let text = std::fs::read_to_string(dir.join("traditional.key")).expect("key");
    assert!(text.contains("Proc-Type: 4,ENCRYPTED"), "{text}");
    for (key, kind) in [
        ("traditional.key", "Proc-Type: 4,ENCRYPTED"),
        ("pkcs8.key", "PKCS#8 ENCRYPTED PRIVATE KEY"),
    ] {
        let (cert, key_path) = (dir.join(format!("{key}.pem")), dir.join(key));
        let err = Identity::from_pem_files(&cert, &key_path).expect_err("encrypted");
        let message = err.message();
        assert!(
            message.contains("the private key is encrypted"),
            "{message}"
        );
        assert!(message.contains(kind), "{message}");
        assert!(
            message.contains(&format!("{}:", key_path.display())),
            "names the file: {message}"
        );
        let hint = format!("openssl pkey -in {} -out plain.pem", key_path.display());
        assert!(message.contains(&hint), "{message}");
        assert!(!message.contains("malformed PEM"), "{message}");

        // The hint, run (with the passphrase given on the command line), gives a key that is
        // served.
        let plain = format!("{key}.plain");
        assert!(openssl(
            &dir,
            &["pkey", "-in", key, "-passin", "pass:secret", "-out", &plain]
        ));
        let identity = Identity::from_pem_files(&cert, dir.join(&plain)).expect("decrypted");
        let server = TestServer::start(server_tls(ServerTlsConfig::new(identity))).await;
        let client = ClientTlsConfig::new().ca_pem_file(&cert).expect("CA");
        assert_eq!(
            greet(server.endpoint(client)).await.expect("call"),
            "Hello tls!"
        );
        server.stop().await;
    }
    // A certificate and its encrypted key in one file: the file cannot be read at all, and the
    // message says why.
    let both = dir.join("both.pem");
    let mut joined = std::fs::read(dir.join("traditional.key.pem")).expect("cert");
    joined.extend(std::fs::read(dir.join("traditional.key")).expect("key"));
    std::fs::write(&both, joined).expect("write");
    let err = Identity::from_pem_files(&both, &both).expect_err("encrypted");
    assert!(
        err.message()
            .contains(&format!("{}: the private key is encrypted", both.display())),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
