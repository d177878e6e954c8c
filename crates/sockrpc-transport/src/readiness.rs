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
//! So these sockets are registered for `EPOLLIN` alone and written to directly. A write that
//! finds the buffer full waits through a duplicate of the descriptor registered for `EPOLLOUT`
//! ([`Room`]): one per socket however many writers wait, registered with the runtime the socket
//! was made on (not whichever runtime the waiting writer happens to run on), and dropped once
//! nobody waits. When no duplicate can be made (the process is out of descriptors: a hostile
//! peer that stops reading on many connections must not turn that into failed writes), or the
//! socket's runtime has shut down (its reactor takes no registration), the writer retries
//! after [`RETRY`] instead, by a timer of the runtime it runs on.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::runtime::Handle;

/// How long a writer that could not register for `EPOLLOUT` waits before it tries again.
pub(crate) const RETRY: Duration = Duration::from_millis(1);

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

/// A socket registered for reads only, with what its writers need to wait for room.
#[derive(Debug)]
pub(crate) struct ReadRegistered<T: AsRawFd> {
    /// The socket, registered for `EPOLLIN`.
    pub(crate) fd: AsyncFd<T>,
    room: Room<T>,
}

impl<T: AsRawFd> ReadRegistered<T> {
    /// Registers `socket` (already non-blocking) for reads with the current runtime, which its
    /// writers' waits will use too.
    pub(crate) fn new(socket: T) -> io::Result<ReadRegistered<T>> {
        Ok(ReadRegistered {
            fd: register(socket, Interest::READABLE)?,
            room: Room {
                runtime: Handle::current(),
                shared: Mutex::new(Weak::new()),
            },
        })
    }

    /// The socket.
    pub(crate) fn get_ref(&self) -> &T {
        self.fd.get_ref()
    }

    /// For a writer whose write just failed with `WouldBlock`: the `EPOLLOUT` registration to
    /// wait on (shared with any other waiting writer), or `None` when none can be made now
    /// (then wait [`RETRY`] and write again).
    pub(crate) fn room(
        &self,
        duplicate: impl FnOnce(&T) -> io::Result<T>,
    ) -> Option<Arc<AsyncFd<T>>> {
        let mut shared = self.room.shared.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = shared.upgrade() {
            return Some(existing);
        }
        let _runtime = self.room.runtime.enter();
        let made = duplicate(self.fd.get_ref()).and_then(|dup| register(dup, Interest::WRITABLE));
        match made {
            Ok(registration) => {
                let registration = Arc::new(registration);
                *shared = Arc::downgrade(&registration);
                Some(registration)
            }
            Err(err) => {
                tracing::debug!(error = %err, "no EPOLLOUT registration for a full socket; retrying by timer");
                None
            }
        }
    }

    /// Runs `write` until it does not fail with `WouldBlock` (or `Interrupted`), waiting for
    /// room between tries.
    pub(crate) async fn write_when_room<R>(
        &self,
        mut write: impl FnMut(&T) -> io::Result<R>,
        duplicate: impl Fn(&T) -> io::Result<T>,
    ) -> io::Result<R> {
        loop {
            match write(self.fd.get_ref()) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    self.wait_writable(&duplicate).await?;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                written => return written,
            }
        }
    }

    /// Waits until a write that failed with `WouldBlock` is worth trying again.
    pub(crate) async fn wait_writable(
        &self,
        duplicate: impl FnOnce(&T) -> io::Result<T>,
    ) -> io::Result<()> {
        match self.room(duplicate) {
            Some(registration) => {
                let mut ready = registration.writable().await?;
                // Cleared before the write is retried: room made from here on is a new event,
                // room made before is seen by the write.
                ready.clear_ready();
            }
            None => self.retry_timer().await,
        }
        Ok(())
    }
}

impl<T: AsRawFd> ReadRegistered<T> {
    /// A [`RETRY`] timer for a writer that could not register: on the runtime polling the
    /// writer, which is alive and driven; on the socket's only for a writer polled outside any
    /// runtime. The socket's runtime may have shut down (a client kept in a static, its socket
    /// made by a test that has returned): no registration can be made there then, and a timer
    /// made there panics when polled.
    pub(crate) fn retry_timer(&self) -> tokio::time::Sleep {
        if Handle::try_current().is_ok() {
            return tokio::time::sleep(RETRY);
        }
        let _runtime = self.room.runtime.enter();
        tokio::time::sleep(RETRY)
    }
}

