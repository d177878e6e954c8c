//! gRPC's `dns:` target strings, read into a [`DnsDiscovery`]: a grpc-go user writes
//! `dns:///svc.example.com:50051`, not a name and a port apart, and expects the same forms to
//! mean the same thing here.
//!
//! | target | name | port | DNS server |
//! | --- | --- | --- | --- |
//! | `dns:///NAME:PORT`, `dns:NAME:PORT` | NAME | PORT | the system's (`/etc/resolv.conf`) |
//! | `dns:///NAME`, `dns:NAME` | NAME | 443 (grpc-go's default) | the system's |
//! | `dns://IP[:P]/NAME[:PORT]` | NAME | PORT, else 443 | IP, port P (53 by default) |
//! | `dns://HOST[:P]/NAME[:PORT]` | NAME | PORT, else 443 | HOST's addresses, port P (53 by default; `server.rs`) |
//! | `dns://NAME:PORT` | NAME | PORT | the system's (sockrpc's CLI form; grpc-go refuses it) |
//! | `dns:///:PORT`, `dns://:P/NAME` | `localhost` | PORT | `localhost`, port P (as grpc-go) |
//!
//! NAME may be an IP literal (`[::1]:50051`, `127.0.0.1`, or `::1` without a port), used as
//! it is; a trailing dot and upper case are kept (DNS compares names case-insensitively). A
//! target that fits none of these is refused with `INVALID_ARGUMENT` saying why, never
//! looked up in vain.

use super::server::{self, Server};
use super::DnsDiscovery;
use sockrpc_protocol::Status;
use std::net::IpAddr;

/// The port of a target that names none: grpc-go's (`defaultPort = "443"`).
pub const DEFAULT_PORT: u16 = 443;

impl DnsDiscovery {
    /// The A and AAAA lookup a gRPC `dns:` target asks for (the forms: this module's docs):
    /// `dns:///svc.example.com:50051`, `dns://127.0.0.1:5353/svc.example.com:50051`.
    /// `INVALID_ARGUMENT`, saying what is wrong, for a target of none of those forms.
    pub fn target(target: &str) -> Result<DnsDiscovery, Status> {
        let (name, port, server) = parse(target).map_err(|why| {
            Status::invalid_argument(format!(
                "{target:?} is not a DNS target: {why} (want dns:///NAME[:PORT], dns:NAME[:PORT] \
                 or dns://DNS-SERVER[:PORT]/NAME[:PORT])"
            ))
        })?;
        let mut discovery = DnsDiscovery::ip(name, port);
        discovery.server = server;
        Ok(discovery)
    }
}

/// A target's name, port and DNS server.
fn parse(target: &str) -> Result<(String, u16, Option<Server>), String> {
    let scheme_len = "dns:".len();
    let rest = match target.get(..scheme_len) {
        Some(scheme) if scheme.eq_ignore_ascii_case("dns:") => &target[scheme_len..],
        _ => return Err("the scheme is not \"dns:\"".into()),
    };
    if rest.contains(['?', '#']) {
        return Err("a query or fragment has no meaning here".into());
    }
    let (authority, host) = match rest.strip_prefix("//") {
        Some(rest) => match rest.split_once('/') {
            Some((authority, host)) => (authority, host),
            // `dns://NAME:PORT`: sockrpc's CLI form, the name where the authority goes. With
            // no name (`dns://:PORT`) it could as well be a DNS server's port with no name
            // after it: refused, as grpc-go refuses that reading (no name to look up).
            None if rest.starts_with(':') => {
                return Err(format!(
                    "dns://{rest} names no host (for localhost write dns:///{rest})"
                ))
            }
            None => ("", rest),
        },
        None => ("", rest),
    };
    let server = match authority {
        "" => None,
        authority => Some(server::parse(authority)?),
    };
    let (name, port) = host_port(host, DEFAULT_PORT)?;
    Ok((name, port, server))
}

