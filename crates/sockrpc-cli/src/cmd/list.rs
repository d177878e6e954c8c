//! `sockrpc list ADDR [SERVICE]`: the services a server serves (from its reflection service, or
//! from `--proto` files), one per line; with SERVICE, its methods as `package.Service.Method`.
//! A server sends whatever names it likes: each is printed escaped, on one line
//! ([`crate::out::one_line`]).

use super::dynamic::conn::{within, ConnArgs};
use super::dynamic::exit::{finish, Failure};
use super::dynamic::{reflect, source};
use clap::Args;

/// `sockrpc list` flags.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// A service (package.Service): list its methods instead.
    #[arg(value_name = "SERVICE")]
    service: Option<String>,
}

/// Runs `sockrpc list`.
pub(crate) fn run(args: ListArgs) -> std::process::ExitCode {
    let timeout = args.conn.timeout;
    finish(within(timeout, list(args)))
}

async fn list(args: ListArgs) -> Result<(), Failure> {
    let Some(service) = &args.service else {
        let names = if args.conn.proto.is_empty() {
            let channel = args.conn.connect().await?;
            reflect::list_services(&channel).await?
        } else {
            let pool = source::compile(&args.conn.proto, &args.conn.import_path)?;
            pool.services().map(|s| s.full_name().to_owned()).collect()
        };
        for name in names {
            crate::out::outln!("{}", crate::out::one_line(&name));
        }
        return Ok(());
    };
    let pool = if args.conn.proto.is_empty() {
        let channel = args.conn.connect().await?;
        reflect::pool_for_symbol(&channel, service)
            .await
            .map_err(|failure| source::unknown(failure, "service", service))?
    } else {
        source::compile(&args.conn.proto, &args.conn.import_path)?
    };
    let found = pool
        .get_service_by_name(service)
        .ok_or_else(|| Failure::Input(format!("unknown service {service}")))?;
    for method in found.methods() {
        crate::out::outln!("{}", crate::out::one_line(method.full_name()));
    }
    Ok(())
}
