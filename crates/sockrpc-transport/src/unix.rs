//! Unix domain sockets: same framing and features as TCP, for peers on one host.
//!
//! Binding removes a *stale* socket file (one left by a server that died: nothing accepts on it)
//! but never a live one, and never a file that is not a socket — a typo in a path must not
//! delete someone's data.

use std::{io, os::unix::fs::FileTypeExt, path::Path};
use tokio::net::{UnixListener, UnixStream};

/// Binds a Unix socket listener at `path`, replacing a stale socket file left there.
///
/// Fails with `AddrInUse` when a live server already listens on `path`, and with `AlreadyExists`
/// when `path` is a file of another kind (which is left untouched).
pub fn bind_unix(path: impl AsRef<Path>) -> io::Result<UnixListener> {
    let path = path.as_ref();
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("{} is in use by a live server", path.display()),
                    ))
                }
                // Nobody accepts on it: a leftover of a server that is gone.
                Err(_) => std::fs::remove_file(path)?,
            }
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket; refusing to replace it",
                    path.display()
                ),
            ))
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    UnixListener::bind(path)
}

/// Connects to the Unix socket at `path`.
pub async fn connect_unix(path: impl AsRef<Path>) -> io::Result<UnixStream> {
    UnixStream::connect(path).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stale_live_and_foreign_files() {
        let dir = std::env::temp_dir().join(format!("sockrpc-unix-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);

        let live = bind_unix(&path).expect("bind");
        let err = bind_unix(&path).expect_err("live socket is kept");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        drop(live);
        // The file stays behind after the listener is gone: stale, so it is replaced.
        assert!(path.exists());
        let _again = bind_unix(&path).expect("stale socket replaced");

        let plain = dir.join("data.txt");
        std::fs::write(&plain, b"precious").expect("write");
        let err = bind_unix(&plain).expect_err("not a socket");
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&plain).expect("still there"), b"precious");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
