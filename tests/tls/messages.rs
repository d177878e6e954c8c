//! A server's own certificate and key that cannot be served, each refused with a message that
//! names the file and says what to do: an encrypted key, a key of another certificate, a chain
//! out of order or of another CA; and a lone certificate whose issuer is not in its file,
//! served with a warning.

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

#[test]
fn a_key_of_another_certificate_names_both_files_and_the_leaf_first_rule() {
    let dir = scratch("mismatch");
    let ca = Ca::new("mismatch CA");
    let (a, b) = (ca.leaf(SERVER_NAMES), ca.leaf(SERVER_NAMES));
    let (cert, key) = (dir.join("a.pem"), dir.join("b.key"));
    std::fs::write(&cert, &a.cert_pem).expect("write");
    std::fs::write(&key, &b.key_pem).expect("write");
    let identity = Identity::from_pem_files(&cert, &key).expect("parses");
    let err = ServerTls::new(ServerTlsConfig::new(identity)).expect_err("mismatch");
    let message = err.message();
    for words in [
        format!("the private key in {}", key.display()),
        format!(
            "does not belong to the first certificate of {}",
            cert.display()
        ),
        "CN=sockrpc test leaf".to_owned(),
        "the leaf (the server's own certificate) must come first".to_owned(),
    ] {
        assert!(message.contains(&words), "{words:?} in {message}");
    }

    // The leaf second: the key belongs to certificate 2 of the file, and the message says so.
    let chain = dir.join("reversed.pem");
    std::fs::write(&chain, format!("{}{}", ca.pem(), a.cert_pem)).expect("write");
    std::fs::write(&key, &a.key_pem).expect("write");
    let identity = Identity::from_pem_files(&chain, &key).expect("parses");
    let err = ServerTls::new(ServerTlsConfig::new(identity)).expect_err("leaf second");
    assert!(
        err.message().contains(
            "it belongs to certificate 2 of the file (\"CN=sockrpc test leaf\"): the server's \
             own certificate must come first"
        ),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_file_must_be_a_chain_in_order() {
    let dir = scratch("chain");
    let root = Ca::new("order root CA");
    let upper = root.intermediate("order upper CA");
    let lower = upper.intermediate("order lower CA");
    let leaf = lower.leaf(SERVER_NAMES);
    let (cert, key) = (dir.join("chain.pem"), dir.join("leaf.key"));
    std::fs::write(&key, &leaf.key_pem).expect("write");
    let serve = |pem: String| {
        std::fs::write(&cert, pem).expect("write");
        let identity = Identity::from_pem_files(&cert, &key).expect("parses");
        ServerTls::new(ServerTlsConfig::new(identity))
    };

    // In order, with or without the root: served, and trusted by a client of the root.
    let in_order = format!("{}{}{}", leaf.cert_pem, lower.pem(), upper.pem());
    let tls = serve(in_order.clone()).expect("in order");
    serve(format!("{in_order}{}", root.pem())).expect("in order, root included");
    let server = TestServer::start(tls.clone()).await;
    let trust = ClientTlsConfig::new().ca_certificates(root.certificates());
    let live = Channel::connect(server.endpoint(trust.clone()))
        .await
        .expect("connect");
    assert_eq!(call(&live).await.expect("call"), "Hello tls!");

    // Out of order: the leaf's issuer is further down.
    let err = serve(format!("{}{}{}", leaf.cert_pem, upper.pem(), lower.pem())).expect_err("order");
    let message = err.message();
    for words in [
        cert.display().to_string().as_str(),
        "certificate 1 (\"CN=sockrpc test leaf\", issued by \"CN=order lower CA\") is followed \
         by certificate 2 (\"CN=order upper CA\"), which did not issue it",
        "its issuer is certificate 3 of the file: the certificates are out of order",
    ] {
        assert!(message.contains(words), "{words:?} in {message}");
    }
    // A certificate of another chain (here, the root where the intermediates should be).
    let err = serve(format!("{}{}", leaf.cert_pem, root.pem())).expect_err("unrelated");
    assert!(
        err.message()
            .contains("its issuer is not in the file: certificate 2 belongs to another chain"),
        "{err}"
    );

    // Rotation refuses such a file too, and says so, naming it; the chain in force stays.
    std::fs::write(&cert, &in_order).expect("write");
    let _watch = tls.watch(TlsFiles::new(&cert, &key), Duration::from_millis(20));
    let _ = warnings();
    std::fs::write(&cert, format!("{}{}", leaf.cert_pem, root.pem())).expect("write");
    let lines = warned(&["TLS watch", &cert.display().to_string(), "did not issue it"]).await;
    assert!(!lines.is_empty(), "no warning:\n{}", warnings());
    assert_eq!(tls.reloads(), 0);
    assert_eq!(
        greet(server.endpoint(trust))
            .await
            .expect("the chain in force"),
        "Hello tls!"
    );
    assert_eq!(call(&live).await.expect("live connection"), "Hello tls!");
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_certificate_whose_issuer_is_not_in_its_file_is_served_with_a_warning() {
    let _ = warnings();
    let dir = scratch("lone");
    let root = Ca::new("lone root CA");
    let intermediate = root.intermediate("lone missing intermediate CA");
    let leaf = intermediate.leaf(SERVER_NAMES);
    let (cert, key) = (dir.join("leaf-only.pem"), dir.join("leaf.key"));
    std::fs::write(&cert, &leaf.cert_pem).expect("write");
    std::fs::write(&key, &leaf.key_pem).expect("write");
    let tls = server_tls(ServerTlsConfig::new(
        Identity::from_pem_files(&cert, &key).expect("files"),
    ));
    let lines = warned(&[
        &cert.display().to_string(),
        "holds only the server's certificate, issued by \"CN=lone missing intermediate CA\"",
        "append its certificate to the file after the server's",
    ])
    .await;
    assert_eq!(lines.len(), 1, "{}", warnings());

    // And indeed a client of the root refuses it, naming the certificate and its issuer.
    let server = TestServer::start(tls).await;
    let started = Instant::now();
    let status = expect_unavailable(
        greet(server.endpoint(ClientTlsConfig::new().ca_certificates(root.certificates()))).await,
        started,
        "not signed by a CA this client trusts",
    );
    assert!(
        status.message().contains(
            "certificate \"CN=sockrpc test leaf\" (issued by \"CN=lone missing intermediate \
             CA\"): its issuer \"CN=lone missing intermediate CA\" is not a trusted CA"
        ),
        "{status:?}"
    );
    server.stop().await;

    // A leaf issued directly by a root the clients trust works as it did (with the warning).
    let direct = root.leaf(SERVER_NAMES);
    let server = TestServer::start(server_tls(ServerTlsConfig::new(direct.identity()))).await;
    assert_eq!(
        greet(server.endpoint(ClientTlsConfig::new().ca_certificates(root.certificates())))
            .await
            .expect("call"),
        "Hello tls!"
    );
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
