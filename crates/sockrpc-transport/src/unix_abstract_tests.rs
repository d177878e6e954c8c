//! Abstract Unix sockets: bound and connected by name (directly, and through the NUL-first path
//! `bind_unix` and `connect_unix` take), a name in use refused, and the names refused.

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A name no other test (or test process) uses.
fn unique(test: &str) -> String {
    format!("sockrpc-test-{test}-{}", std::process::id())
}

#[test]
fn a_nul_first_path_is_an_abstract_name() {
    let path = abstract_path(b"app.sock");
    assert_eq!(path.as_os_str().as_bytes(), b"\0app.sock");
    assert_eq!(abstract_name(&path), Some(&b"app.sock"[..]));
    assert_eq!(abstract_name(Path::new("/run/app.sock")), None);
    assert_eq!(abstract_name(Path::new("rel.sock")), None);
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[tokio::test]
async fn bound_and_connected_by_name() {
    let name = unique("bind");
    let listener = bind_unix_abstract(&name).expect("bind");
    assert_eq!(
        listener.local_addr().expect("local").as_pathname(),
        None,
        "no file"
    );
    // Through the NUL-first path, as an `Endpoint`'s `unix_path` carries it.
    let mut client = crate::connect_unix(abstract_path(name.as_bytes()))
        .await
        .expect("connect");
    let (mut server, peer) = listener.accept().await.expect("accept");
    assert!(peer.as_pathname().is_none(), "the client is unnamed");
    client.write_all(b"ping").await.expect("write");
    let mut buf = [0u8; 4];
    server.read_exact(&mut buf).await.expect("read");
    assert_eq!(&buf, b"ping");

    // The name is taken while the listener lives: refused, never taken over.
    let err = bind_unix_abstract(&name).expect_err("in use");
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
    let err = crate::bind_unix(abstract_path(name.as_bytes())).expect_err("in use");
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
    // Nothing on disk to remove; removing is a no-op.
    crate::UnixSocketFile::bound_at(abstract_path(name.as_bytes())).remove();
    drop((listener, server, client));

    // Free again once its socket is closed: no stale file in the way.
    let again = crate::bind_unix(abstract_path(name.as_bytes())).expect("bind again");
    drop(again);
    let err = connect_unix_abstract(&name)
        .await
        .expect_err("nobody listens");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[tokio::test]
async fn names_that_cannot_be_abstract_are_invalid_input() {
    let long = "x".repeat(MAX_ABSTRACT_NAME + 1);
    for (name, says) in [
        ("", "cannot be empty"),
        ("a\0b", "NUL"),
        (long.as_str(), "longer than the 107"),
    ] {
        let err = bind_unix_abstract(name).expect_err(name);
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{name:?}: {err}");
        assert!(err.to_string().contains(says), "{name:?}: {err}");
        let err = connect_unix_abstract(name).await.expect_err(name);
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{name:?}: {err}");
    }
    // The longest name fits.
    let longest = format!("{}{}", unique("long"), "y".repeat(MAX_ABSTRACT_NAME));
    let longest = &longest[..MAX_ABSTRACT_NAME];
    drop(bind_unix_abstract(longest).expect("107 bytes fit"));
    // `bind_unix` with a lone NUL names the empty abstract name: refused, not autobound.
    let err = crate::bind_unix("\0").expect_err("empty name");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[tokio::test]
async fn abstract_sockets_are_unsupported_off_linux() {
    let err = bind_unix_abstract("name").expect_err("not here");
    assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{err}");
    let err = connect_unix_abstract("name").await.expect_err("not here");
    assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{err}");
}
