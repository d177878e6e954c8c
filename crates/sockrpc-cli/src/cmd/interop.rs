//! `sockrpc interop server|client`: gRPC's interop `TestService` and its test cases, ported onto
//! sockrpc (crate `sockrpc-interop`), as two processes.

use clap::{Args, Subcommand};
use std::{error::Error, io::Write, net::SocketAddr};

/// `sockrpc interop` flags.
#[derive(Debug, Args)]
pub(crate) struct InteropArgs {
    #[command(subcommand)]
    role: Role,
}

#[derive(Debug, Subcommand)]
enum Role {
    /// Serve the interop `TestService` until Ctrl-C or SIGTERM.
    ///
    /// The first line on stdout is `listening tcp=IP:PORT`, with the port actually bound.
    Server {
        /// Address to listen on (port 0: any free port).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
        addr: SocketAddr,
    },
    /// Run interop test cases against a server; exit 0 when every case passes, 1 otherwise.
    Client {
        /// The server, `HOST:PORT` or `tcp://HOST:PORT`.
        #[arg(long, value_name = "HOST:PORT")]
        addr: String,
        /// The case to run, by its name in gRPC's interop spec (`empty_unary`, `ping_pong`,
        /// ...), or `all`.
        #[arg(long, value_name = "NAME|all", default_value = "all")]
        case: String,
    },
}

/// Runs `sockrpc interop`.
pub(crate) fn run(args: InteropArgs) -> Result<(), Box<dyn Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match args.role {
        Role::Server { addr } => runtime.block_on(serve(addr)),
        Role::Client { addr, case } => runtime.block_on(client(&addr, &case)),
    }
}

async fn serve(addr: SocketAddr) -> Result<(), Box<dyn Error>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|err| format!("cannot listen on {addr}: {err}"))?;
    // Scripts and tests read this line to learn the port: print it, then flush, since stdout is
    // block-buffered when it is a pipe.
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening tcp={}", listener.local_addr()?)?;
    out.flush()?;
    drop(out);
    sockrpc_interop::run_server(listener, super::serve::stop_signal()).await?;
    Ok(())
}

async fn client(addr: &str, case: &str) -> Result<(), Box<dyn Error>> {
    let cases: Vec<&str> = match case {
        "all" => sockrpc_interop::all_cases().to_vec(),
        one => vec![one],
    };
    let mut failures = Vec::new();
    for name in cases {
        match sockrpc_interop::run_case(name, addr).await {
            Ok(()) => crate::out::outln!("PASS {name}"),
            Err(message) => {
                // The message may quote the server's status message: escaped.
                let message = crate::out::one_line(&message).into_owned();
                crate::out::outln!("FAIL {name}: {message}");
                failures.push(format!("{name}: {message}"));
            }
        }
    }
    match failures.as_slice() {
        [] => Ok(()),
        [one] => Err(one.clone().into()),
        many => Err(format!("{} cases failed: {}", many.len(), many.join("; ")).into()),
    }
}