/// The shared `EPOLLOUT` registration of one socket and the runtime to make it on.
#[derive(Debug)]
struct Room<T: AsRawFd> {
    runtime: Handle,
    shared: Mutex<Weak<AsyncFd<T>>>,
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
        let ours = ReadRegistered::new(ours).expect("register");
        let sent = fill(ours.get_ref());
        // Nobody makes room yet: the wait must not end on its own.
        let early = tokio::time::timeout(
            Duration::from_millis(50),
            ours.wait_writable(UnixStream::try_clone),
        )
        .await;
        assert!(early.is_err(), "woken without room to write");
        // While one writer waits, another shares its registration (no second descriptor).
        let first = ours.room(UnixStream::try_clone).expect("a registration");
        let second = ours.room(UnixStream::try_clone).expect("a registration");
        assert!(Arc::ptr_eq(&first, &second));
        drop((first, second));
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
            ours.wait_writable(UnixStream::try_clone),
        )
        .await
        .expect("woken once the peer made room")
        .expect("wait");
        assert_eq!(ours.get_ref().write(b"x").expect("room to write"), 1);
        drop(drain.join().expect("drain thread"));
        // Nobody waits any more: the registration (and its descriptor) is gone.
        assert!(ours.room.shared.lock().expect("lock").upgrade().is_none());
    }

    /// Fills `ours`'s send buffer (and the peer's receive buffer): bounded, a Unix socket
    /// buffers a few hundred KiB.
    fn fill(ours: &UnixStream) -> usize {
        let chunk = [7u8; 64 * 1024];
        let mut sent = 0usize;
        loop {
            match (&*ours).write(&chunk) {
                Ok(n) => sent += n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return sent,
                Err(err) => panic!("write: {err}"),
            }
            assert!(sent < 64 << 20, "the socket never filled");
        }
    }

    #[test]
    fn a_full_socket_whose_runtime_ended_waits_on_the_writers_runtime() {
        // A client kept in a static: its socket was made on a runtime (a test's) that has
        // ended, and a writer on another runtime finds the buffer full. No `EPOLLOUT`
        // registration can be made on the dead runtime's reactor, so the writer waits by
        // timer; made on the dead runtime, that timer panicked when polled.
        let home = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (ours, mut peer) = UnixStream::pair().expect("socketpair");
        ours.set_nonblocking(true).expect("non-blocking");
        let ours = home.block_on(async { ReadRegistered::new(ours).expect("register") });
        drop(home);
        let sent = fill(ours.get_ref());
        let other = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let drain = std::thread::spawn(move || {
            // Room comes a little later, after the writer found none.
            std::thread::sleep(Duration::from_millis(50));
            let mut buf = vec![0u8; 64 * 1024];
            let mut got = 0;
            while got < sent {
                got += peer.read(&mut buf).expect("read");
            }
            peer
        });
        let written = other.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(5),
                ours.write_when_room(|mut socket| socket.write(b"x"), UnixStream::try_clone),
            )
            .await
        });
        assert!(matches!(written, Ok(Ok(1))), "{written:?}");
        drop(drain.join().expect("drain thread"));
    }

    #[test]
    fn a_writer_on_another_runtime_registers_with_the_sockets_own() {
        // The socket is made on one runtime; a writer polled on a second, short-lived one must
        // not leave the registration bound to it.
        let home = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (ours, _peer) = UnixStream::pair().expect("socketpair");
        ours.set_nonblocking(true).expect("non-blocking");
        let ours = home.block_on(async { ReadRegistered::new(ours).expect("register") });
        let other = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let registration = other.block_on(async { ours.room(UnixStream::try_clone) });
        drop(other);
        let registration = registration.expect("a registration");
        // Still usable on its own runtime after the other one is gone.
        let ready = home.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), registration.writable())
                .await
                .map(|ready| ready.map(|mut guard| guard.clear_ready()))
        });
        assert!(matches!(ready, Ok(Ok(()))), "{ready:?}");
    }
}
