//! TLS and mutual TLS on loopback, with certificates made here (rcgen): success, every way a
//! handshake is refused, the client's certificate reaching a handler, rotation under a
//! continuous stream of calls, plain text and TLS crossed, a handshake that never completes, and
//! handshakes stalled at the connection cap evicted for real clients.
//! Handlers read the TLS peer from `request.conn_info()`, middleware from the `Call`.

use sockrpc::service::ServerBuilder;
use sockrpc::tls::{
    Certificates, ClientAuth, ClientTlsConfig, Identity, ServerTls, ServerTlsConfig, TlsFiles,
    TlsPeer, TlsVersion,
};
use sockrpc::{Body, Call, Channel, Code, Endpoint, Request, Response, Server, Status};
use sockrpc_tests::helloworld::greeter_client::GreeterClient;
use sockrpc_tests::helloworld::greeter_server::{Greeter, GreeterServer};
use sockrpc_tests::helloworld::{HelloReply, HelloRequest};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

mod bodies;
mod cap;
mod chain_size;
mod chain_size_config;
mod coalescing;
mod crossed;
mod floor_at_cap;
mod handshake;
mod hostile_clients;
mod messages;
mod mtls;
mod openssl;
mod pinned;
mod real_chains;
mod refusals;
mod refused_loop;
mod rotation;
mod sni;
mod stalled_at_cap;
mod support;
mod truncation;

use support::*;
