//! Datagrams round-trip, and every cut or malformed one is refused.

use super::*;

fn header(kind: Kind) -> Header {
    Header {
        kind,
        flags: 0,
        client_instance: 0x0102_0304_0506_0708,
        call_id: 9,
        cookie: [7; COOKIE_LEN],
    }
}

#[test]
fn request_round_trips_and_every_cut_is_refused() {
    let limits = Limits::default();
    let mut metadata = MetadataMap::new();
    metadata.insert_str("k", "v").expect("valid");
    metadata
        .insert_bin("b-bin", vec![0u8, 255].into())
        .expect("valid");
    let path = MethodPath::from_static("/p.S/M");
    for done_below in [None, Some(77)] {
        let mut buf = BytesMut::new();
        let h = header(Kind::Request);
        encode_request(
            &mut buf,
            &h,
            Some(Duration::from_millis(5)),
            done_below,
            &path,
            &metadata,
            b"msg",
        );
        let unsent = if done_below.is_some() { 0 } else { 4 };
        assert_eq!(buf.len(), request_len(&path, &metadata, b"msg") - unsent);
        let parsed_header = Header::parse(&buf).expect("header");
        let flag = if done_below.is_some() {
            FLAG_DONE_BELOW
        } else {
            0
        };
        assert_eq!(parsed_header, Header { flags: flag, ..h });
        let body = Bytes::copy_from_slice(&buf[HEADER_LEN..]);
        let parsed = parse_request(body, parsed_header.flags, &limits).expect("parse");
        assert_eq!(parsed.timeout, Some(Duration::from_millis(5)));
        assert_eq!(parsed.done_below, done_below);
        assert_eq!(parsed.path, path);
        assert_eq!(parsed.metadata, metadata);
        assert_eq!(&parsed.message[..], b"msg");
        // Any cut inside the fixed part or the metadata block is refused; a cut inside the
        // message just shortens it (the message runs to the end of the datagram).
        let fixed = buf.len() - 3;
        for cut in 0..fixed {
            if cut < HEADER_LEN {
                assert!(Header::parse(&buf[..cut]).is_err());
            } else {
                let body = Bytes::copy_from_slice(&buf[HEADER_LEN..cut]);
                assert!(parse_request(body, flag, &limits).is_err(), "cut at {cut}");
            }
        }
    }
}

#[test]
fn replies_round_trip() {
    let limits = Limits::default();
    let mut leading = MetadataMap::new();
    leading.insert_str("l", "1").expect("valid");
    let mut trailing = MetadataMap::new();
    trailing.insert_str("t", "2").expect("valid");
    let ok: Result<Response<Bytes>, Status> = Ok(Response::from_parts(
        leading,
        Bytes::from_static(b"hello"),
        trailing.clone(),
    ));
    let mut err = Status::with_details(Code::NotFound, "gone 𝄞", &b"\x00\x01"[..]);
    *err.metadata_mut() = trailing;
    let err: Result<Response<Bytes>, Status> = Err(err);
    for result in [ok, err] {
        let mut buf = BytesMut::new();
        encode_reply(&mut buf, &header(Kind::Reply), &result);
        assert_eq!(buf.len(), reply_len(&result));
        let back = parse_reply(Bytes::copy_from_slice(&buf[HEADER_LEN..]), &limits).expect("parse");
        match (&result, &back) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.get_ref(), b.get_ref());
                assert_eq!(a.metadata(), b.metadata());
                assert_eq!(a.trailers(), b.trailers());
            }
            (Err(a), Err(b)) => assert_eq!(a, b),
            _ => panic!("kind changed: {result:?} vs {back:?}"),
        }
    }
}

#[test]
fn hostile_headers_are_refused() {
    assert_eq!(Header::parse(&[]), Err(DatagramError::Short));
    let mut buf = BytesMut::new();
    header(Kind::Request).encode(&mut buf);
    let mut bad = buf.to_vec();
    bad[0] = 0;
    assert_eq!(Header::parse(&bad), Err(DatagramError::BadMagic));
    let mut bad = buf.to_vec();
    bad[1] = 2;
    assert_eq!(
        Header::parse(&bad),
        Err(DatagramError::UnsupportedVersion(2))
    );
    let mut bad = buf.to_vec();
    bad[2] = 0x7f;
    assert_eq!(Header::parse(&bad), Err(DatagramError::UnknownKind(0x7f)));
    assert!(Kind::Reply.is_from_server() && !Kind::Request.is_from_server());
    // A metadata count larger than the block.
    let body = Bytes::from_static(&[
        0, 0, 0, 0, 0, 0, 0, 0, 0, 4, b'/', b'a', b'/', b'b', 0xff, 0xff,
    ]);
    assert!(parse_request(body, 0, &Limits::default()).is_err());
}
