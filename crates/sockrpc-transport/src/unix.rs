//! Unix domain sockets: same framing and features as TCP, for peers on one host.
//!
//! A path whose first byte is NUL names a Linux abstract socket instead of a file; binding and
//! connecting hand it to `unix_abstract.rs`, and there is no file to look at or remove.
//!
//! Binding removes a *stale* socket file (one left by a server that died: connecting to it is
//! refused) but never a live one, never one it cannot tell is stale, and never a file that is
//! not a socket — a typo in a path must not delete someone's data. Removing the socket file
//! once serving ends ([`UnixSocketFile`]) likewise removes only the file the server bound: not
//! whatever someone put at the path since.

use socket2::{Domain, SockAddr, Socket, Type};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::{
    io,
    path::{Path, PathBuf},
};
use tokio::net::{UnixListener, UnixStream};

/// Binds a Unix socket listener at `path`, replacing a stale socket file left there.
///
/// A socket file is stale when connecting to it is refused (`ECONNREFUSED`: nobody listens);
/// only then is it removed. Fails with `AddrInUse` when a server listens on `path` (even one too
/// busy to take another connection), with `AlreadyExists` when `path` is a file of another kind,
/// with `InvalidInput` when `path` is empty, and with the connect error when connecting fails
/// otherwise (permission denied, a socket of another type such as a datagram server's, …): in
/// those cases the file is left untouched.
///
/// A path whose first byte is NUL (`"\0NAME"`) binds the Linux abstract name after it, as
/// [`bind_unix_abstract`](crate::bind_unix_abstract) does.
pub fn bind_unix(path: impl AsRef<Path>) -> io::Result<UnixListener> {
    let path = path.as_ref();
    if let Some(name) = crate::unix_abstract::abstract_name(path) {
        return crate::bind_unix_abstract(name);
    }
    if path.as_os_str().is_empty() {
        // Linux binds an empty path to a random abstract address ("autobind"): a server no
        // client could find by any path, listening without a word of error.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "empty Unix socket path: give the path of the socket file to create",
        ));
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match probe(path) {
            Probe::Live => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is in use by a live server", path.display()),
                ))
            }
            // Nobody accepts on it: a leftover of a server that is gone. Someone else may have
            // removed it in the meantime; that is as good.
            Probe::Stale => match std::fs::remove_file(path) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
                _ => {}
            },
            Probe::Gone => {}
            Probe::Unknown(err) => {
                return Err(io::Error::new(
                    err.kind(),
                    format!(
                        "{}: cannot tell whether a server listens there ({err}); leaving it alone",
                        path.display()
                    ),
                ))
            }
        },
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

/// What connecting to an existing socket file says about it.
#[derive(Debug)]
enum Probe {
    /// A server accepts there, or would but its backlog is full.
    Live,
    /// Connecting is refused: nobody listens. The file may go.
    Stale,
    /// The file went away since it was looked at.
    Gone,
    /// Anything else: the file may well be in use, and stays.
    Unknown(io::Error),
}

/// Connects to `path` without blocking (a blocking connect to a live server whose backlog is
/// full would wait for it indefinitely) and classifies the outcome.
fn probe(path: &Path) -> Probe {
    let attempt = SockAddr::unix(path).and_then(|addr| {
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        socket.connect(&addr)
    });
    match attempt {
        Ok(()) => Probe::Live,
        Err(err) => classify(err),
    }
}

/// Classifies a failed connect to a socket file. Only a refusal proves the file stale.
fn classify(err: io::Error) -> Probe {
    match err.kind() {
        io::ErrorKind::ConnectionRefused => Probe::Stale,
        // A Unix socket connect that would block: the listener's backlog is full.
        io::ErrorKind::WouldBlock => Probe::Live,
        io::ErrorKind::NotFound => Probe::Gone,
        _ => Probe::Unknown(err),
    }
}