/// The name and port of `NAME[:PORT]`, `[IPv6][:PORT]` or a bare IPv6 address; `default` when
/// none is given. `:PORT` names `localhost`, as grpc-go's `parseTarget` reads it.
pub(super) fn host_port(host: &str, default: u16) -> Result<(String, u16), String> {
    if host.is_empty() {
        return Err("no name".into());
    }
    if host.contains('/') {
        return Err(format!(
            "{host:?} has a '/' (a name and a port go after the DNS server)"
        ));
    }
    // A bare IPv6 address: its colons are not a port's.
    if let Ok(IpAddr::V6(ip)) = host.parse::<IpAddr>() {
        return Ok((format!("[{ip}]"), default));
    }
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (ip, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{host:?}: '[' without ']'"))?;
        ip.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("{host:?}: [{ip}] is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            after => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| format!("{host:?}: {after:?} after ']'"))?,
            ),
        };
        (format!("[{ip}]"), port)
    } else {
        match host.rsplit_once(':') {
            Some((name, _)) if name.contains(':') => {
                return Err(format!("{host:?}: an IPv6 address with a port goes in [ ]"))
            }
            Some((name, port)) => (name.to_owned(), Some(port)),
            None => (host.to_owned(), None),
        }
    };
    let name = match (name.is_empty(), port) {
        (false, _) => name,
        // `:PORT`: this machine, as grpc-go reads it (and Go's `net.Dial`).
        (true, Some(port)) if !port.is_empty() => "localhost".to_owned(),
        (true, _) => return Err(format!("{host:?} has no name")),
    };
    let port = match port {
        None => default,
        Some("") => return Err(format!("{host:?}: no port after ':'")),
        Some(port) => match port.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("{host:?}: {port:?} is not a port (1-65535)")),
            Ok(port) => port,
        },
    };
    Ok((name, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::SocketAddr;

    fn ok(target: &str) -> (String, u16, Option<Server>) {
        parse(target).unwrap_or_else(|e| panic!("{target}: {e}"))
    }

    #[test]
    fn grpc_go_s_forms() {
        let server = |s: &str| Some(Server::Addr(s.parse::<SocketAddr>().expect("addr")));
        assert_eq!(
            ok("dns:///svc.test:50051"),
            ("svc.test".into(), 50051, None)
        );
        assert_eq!(ok("dns:///svc.test"), ("svc.test".into(), 443, None));
        assert_eq!(ok("dns:svc.test:7"), ("svc.test".into(), 7, None));
        assert_eq!(ok("dns:svc.test"), ("svc.test".into(), 443, None));
        assert_eq!(ok("DNS:///Svc.Test.:7"), ("Svc.Test.".into(), 7, None));
        assert_eq!(
            ok("dns://127.0.0.1:5353/svc.test:7"),
            ("svc.test".into(), 7, server("127.0.0.1:5353"))
        );
        assert_eq!(
            ok("dns://127.0.0.9/svc.test"),
            ("svc.test".into(), 443, server("127.0.0.9:53"))
        );
        assert_eq!(
            ok("dns://[::1]:5300/svc.test:7"),
            ("svc.test".into(), 7, server("[::1]:5300"))
        );
        assert_eq!(ok("dns://[::1]/x:7").2, server("[::1]:53"));
        // grpc-go's dialer looks a DNS server's name up; so does the lookup task here.
        let host = |name: &str, port| {
            Some(Server::Host {
                name: name.into(),
                port,
            })
        };
        assert_eq!(
            ok("dns://dns.example/svc.test:7"),
            ("svc.test".into(), 7, host("dns.example", 53))
        );
        assert_eq!(ok("dns://localhost:5353/x").2, host("localhost", 5353));
        assert_eq!(ok("dns:///[::1]:50051"), ("[::1]".into(), 50051, None));
        assert_eq!(ok("dns:///[::1]"), ("[::1]".into(), 443, None));
        assert_eq!(ok("dns:///::1"), ("[::1]".into(), 443, None));
        assert_eq!(ok("dns:///127.0.0.1:80"), ("127.0.0.1".into(), 80, None));
        assert_eq!(ok("dns://svc.test:7"), ("svc.test".into(), 7, None));
        // grpc-go's `parseTarget`: a port without a host names this machine.
        assert_eq!(ok("dns:///:7"), ("localhost".into(), 7, None));
        assert_eq!(ok("dns::7"), ("localhost".into(), 7, None));
        assert_eq!(
            ok("dns://:5353/svc.test:7"),
            ("svc.test".into(), 7, host("localhost", 5353))
        );
    }

    #[test]
    fn malformed_targets_say_why() {
        for (bad, why) in [
            ("svc.test:7", "scheme"),
            ("http:///svc.test:7", "scheme"),
            ("dns:///", "no name"),
            ("dns://127.0.0.1/", "no name"),
            ("dns:///svc.test:", "no port"),
            ("dns:///:", "no name"),
            ("dns://:/svc.test:7", "no name"),
            ("dns://:53", "names no host"),
            ("dns:///svc.test:99999", "not a port"),
            ("dns:///svc.test:0", "not a port"),
            ("dns:///svc.test:http", "not a port"),
            (
                "dns://dns example/svc.test:7",
                "not IP[:PORT] nor NAME[:PORT]",
            ),
            ("dns://dns.example:0/svc.test:7", "not a port"),
            ("dns://dns.example:/svc.test:7", "no port"),
            ("dns:///[::1", "without ']'"),
            ("dns:///[nope]:7", "not an IPv6"),
            ("dns:///[::1]x", "after ']'"),
            ("dns:///fe80::1:http", "goes in [ ]"),
            ("dns:///svc.test:7/x", "'/'"),
            ("dns:///svc.test:7?x=1", "query"),
        ] {
            let error = parse(bad).expect_err(bad);
            assert!(error.contains(why), "{bad}: {error}");
        }
        let status = DnsDiscovery::target("dns:///").expect_err("no name");
        assert_eq!(status.code(), sockrpc_protocol::Code::InvalidArgument);
        assert!(status.message().contains("dns:///NAME"), "{status:?}");
    }

    /// Odd targets (every pair of these pieces, and long or non-ASCII ones) are refused or
    /// read, never a panic; a name read is one the lookup can take (an IP literal or a name).
    #[test]
    fn odd_targets_never_panic() {
        let pieces = [
            "dns:",
            "DNS:",
            "dnś:",
            "d",
            "/",
            "//",
            "///",
            "[",
            "]",
            "[::1]",
            "::1",
            ":",
            ":0",
            ":65536",
            ":-1",
            ":+7",
            "127.0.0.1",
            "é",
            "🦀",
            "\u{0}",
            " ",
            ".",
            "..",
            "%",
            "%2F",
            "[fe80::1%eth0]",
            "@",
            "xn--",
            "*",
            "?",
            "#",
            "\u{200b}",
        ];
        let mut targets: Vec<String> = Vec::new();
        for a in pieces {
            for b in pieces {
                for c in ["", "svc.test", ":7", "/x"] {
                    targets.push(format!("{a}{b}{c}"));
                    targets.push(format!("dns:{a}{b}{c}"));
                    targets.push(format!("dns://{a}/{b}{c}"));
                    targets.push(format!("dns:///{a}{b}{c}"));
                }
            }
        }
        targets.push(format!("dns:///{}", "a".repeat(100_000)));
        targets.push(format!("dns:///{}:7", "a.".repeat(300)));
        targets.push(format!("dns:///{}", "é".repeat(300)));
        targets.push(format!("dns://{}/x", "[".repeat(1000)));
        for target in &targets {
            if let Ok((name, port, _)) = parse(target) {
                assert!(port > 0, "{target}");
                assert!(!name.is_empty(), "{target}");
                let _ = super::super::lookup::literal(&name);
                let _ = name.parse::<hickory_resolver::Name>();
            }
            let _ = DnsDiscovery::target(target);
        }
    }
}
