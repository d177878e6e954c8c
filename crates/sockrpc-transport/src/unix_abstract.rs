//! Linux abstract Unix sockets (gRPC's `unix-abstract:NAME`): a name in the kernel's abstract
//! namespace instead of a file. There is no file to replace when binding or to remove when the
//! server stops, and no file permissions apply: any process on the host may connect. The name
//! goes away with the last socket bound to it.
//!
//! An abstract name travels as a path whose first byte is NUL (`"\0NAME"`), as it sits in the
//! socket address and as tokio and socket2 take it: an [`Endpoint`](crate::Endpoint)'s
//! `unix_path`, [`bind_unix`](crate::bind_unix) and [`connect_unix`](crate::connect_unix)
//! carry either kind, and [`abstract_name`] tells them apart. Only Linux (and Android) has the
//! abstract namespace; elsewhere binding or connecting fails with `Unsupported`, and an
//! endpoint URI naming one is refused when parsed.

use socket2::{Domain, SockAddr, Socket, Type};
use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use tokio::net::{UnixListener, UnixStream};

/// The longest abstract name: the 108 path bytes of a Linux socket address, less the NUL that
/// marks the name abstract.
pub const MAX_ABSTRACT_NAME: usize = 107;

/// Whether this platform has the abstract namespace.
const SUPPORTED: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// Backlog of a listener bound here: tokio's (`UnixListener::bind`).
const BACKLOG: i32 = 1024;

/// The abstract name `path` stands for, when its first byte is NUL.
pub fn abstract_name(path: &Path) -> Option<&[u8]> {
    path.as_os_str().as_bytes().strip_prefix(b"\0")
}

/// The path that stands for the abstract name `name`: NUL, then the name.
pub(crate) fn abstract_path(name: &[u8]) -> PathBuf {
    let mut bytes = Vec::with_capacity(name.len() + 1);
    bytes.push(0);
    bytes.extend_from_slice(name);
    PathBuf::from(OsString::from_vec(bytes))
}

/// Why `name` cannot name an abstract socket here, if it cannot: not on this platform, empty,
/// with a NUL byte (gRPC's naming doc: "abstract_path cannot contain null bytes"), or longer
/// than [`MAX_ABSTRACT_NAME`].
pub(crate) fn check_name(name: &[u8]) -> Result<(), String> {
    if !SUPPORTED {
        return Err(
            "Linux abstract sockets (unix-abstract:) exist only on Linux and Android".into(),
        );
    }
    if name.is_empty() {
        return Err("an abstract socket name cannot be empty".into());
    }
    if name.contains(&0) {
        return Err("an abstract socket name cannot contain a NUL byte".into());
    }
    if name.len() > MAX_ABSTRACT_NAME {
        return Err(format!(
            "an abstract socket name of {} bytes is longer than the {MAX_ABSTRACT_NAME} a \
             socket address holds",
            name.len()
        ));
    }
    Ok(())
}

/// [`check_name`] as an I/O error: `Unsupported` off Linux, `InvalidInput` for a bad name.
fn checked(name: &[u8]) -> io::Result<SockAddr> {
    check_name(name).map_err(|message| {
        let kind = if SUPPORTED {
            io::ErrorKind::InvalidInput
        } else {
            io::ErrorKind::Unsupported
        };
        io::Error::new(kind, message)
    })?;
    SockAddr::unix(abstract_path(name))
}

/// Binds a Unix socket listener to the abstract name `name` (without the leading NUL).
///
/// Fails with `AddrInUse` when a socket is bound to the name already (the name is free again
/// once that socket closes: there is never a stale one to replace), with `InvalidInput` for a
/// name [`Endpoint::unix_abstract`](crate::Endpoint::unix_abstract) refuses, and with
/// `Unsupported` off Linux and Android.
pub fn bind_unix_abstract(name: impl AsRef<[u8]>) -> io::Result<UnixListener> {
    let addr = checked(name.as_ref())?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.bind(&addr)?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    UnixListener::from_std(socket.into())
}

/// Connects to the Unix socket bound to the abstract name `name` (without the leading NUL),
/// without blocking the thread: a Unix socket connect completes or fails at once, and one to a
/// listener whose backlog is full fails with `WouldBlock`, as tokio's `UnixStream::connect`
/// does. Fails as [`bind_unix_abstract`] does for a name that cannot be one, and with
/// `ConnectionRefused` when nothing is bound to it.
pub async fn connect_unix_abstract(name: impl AsRef<[u8]>) -> io::Result<UnixStream> {
    let addr = checked(name.as_ref())?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    socket.connect(&addr)?;
    UnixStream::from_std(socket.into())
}

#[cfg(test)]
#[path = "unix_abstract_tests.rs"]
mod tests;
