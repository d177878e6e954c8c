//! The flags every dynamic command shares: where the server is, how to reach it (TLS), what to
//! send beside the message (metadata, deadline), and where the descriptors come from.

use super::exit::Failure;
use clap::Args;
use sockrpc::{Channel, Endpoint, MetadataMap, Status};
use std::{future::Future, path::PathBuf, time::Duration};

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The server and how to call it.
#[derive(Debug, Clone, Args)]
pub(crate) struct ConnArgs {
    /// The server: tcp://HOST:PORT (or HOST:PORT), tls://HOST:PORT, or a Unix socket as
    /// unix:PATH (relative or absolute) or unix:///ABSOLUTE/PATH (percent-decoded), or on Linux
    /// an abstract one as unix-abstract:NAME.
    #[arg(value_name = "ADDR")]
    pub(crate) addr: String,
    /// Metadata sent with the call, `key:value`; repeatable.
    #[arg(short = 'H', long = "header", value_name = "KEY:VALUE")]
    pub(crate) headers: Vec<String>,
    /// Deadline in seconds of the command as a whole: connecting and asking the server's
    /// reflection service count against it, and a call is sent with what is left of it (the
    /// server gives up past it too).
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    pub(crate) timeout: Option<Duration>,
    /// `.proto` files describing the service, compiled here (no protoc), instead of asking the
    /// server's reflection service; repeatable.
    #[arg(long, value_name = "FILE")]
    pub(crate) proto: Vec<PathBuf>,
    /// Directories imports of --proto files resolve against; repeatable [default: each
    /// file's own directory].
    #[arg(long, value_name = "DIR", requires = "proto")]
    pub(crate) import_path: Vec<PathBuf>,
    /// With tls://: the PEM file of the CAs to trust [default: the platform's CAs].
    #[arg(long, value_name = "PEM")]
    pub(crate) tls_ca: Option<PathBuf>,
    /// With tls://: this client's certificate chain (mutual TLS); with --tls-key.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// With tls://: the name to check the server's certificate against [default: the host].
    #[arg(long, value_name = "NAME")]
    pub(crate) tls_server_name: Option<String>,
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= 86_400.0 => Ok(Duration::from_secs_f64(secs)),
        Ok(_) => Err("must be more than 0 and at most a day".to_owned()),
        Err(err) => Err(format!("{text:?}: {err}")),
    }
}

impl ConnArgs {
    /// The endpoint, with the TLS settings when the address is tls://.
    pub(crate) fn endpoint(&self) -> Result<Endpoint, Failure> {
        endpoint(
            &self.addr,
            self.tls_ca.as_deref(),
            self.tls_cert.as_deref(),
            self.tls_key.as_deref(),
            self.tls_server_name.as_deref(),
        )
    }

    /// A channel to the server, connected now (`UNAVAILABLE` when it cannot be reached).
    pub(crate) async fn connect(&self) -> Result<Channel, Failure> {
        let endpoint = self.endpoint()?.connect_timeout(CONNECT_TIMEOUT);
        Ok(Channel::connect(endpoint).await?)
    }

    /// The `-H` metadata.
    pub(crate) fn metadata(&self) -> Result<MetadataMap, Failure> {
        metadata(&self.headers)
    }
}

/// `body`, given at most `timeout` (`--timeout`) when one is set: a command waiting on a server
/// (to connect, to answer reflection) ends by then with `DEADLINE_EXCEEDED`.
pub(crate) async fn within<T>(
    timeout: Option<Duration>,
    body: impl Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    let Some(timeout) = timeout else {
        return body.await;
    };
    tokio::time::timeout(timeout, body)
        .await
        .unwrap_or_else(|_| {
            Err(Failure::Status(Status::deadline_exceeded(format!(
                "the server did not answer within the --timeout of {}s",
                timeout.as_secs_f64()
            ))))
        })
}

/// The endpoint at `addr` (a bare HOST:PORT is TCP), with TLS settings from the flags when the
/// address is tls://.
pub(crate) fn endpoint(
    addr: &str,
    ca: Option<&std::path::Path>,
    cert: Option<&std::path::Path>,
    key: Option<&std::path::Path>,
    server_name: Option<&str>,
) -> Result<Endpoint, Failure> {
    let endpoint = Endpoint::from_uri(addr).map_err(|status| status.message().to_owned())?;
    if endpoint.is_tls() {
        let tls = crate::tls::client_from_flags(ca, cert, key, server_name)?;
        return Ok(endpoint.tls(tls));
    }
    if ca.is_some() || cert.is_some() || server_name.is_some() {
        return Err(Failure::Input(format!(
            "TLS flags given, but {addr} is not a tls:// address"
        )));
    }
    Ok(endpoint)
}

/// `key:value` pairs as metadata; the reserved `sockrpc-` prefix and malformed pairs are
/// refused here, before any call. A `-bin` key's value is base64, standard or URL-safe, padded
/// or not, as grpcurl takes it, and is sent as the bytes it decodes to.
pub(crate) fn metadata(headers: &[String]) -> Result<MetadataMap, Failure> {
    use base64::engine::{general_purpose, DecodePaddingMode, GeneralPurpose};
    use base64::Engine as _;
    const BASE64: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        general_purpose::NO_PAD.with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        general_purpose::NO_PAD.with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let mut map = MetadataMap::new();
    for header in headers {
        let Some((key, value)) = header.split_once(':') else {
            return Err(Failure::Input(format!("-H {header:?}: expected key:value")));
        };
        let key = key.trim().to_ascii_lowercase();
        let added = if key.ends_with("-bin") {
            let value = value.trim();
            let bytes = BASE64.decode(value).or_else(|err| {
                // `-` or `_` only appear in the URL-safe alphabet.
                if value.contains(['-', '_']) {
                    URL_SAFE.decode(value)
                } else {
                    Err(err)
                }
            });
            let bytes = bytes.map_err(|err| {
                Failure::Input(format!(
                    "-H {header:?}: a -bin key's value is base64: {err}"
                ))
            })?;
            map.append_bin(&key, bytes.into())
        } else {
            map.append_str(&key, value.trim())
        };
        added.map_err(|err| Failure::Input(format!("-H {header:?}: {err}")))?;
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_become_text_or_binary_metadata() {
        let map = metadata(&[
            "X-Trace: abc ".to_owned(),
            "x-echo-bin: AP8B".to_owned(),
            "x-echo-bin:AP8BAA==".to_owned(),
            // URL-safe, as grpcurl takes it too: 0xfb 0xff 0x01.
            "x-echo-bin: -_8B".to_owned(),
        ])
        .expect("valid headers");
        assert_eq!(map.get_str("x-trace"), Some("abc"));
        let bins: Vec<&[u8]> = map.get_all("x-echo-bin").collect();
        assert_eq!(
            bins,
            [
                &[0x00, 0xff, 0x01][..],
                &[0x00, 0xff, 0x01, 0x00][..],
                &[0xfb, 0xff, 0x01][..]
            ]
        );
        for bad in ["x-echo-bin: not base64!", "no-colon", "sockrpc-flag: 1"] {
            assert!(
                matches!(metadata(&[bad.to_owned()]), Err(Failure::Input(_))),
                "{bad}"
            );
        }
    }
}
