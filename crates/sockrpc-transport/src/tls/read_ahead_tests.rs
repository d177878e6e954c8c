//! The read-ahead under a real TLS session (a 12 KiB record in two socket reads, then one, where
//! rustls alone reads it 4 KiB at a time) and on its own (small reads straight through, the
//! prefix first, reads bounded, the end).

use super::*;
use crate::tls::split::{
    split,
    tests::{configs, localhost, Counted},
};
use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Reads the plaintext of one `len`-byte record `server` writes, and returns the socket reads
/// it took.
async fn socket_reads_for_a_record<R, W>(
    server: &mut W,
    reader: &mut R,
    reads: &AtomicUsize,
    len: usize,
) -> usize
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let message = vec![7u8; len];
    server.write_all(&message).await.expect("write");
    server.flush().await.expect("flush");
    let before = reads.load(Ordering::SeqCst);
    let mut got = vec![0u8; len];
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        reader.read_exact(&mut got),
    )
    .await
    .expect("in time")
    .expect("read");
    assert!(got == message, "the plaintext, whole");
    reads.load(Ordering::SeqCst) - before
}

#[tokio::test]
async fn a_12_kib_record_takes_two_reads_of_the_socket_then_one() {
    let (acceptor, connector) = configs();
    // An in-memory pipe, so that the whole record is surely waiting before the first read.
    let (near, far) = tokio::io::duplex(64 * 1024);
    let reads = Arc::new(AtomicUsize::new(0));
    let near = ReadAhead::new(Counted {
        inner: near,
        reads: Arc::clone(&reads),
    });
    let (client, server) = tokio::join!(connector.connect(localhost(), near), acceptor.accept(far));
    let (client, mut server) = (client.expect("client"), server.expect("server"));
    let (mut reader, _writer) = split(client);
    // One record each (rustls cuts records at 16 KiB). The first: 4 KiB straight into rustls,
    // which fills what it asked for, then the rest at once (rustls alone: four reads).
    let first = socket_reads_for_a_record(&mut server, &mut reader, &reads, 12 * 1024).await;
    assert_eq!(first, 2, "the first 4 KiB, then the rest in one read");
    // Reading ahead from then on: the whole record in one read.
    let second = socket_reads_for_a_record(&mut server, &mut reader, &reads, 12 * 1024).await;
    assert_eq!(second, 1, "one read of the socket for the record");
}

#[tokio::test]
async fn small_reads_go_straight_through_without_a_buffer() {
    let (near, mut far) = tokio::io::duplex(1024);
    let mut ahead = ReadAhead::new(near);
    let mut piece = vec![0u8; 4096];
    for round in 0..3u8 {
        far.write_all(&[round; 100]).await.expect("write");
        let n = ahead.read(&mut piece).await.expect("read");
        assert_eq!(&piece[..n], &[round; 100][..]);
        assert!(
            !ahead.ahead,
            "a read that did not fill the buffer turned reading ahead on"
        );
        assert_eq!(ahead.buf.capacity(), 0, "a buffer was made for small reads");
    }
}

#[tokio::test]
async fn the_prefix_comes_first_then_the_stream_in_reads_of_at_most_read_ahead() {
    let (near, mut far) = tokio::io::duplex(256 * 1024);
    let reads = Arc::new(AtomicUsize::new(0));
    let mut ahead = ReadAhead::with_prefix(
        b"ab".to_vec(),
        Counted {
            inner: near,
            reads: Arc::clone(&reads),
        },
    );
    let sent: Vec<u8> = (0..2 * READ_AHEAD + 4096 + 100)
        .map(|i| (i % 251) as u8)
        .collect();
    far.write_all(&sent).await.expect("write");
    drop(far);

    // The prefix, handed over in the pieces asked for, without a read of the stream.
    let mut one = [0u8; 1];
    assert_eq!(ahead.read(&mut one).await.expect("read"), 1);
    assert_eq!(&one, b"a");
    assert_eq!(ahead.read(&mut one).await.expect("read"), 1);
    assert_eq!(&one, b"b");
    assert_eq!(reads.load(Ordering::SeqCst), 0);

    // Then the stream: a first read straight into the caller's 4 KiB, which it fills, so
    // reading ahead starts: the next read of the stream takes `READ_AHEAD` bytes at most,
    // handed over in 4 KiB pieces with no further read.
    let mut piece = vec![0u8; 4096];
    let n = ahead.read(&mut piece).await.expect("read");
    assert_eq!((n, reads.load(Ordering::SeqCst)), (4096, 1));
    let mut got = piece[..n].to_vec();
    for _ in 0..READ_AHEAD / 4096 {
        let n = ahead.read(&mut piece).await.expect("read");
        assert_eq!((n, reads.load(Ordering::SeqCst)), (4096, 2));
        got.extend_from_slice(&piece[..n]);
    }
    // However large a piece is asked for: what is left of a read ahead, then a new one.
    let mut big = vec![0u8; 2 * READ_AHEAD];
    let n = ahead.read(&mut big).await.expect("read");
    assert_eq!((n, reads.load(Ordering::SeqCst)), (READ_AHEAD, 3));
    got.extend_from_slice(&big[..n]);
    let n = ahead.read(&mut big).await.expect("read");
    assert_eq!((n, reads.load(Ordering::SeqCst)), (100, 4));
    got.extend_from_slice(&big[..n]);
    assert!(got == sent, "every byte, in order");

    // The end of the stream reads as nothing.
    assert_eq!(ahead.read(&mut big).await.expect("read"), 0);
}
