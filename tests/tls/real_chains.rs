//! The chain-size check (`crates/sockrpc-transport/src/tls/chain_size.rs`) against chains as
//! operators make them: openssl, RSA-4096, root → two intermediates → leaf, loaded with the
//! root included. Such a chain (about 7 KiB of DER) is served from files, from PEM bytes and by
//! a rotation, and presented as a client identity; a leaf past 64 KiB (thousands of names, as
//! a catch-all certificate may carry) is refused on each path, a watch on the files included,
//! and the identity in force is kept.

use super::openssl::openssl;
use super::*;
use std::path::Path;

/// openssl's extensions for the chain: two CA sections, and a leaf for server and client use.
const EXTENSIONS: &str = "\
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
[huge]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = @names
";

/// Makes, in `dir`, an RSA-4096 key and certificate `name` signed by `issuer` (self-signed
/// when `None`) with the extensions section `section` and the serial number `serial`. `false`: no openssl here.
fn make(dir: &Path, name: &str, issuer: Option<&str>, section: &str, serial: &str) -> bool {
    let (key, csr, pem) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
    );
    let subject = format!("/CN=sockrpc test {name}");
    if !openssl(
        dir,
        &[
            "req", "-new", "-newkey", "rsa:4096", "-nodes", "-keyout", &key, "-out", &csr, "-subj",
            &subject,
        ],
    ) {
        return false;
    }
    let mut args = vec![
        "x509",
        "-req",
        "-in",
        &csr,
        "-out",
        &pem,
        "-days",
        "2",
        "-sha256",
        "-extfile",
        "ext.cnf",
        "-extensions",
        section,
    ];
    let (ca, ca_key) = issuer.map_or((String::new(), String::new()), |issuer| {
        (format!("{issuer}.pem"), format!("{issuer}.key"))
    });
    if issuer.is_some() {
        args.extend(["-CA", &ca, "-CAkey", &ca_key, "-set_serial", serial]);
    } else {
        args.extend(["-signkey", &key]);
    }
    openssl(dir, &args)
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).expect("read PEM")
}

/// The chain's files in a fresh directory: root, two intermediates, a leaf, and `huge` (a leaf
/// of the second intermediate whose names make its DER past 64 KiB). `None`: no openssl.
fn chain(tag: &str) -> Option<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("sockrpc-tls-chain-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let mut ext = EXTENSIONS.to_owned();
    ext.push_str("[names]\n");
    for n in 1..=2_000 {
        ext.push_str(&format!(
            "DNS.{n} = host-{n:05}.a-rather-long-subdomain.example.com\n"
        ));
    }
    std::fs::write(dir.join("ext.cnf"), ext).expect("write ext.cnf");
    if !make(&dir, "root", None, "ca", "1") {
        eprintln!("no openssl on this machine: test skipped");
        return None;
    }
    assert!(make(&dir, "int1", Some("root"), "ca", "2"));
    assert!(make(&dir, "int2", Some("int1"), "ca", "3"));
    assert!(make(&dir, "leaf", Some("int2"), "leaf", "4"));
    assert!(make(&dir, "huge", Some("int2"), "huge", "5"));
    let intermediates = read(&dir, "int2.pem") + &read(&dir, "int1.pem");
    let full = read(&dir, "leaf.pem") + &intermediates + &read(&dir, "root.pem");
    std::fs::write(dir.join("full.pem"), full).expect("write full chain");
    let huge = read(&dir, "huge.pem") + &intermediates;
    std::fs::write(dir.join("huge-chain.pem"), huge).expect("write huge chain");
    Some(dir)
}

