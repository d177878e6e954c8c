//! `Endpoint`'s tests: the address forms parsed (TCP, TLS, Unix sockets as gRPC names them)
//! and refused, and the settings that sit beside them.

use super::*;
use std::os::unix::ffi::OsStrExt;

#[test]
fn parses_forms() {
    let e = Endpoint::from_uri("tcp://127.0.0.1:50051").expect("tcp");
    assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 50051));
    let e = Endpoint::from_uri("[::1]:7").expect("v6");
    assert_eq!((e.host.as_str(), e.port), ("::1", 7));
    assert_eq!(e.to_string(), "tcp://[::1]:7");
    let e = Endpoint::from_uri("http://localhost:80/").expect("http");
    assert_eq!(e.host, "localhost");
    let e = Endpoint::from_uri("unix:///tmp/s.sock").expect("unix");
    assert_eq!(e.unix_path.as_deref(), Some(Path::new("/tmp/s.sock")));
    assert_eq!(e.to_string(), "unix:///tmp/s.sock");
    for bad in [
        "",
        "unix://",
        "nohost",
        "host:",
        ":80",
        "host:99999",
        "udp://h:1",
        "tls://",
        "tls://h",
    ] {
        assert!(Endpoint::from_uri(bad).is_err(), "{bad}");
    }
}

#[test]
fn unix_forms_as_grpc_names_them() {
    for (uri, path, shown) in [
        ("unix:///tmp/s.sock", "/tmp/s.sock", "unix:///tmp/s.sock"),
        ("unix:/tmp/s.sock", "/tmp/s.sock", "unix:///tmp/s.sock"),
        ("unix:s.sock", "s.sock", "unix:s.sock"),
        ("unix:run/s.sock", "run/s.sock", "unix:run/s.sock"),
        ("unix:./s.sock", "./s.sock", "unix:./s.sock"),
    ] {
        let e = Endpoint::from_uri(uri).expect(uri);
        assert_eq!(e.unix_path.as_deref(), Some(Path::new(path)), "{uri}");
        assert_eq!(e.to_string(), shown, "{uri}");
        // What is shown parses back to the same path.
        let again = Endpoint::from_uri(&e.to_string()).expect(shown);
        assert_eq!(again.unix_path, e.unix_path, "{uri}");
    }
    // A relative path given to `Endpoint::unix` is shown as a URI that parses back to it.
    let e = Endpoint::unix("rel/s.sock");
    assert_eq!(e.to_string(), "unix:rel/s.sock");
    // `unix://HOST/...`: an authority, which a Unix socket cannot have. Refused at parse
    // time, naming the forms taken and both readings of what was meant.
    for (uri, authority, examples) in [
        (
            "unix://tmp/x.sock",
            "tmp",
            ["\"unix:///tmp/x.sock\"", "\"unix:tmp/x.sock\""],
        ),
        (
            "unix://localhost/run/s.sock",
            "localhost",
            [
                "\"unix:///localhost/run/s.sock\"",
                "\"unix:localhost/run/s.sock\"",
            ],
        ),
        (
            "unix://x.sock",
            "x.sock",
            ["\"unix:///x.sock\"", "\"unix:x.sock\""],
        ),
    ] {
        let err = Endpoint::from_uri(uri).expect_err(uri);
        assert_eq!(err.code(), sockrpc_protocol::Code::InvalidArgument, "{uri}");
        let message = err.message();
        assert!(message.contains(&format!("{uri:?}")), "{uri}: {message}");
        assert!(
            message.contains(&format!("invalid (non-empty) authority {authority:?}")),
            "{uri}: {message}"
        );
        assert!(message.contains(UNIX_FORMS), "{uri}: {message}");
        for example in examples {
            assert!(message.contains(example), "{uri}: {message}");
        }
    }
    for uri in ["unix:", "unix://"] {
        let err = Endpoint::from_uri(uri).expect_err(uri);
        assert!(err.message().contains("no socket path"), "{uri}: {err}");
        assert!(err.message().contains(UNIX_FORMS), "{uri}: {err}");
    }
}

