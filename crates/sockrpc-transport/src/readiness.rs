//! Registering a socket with the runtime for read readiness only, and waiting for room to write
//! only while a write is blocked.
//!
//! Why: the kernel wakes a socket's `EPOLLOUT` waiters far more often than a writer needs.
//! A Unix stream socket does it each time its peer reads (`unix_write_space` runs whenever a sent
//! buffer is freed and, unlike TCP's write-space callback, does not first check that the writer
//! ever found its buffer full); a UDP socket does it as each datagram it sent is handed on
//! (`sock_def_write_space`). tokio registers its sockets for both directions, so with a call in
//! flight the waiting side was woken once more than it needed (Unix: a second wake-up that
//! preempted the peer still working on the call; UDP: an `epoll_wait` that returned at once with
//! only `EPOLLOUT`, a system call and a turn of the runtime per call on each side).
//!
//! So these sockets are registered for `EPOLLIN` alone and written to directly; a write that
//! finds the buffer full waits through a duplicate of the descriptor registered for `EPOLLOUT`
//! ([`wait_writable`]), which is dropped (deregistered) once there is room.

use std::io;
use std::os::fd::AsRawFd;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Registers `socket` with the runtime for `interest` only.
///
/// tokio 1.54 deprecated this safe constructor for its unsafe `register_with_interest`, whose
/// contract is that the object's descriptor stays open and the same for the registration's whole
/// life. The std sockets registered here own their descriptor and never change it, so the
/// contract holds by construction; `unsafe` is forbidden in this workspace, hence the deprecated
/// safe form.
#[allow(deprecated)]
pub(crate) fn register<T: AsRawFd>(socket: T, interest: Interest) -> io::Result<AsyncFd<T>> {
    AsyncFd::with_interest(socket, interest)
}

/// Waits until `socket` (registered for reads only) has room to write: through a duplicate of
/// its descriptor registered for `EPOLLOUT`, dropped when this returns. Registering reports the
/// socket's state at once, so room made since the write that failed is not missed.
pub(crate) async fn wait_writable<T: AsRawFd>(
    socket: &AsyncFd<T>,
    duplicate: impl FnOnce(&T) -> io::Result<T>,
) -> io::Result<()> {
    let writer = register(duplicate(socket.get_ref())?, Interest::WRITABLE)?;
    let _ready = writer.writable().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    #[tokio::test]
    async fn a_full_socket_registered_for_reads_is_woken_when_the_peer_makes_room() {
        let (ours, mut peer) = UnixStream::pair().expect("socketpair");
        ours.set_nonblocking(true).expect("non-blocking");
        let ours = register(ours, Interest::READABLE).expect("register");
        // Fill our send buffer (and the peer's receive buffer) until the kernel refuses more;
        // bounded: a Unix socket buffers a few hundred KiB.
        let chunk = [7u8; 64 * 1024];
        let mut sent = 0usize;
        loop {
            match ours.get_ref().write(&chunk) {
                Ok(n) => sent += n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) => panic!("write: {err}"),
            }
            assert!(sent < 64 << 20, "the socket never filled");
        }
        // Nobody makes room yet: the wait must not end on its own.
        let early = tokio::time::timeout(
            Duration::from_millis(50),
            wait_writable(&ours, UnixStream::try_clone),
        )
        .await;
        assert!(early.is_err(), "woken without room to write");
        // The peer drains everything (blocking reads on a plain socket, off the runtime).
        let drain = std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            let mut got = 0;
            while got < sent {
                got += peer.read(&mut buf).expect("read");
            }
            peer
        });
        tokio::time::timeout(
            Duration::from_secs(5),
            wait_writable(&ours, UnixStream::try_clone),
        )
        .await
        .expect("woken once the peer made room")
        .expect("wait");
        assert_eq!(ours.get_ref().write(b"x").expect("room to write"), 1);
        drop(drain.join().expect("drain thread"));
    }
}