/// The socket file a listener was bound at, remembered by its identity (device and inode), so
/// that [`remove`](UnixSocketFile::remove) deletes that file and nothing else.
#[derive(Debug)]
pub struct UnixSocketFile {
    path: PathBuf,
    /// Device and inode of the socket file, when it could be read just after binding.
    identity: Option<(u64, u64)>,
}

impl UnixSocketFile {
    /// Remembers the socket file at `path`; call it right after [`bind_unix`] bound `path`.
    /// An abstract name (a path whose first byte is NUL) has no file: removing it does nothing.
    pub fn bound_at(path: impl AsRef<Path>) -> UnixSocketFile {
        let path = path.as_ref().to_path_buf();
        let identity = socket_identity(&path);
        UnixSocketFile { path, identity }
    }

    /// Removes the socket file if `path` still names it. A file put at the path since — another
    /// server's socket, or data written there after the socket was deleted — is left alone.
    pub fn remove(self) {
        if self.identity.is_some() && socket_identity(&self.path) == self.identity {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Device and inode of the socket file at `path` (not following a symlink), if it is one.
fn socket_identity(path: &Path) -> Option<(u64, u64)> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    meta.file_type()
        .is_socket()
        .then(|| (meta.dev(), meta.ino()))
}

/// Connects to the Unix socket at `path`; a path whose first byte is NUL (`"\0NAME"`), to the
/// Linux abstract name after it, as
/// [`connect_unix_abstract`](crate::connect_unix_abstract) does.
pub async fn connect_unix(path: impl AsRef<Path>) -> io::Result<UnixStream> {
    let path = path.as_ref();
    match crate::unix_abstract::abstract_name(path) {
        Some(name) => crate::connect_unix_abstract(name).await,
        None => UnixStream::connect(path).await,
    }
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

        let err = bind_unix("").expect_err("an empty path names no socket file");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");

        let plain = dir.join("data.txt");
        std::fs::write(&plain, b"precious").expect("write");
        let err = bind_unix(&plain).expect_err("not a socket");
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&plain).expect("still there"), b"precious");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A fresh directory for one test, removed on drop.
    struct TempDir(std::path::PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!("sockrpc-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("temp dir");
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[tokio::test]
    async fn only_the_socket_file_bound_is_removed() {
        let dir = TempDir::new("unix-remove");
        let path = dir.0.join("s.sock");
        let listener = bind_unix(&path).expect("bind");
        UnixSocketFile::bound_at(&path).remove();
        assert!(!path.exists(), "the socket file bound is removed");
        drop(listener);

        // Replaced while the server ran, by a file of data: kept.
        let listener = bind_unix(&path).expect("bind");
        let file = UnixSocketFile::bound_at(&path);
        std::fs::remove_file(&path).expect("remove");
        std::fs::write(&path, b"precious").expect("write");
        file.remove();
        assert_eq!(std::fs::read(&path).expect("kept"), b"precious");
        std::fs::remove_file(&path).expect("remove");
        drop(listener);

        // Replaced by another server's socket: kept, and that server still reachable.
        let listener = bind_unix(&path).expect("bind");
        let file = UnixSocketFile::bound_at(&path);
        std::fs::remove_file(&path).expect("remove");
        let other = bind_unix(&path).expect("another server binds the path");
        file.remove();
        assert!(
            matches!(probe(&path), Probe::Live),
            "the other server's socket is kept"
        );
        drop((listener, other));
    }

    #[test]
    fn only_a_refused_connect_makes_a_socket_file_stale() {
        let kind = |kind: io::ErrorKind| classify(io::Error::from(kind));
        assert!(matches!(
            kind(io::ErrorKind::ConnectionRefused),
            Probe::Stale
        ));
        assert!(matches!(kind(io::ErrorKind::WouldBlock), Probe::Live));
        assert!(matches!(kind(io::ErrorKind::NotFound), Probe::Gone));
        for other in [
            io::ErrorKind::PermissionDenied,
            io::ErrorKind::TimedOut,
            io::ErrorKind::Interrupted,
            io::ErrorKind::OutOfMemory,
            io::ErrorKind::Other,
        ] {
            assert!(matches!(kind(other), Probe::Unknown(_)), "{other:?}");
        }
        // The errno values a connect really returns: ECONNREFUSED (111), EACCES (13) and
        // EPROTOTYPE (91, a socket of another type) on Linux.
        assert!(matches!(
            classify(io::Error::from_raw_os_error(111)),
            Probe::Stale
        ));
        for errno in [13, 91] {
            assert!(matches!(
                classify(io::Error::from_raw_os_error(errno)),
                Probe::Unknown(_)
            ));
        }
    }

    #[tokio::test]
    async fn socket_file_of_a_live_datagram_server_is_left_alone() {
        let dir = TempDir::new("unix-dgram");
        let path = dir.0.join("d.sock");
        let server = std::os::unix::net::UnixDatagram::bind(&path).expect("datagram bind");
        // A stream connect to a datagram socket fails with EPROTOTYPE, not ECONNREFUSED.
        let err = bind_unix(&path).expect_err("a datagram server's socket is not replaced");
        assert_ne!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
        assert!(err.to_string().contains("leaving it alone"), "{err}");
        // Still there, and still the datagram server's.
        let client = std::os::unix::net::UnixDatagram::unbound().expect("client");
        client.send_to(b"still here", &path).expect("send");
        let mut buf = [0u8; 16];
        server
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        let n = server.recv(&mut buf).expect("the server still receives");
        assert_eq!(&buf[..n], b"still here");
    }

    #[test]
    fn live_server_with_a_full_backlog_is_in_use_and_not_waited_on() {
        let dir = TempDir::new("unix-backlog");
        let path = dir.0.join("b.sock");
        let listener = Socket::new(Domain::UNIX, Type::STREAM, None).expect("socket");
        listener
            .bind(&SockAddr::unix(&path).expect("addr"))
            .expect("bind");
        listener.listen(0).expect("listen");
        // Fill the backlog: connects that nobody accepts, until the next one would block.
        let mut pending = Vec::new();
        let full = (0..1000).any(|_| {
            let client = Socket::new(Domain::UNIX, Type::STREAM, None).expect("client");
            client.set_nonblocking(true).expect("nonblocking");
            match client.connect(&SockAddr::unix(&path).expect("addr")) {
                Ok(()) => {
                    pending.push(client);
                    false
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => true,
                Err(err) => panic!("connect: {err}"),
            }
        });
        assert!(full, "the backlog never filled");
        let (done, result) = std::sync::mpsc::channel();
        let probe_path = path.clone();
        // On its own thread, so that a bind_unix that blocks fails the test instead of hanging it.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let bound = runtime.block_on(async { bind_unix(&probe_path).map(drop) });
            let _ = done.send(bound);
        });
        let err = result
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("bind_unix waited on a busy server")
            .expect_err("a busy server's socket is not replaced");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
        assert!(path.exists());
        drop(pending);
        drop(listener);
    }

    #[tokio::test]
    async fn socket_file_that_denies_permission_is_left_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new("unix-perm");
        // Whether this process bypasses permission checks (root, CAP_DAC_OVERRIDE): then a
        // connect is never denied and the case cannot arise here.
        let probe = dir.0.join("probe");
        std::fs::write(&probe, b"x").expect("write");
        std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o000)).expect("chmod");
        if std::fs::read(&probe).is_ok() {
            eprintln!("permission checks are bypassed here (root?): EACCES cannot be provoked");
            return;
        }
        let path = dir.0.join("p.sock");
        // A stale socket, but one this process may not connect to: it cannot tell it is stale.
        drop(std::os::unix::net::UnixListener::bind(&path).expect("bind"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).expect("chmod");
        let err = bind_unix(&path).expect_err("a socket it may not probe is not replaced");
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
        assert!(path.exists());
    }
}
