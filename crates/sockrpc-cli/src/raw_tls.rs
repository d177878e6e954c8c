//! The TLS floor: a raw TLS echo (tokio-rustls, the same 4-byte-length framing as the raw TCP
//! echo) and its client, for the `raw-tls` row that `sockrpc-tls` is quoted against.

use crate::load::{Caller, Tally};
use crate::raw::{connect, echo_frame, frame, tally_echo, CONNECT_TIMEOUT};
use crate::raw_echo::{echo_tcp, serve_each};
use sockrpc::tls::pki_types::ServerName;
use sockrpc::tls::{ClientTlsConfig, ServerTls};
use std::{io, net::SocketAddr, time::Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Accepts connections, runs the server's TLS handshake with what `tls` holds, and echoes frames
/// inside each session, until the task is dropped. The limits are the TCP echo's
/// (`raw_echo.rs`), the handshake bounded by [`CONNECT_TIMEOUT`].
pub(crate) async fn serve_tls(listener: TcpListener, tls: ServerTls) {
    serve_each(listener, "raw TLS echo", move |stream, budget, activity| {
        let acceptor = TlsAcceptor::from(tls.rustls_config());
        async move {
            match tokio::time::timeout(CONNECT_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(session)) => echo_tcp(session, budget, activity).await,
                Ok(Err(err)) => Err(err),
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "TLS handshake not completed in time",
                )),
            }
        }
    })
    .await;
}

/// One raw TLS session with one call in flight: write the frame, read the echo.
pub(crate) struct RawTls {
    addr: SocketAddr,
    connector: TlsConnector,
    name: ServerName<'static>,
    stream: Option<tokio_rustls::client::TlsStream<TcpStream>>,
    frame: Vec<u8>,
    reply: Vec<u8>,
}

impl std::fmt::Debug for RawTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawTls").field("addr", &self.addr).finish()
    }
}

/// A TCP connection to `addr` (sockrpc's socket options) and a TLS handshake over it, checking
/// the server's certificate against `name`.
pub(crate) async fn connect_tls(
    connector: &TlsConnector,
    addr: SocketAddr,
    name: ServerName<'static>,
) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let stream = connect(addr).await?;
    tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?
}

impl RawTls {
    /// Connects to the raw TLS echo at `addr`, checking its certificate as `tls` says.
    pub(crate) async fn connect(
        addr: SocketAddr,
        tls: &ClientTlsConfig,
        host: &str,
        payload: usize,
    ) -> io::Result<RawTls> {
        let config = tls.build().map_err(io::Error::from)?;
        let connector = TlsConnector::from(config);
        let name = ServerName::try_from(tls.server_name_for(host).to_owned())
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
        let frame = frame(payload)?;
        let stream = connect_tls(&connector, addr, name.clone()).await?;
        Ok(RawTls {
            addr,
            connector,
            name,
            stream: Some(stream),
            reply: vec![0; frame.len()],
            frame,
        })
    }

    async fn echo(&mut self) -> io::Result<()> {
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => self
                .stream
                .insert(connect_tls(&self.connector, self.addr, self.name.clone()).await?),
        };
        echo_frame(stream, &self.frame, &mut self.reply).await
    }
}

impl Caller for RawTls {
    async fn round(&mut self, tally: &Tally) {
        let started = Instant::now();
        let outcome = self.echo().await;
        tally_echo(tally, started, outcome, &mut self.stream, "raw tls");
    }
}
