//! The read-ahead under a real TLS session (a 12 KiB record in one socket read, where rustls
//! alone reads it 4 KiB at a time) and on its own (the prefix first, reads bounded, the end).

use super::*;
use crate::tls::split::{
    split,
    tests::{configs, localhost, Counted},
};
use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn a_12_kib_record_takes_one_read_of_the_socket() {
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
    let message = vec![7u8; 12 * 1024];
    // One record (rustls cuts records at 16 KiB).
    server.write_all(&message).await.expect("write");
    server.flush().await.expect("flush");
    let (mut reader, _writer) = split(client);
    let before = reads.load(Ordering::SeqCst);
    let mut got = vec![0u8; message.len()];
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        reader.read_exact(&mut got),
    )
    .await
    .expect("in time")
    .expect("read");
    assert!(got == message, "the plaintext, whole");
    assert_eq!(
        reads.load(Ordering::SeqCst) - before,
        1,
        "one read of the socket for the record, not one per 4 KiB rustls asks for"
    );
}

#[tokio::test]
async fn the_prefix_comes_first_then_the_stream_in_reads_of_at_most_read_ahead() {
    let (near, mut far) = tokio::io::duplex(128 * 1024);
    let reads = Arc::new(AtomicUsize::new(0));
    let mut ahead = ReadAhead::with_prefix(
        b"ab".to_vec(),
        Counted {
            inner: near,
            reads: Arc::clone(&reads),
        },
    );
    let sent: Vec<u8> = (0..READ_AHEAD + 100).map(|i| (i % 251) as u8).collect();
    far.write_all(&sent).await.expect("write");
    drop(far);

    // The prefix, handed over in the pieces asked for, without a read of the stream.
    let mut one = [0u8; 1];
    assert_eq!(ahead.read(&mut one).await.expect("read"), 1);
    assert_eq!(&one, b"a");
    assert_eq!(ahead.read(&mut one).await.expect("read"), 1);
    assert_eq!(&one, b"b");
    assert_eq!(reads.load(Ordering::SeqCst), 0);

    // Then the stream: the first read of it takes at most `READ_AHEAD` bytes, handed over in
    // 4 KiB pieces with no further read, however large a piece the caller asks for.
    let mut piece = vec![0u8; 4096];
    let n = ahead.read(&mut piece).await.expect("read");
    assert_eq!((n, reads.load(Ordering::SeqCst)), (4096, 1));
    let mut got = piece[..n].to_vec();
    let mut big = vec![0u8; 2 * READ_AHEAD];
    let n = ahead.read(&mut big).await.expect("read");
    assert_eq!(n, READ_AHEAD - 4096, "the rest of the first read, not more");
    assert_eq!(reads.load(Ordering::SeqCst), 1);
    got.extend_from_slice(&big[..n]);
    let n = ahead.read(&mut big).await.expect("read");
    assert_eq!((n, reads.load(Ordering::SeqCst)), (100, 2));
    got.extend_from_slice(&big[..n]);
    assert!(got == sent, "every byte, in order");

    // The end of the stream reads as nothing.
    assert_eq!(ahead.read(&mut big).await.expect("read"), 0);
}