/// grpc-go takes a path that begins with `/` from the URL's path, percent-decoded, and any
/// other from its opaque part, as written; a bad escape fails the parse.
#[test]
fn unix_paths_are_percent_decoded_as_grpc_go_reads_them() {
    for (uri, path) in [
        ("unix:///tmp/a%20b.sock", &b"/tmp/a b.sock"[..]),
        ("unix:/tmp/a%20b.sock", b"/tmp/a b.sock"),
        ("unix:///tmp/100%25.sock", b"/tmp/100%.sock"),
        ("unix:///tmp/%C3%A9t%C3%A9.sock", "/tmp/été.sock".as_bytes()),
        ("unix:///tmp/%ff.sock", b"/tmp/\xff.sock"),
        ("unix:///tmp/a%2Fb", b"/tmp/a/b"),
        ("unix:///tmp/a b.sock", b"/tmp/a b.sock"),
        // Opaque: taken as written, `%` and all.
        ("unix:a%20b.sock", b"a%20b.sock"),
        ("unix:run/100%.sock", b"run/100%.sock"),
        ("unix:a%zz", b"a%zz"),
    ] {
        let e = Endpoint::from_uri(uri).expect(uri);
        let got = e.unix_path.as_deref().expect(uri);
        assert_eq!(got.as_os_str().as_bytes(), path, "{uri}");
        assert_eq!(e.unix_abstract_name(), None, "{uri}");
        // What is shown parses back to the same path.
        let shown = e.to_string();
        let again = Endpoint::from_uri(&shown).expect(&shown);
        assert_eq!(again.unix_path, e.unix_path, "{uri} shown as {shown}");
    }
    assert_eq!(
        Endpoint::unix("/tmp/100%.sock").to_string(),
        "unix:///tmp/100%25.sock"
    );
    assert_eq!(
        Endpoint::unix("/tmp/a b.sock").to_string(),
        "unix:///tmp/a b.sock"
    );
    assert_eq!(Endpoint::unix("//x.sock").to_string(), "unix:////x.sock");
    for (uri, escape) in [
        ("unix:///tmp/a%2", "%2"),
        ("unix:///tmp/a%", "%"),
        ("unix:///tmp/a%zz.sock", "%zz"),
        ("unix:/tmp/%+1x", "%+1"),
        ("unix:///tmp/%g0", "%g0"),
        ("unix-abstract:/a%q", "%q"),
    ] {
        let err = Endpoint::from_uri(uri).expect_err(uri);
        assert_eq!(err.code(), sockrpc_protocol::Code::InvalidArgument, "{uri}");
        let message = err.message();
        assert!(message.contains(&format!("{uri:?}")), "{uri}: {message}");
        assert!(
            message.contains(&format!("invalid percent-escape {escape:?}")),
            "{uri}: {message}"
        );
    }
    // A NUL cannot be in a file's path (and first, it would name an abstract socket).
    for uri in ["unix:///tmp/a%00b", "unix:/%00x", "unix:\0x"] {
        let err = Endpoint::from_uri(uri).expect_err(uri);
        assert_eq!(err.code(), sockrpc_protocol::Code::InvalidArgument, "{uri}");
        assert!(err.message().contains("NUL"), "{uri}: {err}");
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn unix_abstract_names_as_grpc_names_them() {
    for (uri, name, shown) in [
        ("unix-abstract:app", &b"app"[..], "unix-abstract:app"),
        ("unix-abstract:a%20b", b"a%20b", "unix-abstract:a%20b"),
        ("unix-abstract:/a%20b", b"/a b", "unix-abstract:///a b"),
        (
            "unix-abstract:///run/x",
            b"/run/x",
            "unix-abstract:///run/x",
        ),
        ("unix-abstract:/100%25", b"/100%", "unix-abstract:///100%25"),
    ] {
        let e = Endpoint::from_uri(uri).expect(uri);
        assert_eq!(e.unix_abstract_name(), Some(name), "{uri}");
        let mut nul_first = vec![0];
        nul_first.extend_from_slice(name);
        let path = e.unix_path.as_deref().expect(uri);
        assert_eq!(path.as_os_str().as_bytes(), nul_first, "{uri}");
        assert_eq!(e.to_string(), shown, "{uri}");
        let again = Endpoint::from_uri(&e.to_string()).expect(shown);
        assert_eq!(again.unix_path, e.unix_path, "{uri}");
    }
    let made = Endpoint::unix_abstract("app").expect("a name");
    assert_eq!(made.unix_abstract_name(), Some(&b"app"[..]));
    assert_eq!(made.to_string(), "unix-abstract:app");

    let long = format!("unix-abstract:{}", "x".repeat(108));
    for (uri, says) in [
        ("unix-abstract:", "no abstract socket name"),
        ("unix-abstract://", "no abstract socket name"),
        ("unix-abstract:/a%00b", "cannot contain a NUL byte"),
        ("unix-abstract:a\0b", "cannot contain a NUL byte"),
        (long.as_str(), "longer than the 107"),
        (
            "unix-abstract://host/name",
            "invalid (non-empty) authority \"host\"",
        ),
    ] {
        let err = Endpoint::from_uri(uri).expect_err(uri);
        assert_eq!(err.code(), sockrpc_protocol::Code::InvalidArgument, "{uri}");
        assert!(err.message().contains(says), "{uri}: {err}");
        assert!(err.message().contains("unix-abstract:NAME"), "{uri}: {err}");
    }
    for name in ["", "a\0b"] {
        let err = Endpoint::unix_abstract(name).expect_err(name);
        assert_eq!(
            err.code(),
            sockrpc_protocol::Code::InvalidArgument,
            "{name:?}"
        );
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[test]
fn unix_abstract_names_are_refused_off_linux() {
    let err = Endpoint::from_uri("unix-abstract:app").expect_err("not here");
    assert_eq!(err.code(), sockrpc_protocol::Code::InvalidArgument);
    assert!(err.message().contains("only on Linux"), "{err}");
    assert!(Endpoint::unix_abstract("app").is_err());
}

#[test]
fn the_forms_tonic_users_type_and_a_missing_port_named() {
    for (uri, host, port) in [
        ("http://example.com:50051", "example.com", 50051),
        ("example.com:50051", "example.com", 50051),
        ("tcp://10.0.0.1:1", "10.0.0.1", 1),
        ("http://[::1]:9/", "::1", 9),
    ] {
        let e = Endpoint::from_uri(uri).expect(uri);
        assert_eq!((e.host.as_str(), e.port), (host, port), "{uri}");
    }
    for uri in [
        "http://example.com",
        "localhost",
        "[::1]",
        "tcp://h:",
        "[::1]:",
    ] {
        let err = Endpoint::from_uri(uri).expect_err(uri);
        assert!(
            err.message().contains("has no port") && err.message().contains(uri),
            "{uri}: {err}"
        );
    }
    // The example given is the URI with a port, never a doubled colon.
    for (uri, example) in [
        ("127.0.0.1:", "127.0.0.1:50051"),
        ("tcp://h:", "tcp://h:50051"),
        ("tls://h", "tls://h:50051"),
        ("[::1]:", "[::1]:50051"),
        ("http://[::1]/", "http://[::1]:50051"),
    ] {
        let err = Endpoint::from_uri(uri).expect_err(uri);
        assert!(
            err.message().contains(&format!("(e.g. {example:?})")),
            "{uri}: {err}"
        );
        assert!(!err.message().contains("::50051"), "{uri}: {err}");
    }
    let err = Endpoint::from_uri("h:99999").expect_err("port");
    assert!(err.message().contains("invalid port \"99999\""), "{err}");
}

#[test]
fn send_and_receive_limits_are_separate() {
    let e = Endpoint::new("h", 1)
        .max_decoding_message_size(1 << 20)
        .max_encoding_message_size(8 << 20);
    assert_eq!(e.limits.max_message_size, 1 << 20);
    assert_eq!(e.limits.send_limit(), 8 << 20);
    // Unset, a side sends no more than it would itself accept.
    assert_eq!(Endpoint::new("h", 1).limits.send_limit(), 4 << 20);
}

#[cfg(feature = "tls")]
#[test]
fn parses_tls_forms() {
    let e = Endpoint::from_uri("tls://example.com:443").expect("tls");
    assert!(e.is_tls());
    assert_eq!(e.to_string(), "tls://example.com:443");
    let e = Endpoint::from_uri("tcps://[::1]:7").expect("tcps");
    assert_eq!(e.to_string(), "tls://[::1]:7");
    assert!(!Endpoint::from_uri("tcp://h:1").expect("tcp").is_tls());
    // As tonic and grpc users write them.
    for (uri, shown) in [
        ("https://example.com:443", "tls://example.com:443"),
        ("https://example.com:8443/", "tls://example.com:8443"),
        ("https://[::1]:7", "tls://[::1]:7"),
        ("grpcs://h:9", "tls://h:9"),
        ("grpc://h:9", "tcp://h:9"),
    ] {
        let e = Endpoint::from_uri(uri).expect(uri);
        assert_eq!(e.to_string(), shown, "{uri}");
    }
    // No port is still named, as for every scheme.
    let err = Endpoint::from_uri("https://example.com").expect_err("no port");
    assert!(err.message().contains("has no port"), "{err}");
}

#[cfg(feature = "tls")]
#[test]
fn udp_is_off_with_tls_unless_allowed() {
    let addr: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let plain = Endpoint::new("h", 1).udp(addr);
    assert!(plain.udp_in_effect().is_some());
    let tls = Endpoint::from_uri("tls://h:1").expect("tls").udp(addr);
    assert!(tls.udp_in_effect().is_none());
    let allowed = tls.udp_policy(Some(UdpPolicy::new(addr).allow_plaintext_with_tls(true)));
    assert!(allowed.udp_in_effect().is_some());
}

#[test]
fn user_agent_names_the_framework_too() {
    let e = Endpoint::new("h", 1)
        .user_agent("billing/2.1")
        .expect("ascii");
    assert_eq!(
        e.user_agent.as_deref(),
        Some(concat!("billing/2.1 sockrpc/", env!("CARGO_PKG_VERSION")))
    );
    assert!(Endpoint::new("h", 1).user_agent("bad\nagent").is_err());
}

/// grpc-go parses a target as a URL: a `?query` and a `#fragment` are not part of the socket's
/// name (a bad escape in the fragment fails the parse); a path with `?` or `#` in it is written
/// with them encoded, so it parses back to itself.
#[test]
fn a_query_and_a_fragment_are_no_part_of_a_unix_socket_name() {
    for (uri, path) in [
        ("unix:///tmp/s.sock?x=1", "/tmp/s.sock"),
        ("unix:///tmp/s.sock#frag", "/tmp/s.sock"),
        ("unix:///tmp/s.sock?x=1#frag", "/tmp/s.sock"),
        ("unix:///tmp/s.sock#a?b", "/tmp/s.sock"),
        ("unix:///tmp/s.sock?", "/tmp/s.sock"),
        ("unix:/tmp/s.sock?x", "/tmp/s.sock"),
        ("unix:s.sock?x#y", "s.sock"),
        ("unix:///tmp/a%3Fb%23c", "/tmp/a?b#c"),
    ] {
        let e = Endpoint::from_uri(uri).expect(uri);
        assert_eq!(e.unix_path.as_deref(), Some(Path::new(path)), "{uri}");
        let shown = e.to_string();
        let again = Endpoint::from_uri(&shown).expect(&shown);
        assert_eq!(again.unix_path, e.unix_path, "{uri} shown as {shown}");
    }
    assert_eq!(
        Endpoint::unix("/tmp/a?b#c").to_string(),
        "unix:///tmp/a%3Fb%23c"
    );
    // The authority is read before the query: still refused.
    assert!(Endpoint::from_uri("unix://host/s.sock?x").is_err());
    for uri in ["unix:?x", "unix:#y", "unix://?x"] {
        let err = Endpoint::from_uri(uri).expect_err(uri);
        assert!(err.message().contains("no socket path"), "{uri}: {err}");
    }
    let err = Endpoint::from_uri("unix:///tmp/s.sock#a%zz").expect_err("a bad escape");
    assert!(
        err.message()
            .contains("invalid percent-escape \"%zz\" in the fragment"),
        "{err}"
    );
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let e = Endpoint::from_uri("unix-abstract:app?x#y").expect("abstract");
        assert_eq!(e.unix_abstract_name(), Some(&b"app"[..]));
    }
}

/// grpc-go dials `unix:@NAME` as Go's `net` reads `@NAME`: the Linux abstract socket `NAME`,
/// the same as `unix-abstract:NAME`. `unix:///@x` stays the file `/@x`, and a relative file
/// `@x` is written `unix:./@x`.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn unix_at_name_is_the_abstract_socket_of_that_name() {
    let e = Endpoint::from_uri("unix:@app").expect("abstract");
    assert_eq!(e.unix_abstract_name(), Some(&b"app"[..]));
    assert_eq!(e.to_string(), "unix-abstract:app");
    let e = Endpoint::from_uri("unix:@a%20b?x").expect("abstract");
    assert_eq!(
        e.unix_abstract_name(),
        Some(&b"a%20b"[..]),
        "opaque: as written"
    );
    let err = Endpoint::from_uri("unix:@").expect_err("an empty abstract name");
    assert_eq!(err.code(), sockrpc_protocol::Code::InvalidArgument, "{err}");
    assert!(err.message().contains("unix-abstract:NAME"), "{err}");
    let e = Endpoint::from_uri("unix:///@app").expect("a file");
    assert_eq!(e.unix_abstract_name(), None);
    assert_eq!(e.unix_path.as_deref(), Some(Path::new("/@app")));
    let file = Endpoint::unix("@app");
    assert_eq!(file.to_string(), "unix:./@app");
    let again = Endpoint::from_uri(&file.to_string()).expect("a file");
    assert_eq!(again.unix_path.as_deref(), Some(Path::new("./@app")));
    assert_eq!(again.unix_abstract_name(), None);
}