fn trusting_root(dir: &Path) -> ClientTlsConfig {
    ClientTlsConfig::new()
        .ca_pem_file(dir.join("root.pem"))
        .expect("root CA file")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rsa_4096_chain_of_four_with_its_root_is_served_from_files_bytes_and_rotation() {
    let Some(dir) = chain("rsa4096") else {
        return;
    };
    let from_files =
        Identity::from_pem_files(dir.join("full.pem"), dir.join("leaf.key")).expect("chain files");
    let tls = ServerTls::new(
        ServerTlsConfig::new(from_files)
            .client_ca(Certificates::from_pem_file(dir.join("root.pem")).expect("client CA")),
    )
    .expect("a real chain of four RSA-4096 certificates, root included, is not too large");
    let server = TestServer::start(tls.clone()).await;
    // The same chain as the client's identity, for mutual TLS.
    let client = || {
        trusting_root(&dir).identity(
            Identity::from_pem_files(dir.join("full.pem"), dir.join("leaf.key"))
                .expect("client chain files"),
        )
    };
    assert_eq!(
        greet(server.endpoint(client())).await.expect("call"),
        "Hello tls!"
    );
    // From PEM bytes, by a rotation.
    let from_bytes =
        Identity::from_pem(read(&dir, "full.pem"), read(&dir, "leaf.key")).expect("chain bytes");
    tls.reload_identity(from_bytes)
        .expect("rotation to the same real chain");
    assert_eq!(tls.reloads(), 1);
    assert_eq!(
        greet(server.endpoint(client())).await.expect("call"),
        "Hello tls!"
    );
    // The huge leaf (past 64 KiB): refused by the rotation, as a client identity, and as a
    // server identity from files.
    let huge = || {
        Identity::from_pem_files(dir.join("huge-chain.pem"), dir.join("huge.key"))
            .expect("huge chain files")
    };
    let err = tls
        .reload_identity(huge())
        .expect_err("huge rotation")
        .to_string();
    assert!(err.contains("64 KiB"), "{err}");
    assert_eq!(tls.reloads(), 1);
    let err = trusting_root(&dir)
        .identity(huge())
        .build()
        .expect_err("huge client identity")
        .to_string();
    assert!(err.contains("64 KiB"), "{err}");
    let err = ServerTlsConfig::new(huge())
        .build()
        .expect_err("huge server identity")
        .to_string();
    assert!(err.contains("64 KiB"), "{err}");
    assert_eq!(
        greet(server.endpoint(client())).await.expect("call"),
        "Hello tls!"
    );
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_on_files_refuses_a_chain_past_64_kib_and_takes_the_next_good_one() {
    let Some(dir) = chain("watch") else {
        return;
    };
    let (cert, key) = (dir.join("served.pem"), dir.join("served.key"));
    std::fs::copy(dir.join("full.pem"), &cert).expect("copy chain");
    std::fs::copy(dir.join("leaf.key"), &key).expect("copy key");
    let tls = ServerTls::new(ServerTlsConfig::new(
        Identity::from_pem_files(&cert, &key).expect("served files"),
    ))
    .expect("config");
    let server = TestServer::start(tls.clone()).await;
    let _watch = tls.watch(TlsFiles::new(&cert, &key), Duration::from_millis(20));
    // Rotated on disk to the huge leaf: the watch refuses it and the chain in force stays.
    std::fs::copy(dir.join("huge-chain.pem"), &cert).expect("huge chain");
    std::fs::copy(dir.join("huge.key"), &key).expect("huge key");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        tls.reloads(),
        0,
        "a chain past 64 KiB was taken by the watch"
    );
    assert_eq!(
        greet(server.endpoint(trusting_root(&dir)))
            .await
            .expect("call"),
        "Hello tls!"
    );
    // Then to the real chain without its root: taken (the watch was reading all along).
    let without_root = read(&dir, "leaf.pem") + &read(&dir, "int2.pem") + &read(&dir, "int1.pem");
    std::fs::write(&cert, without_root).expect("chain without root");
    std::fs::copy(dir.join("leaf.key"), &key).expect("key");
    let deadline = Instant::now() + Duration::from_secs(5);
    while tls.reloads() == 0 {
        assert!(
            Instant::now() < deadline,
            "the watch never took the good chain"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        greet(server.endpoint(trusting_root(&dir)))
            .await
            .expect("call"),
        "Hello tls!"
    );
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
