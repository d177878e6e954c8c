//! `sockrpc health ADDR [SERVICE]`: asks the server's `grpc.health.v1.Health/Check` and prints
//! the serving status. Exit code: 0 for SERVING, 14 (UNAVAILABLE) for any other status (the
//! service cannot take calls), otherwise the call's own status code (5 NOT_FOUND for a service
//! the server does not know, 12 UNIMPLEMENTED when it has no health service).
//!
//! `sockrpc serve` answers it with the `sockrpc-health` crate's service.

use super::dynamic::conn::ConnArgs;
use super::dynamic::exit::{finish, Failure};
use clap::Args;
use pb::health_check_response::ServingStatus;
use pb::health_client::HealthClient;
use pb::HealthCheckRequest;
use sockrpc::{Request, Status};

/// `grpc.health.v1`: the generated messages and client of the `sockrpc-health` crate.
pub(crate) use sockrpc_health::pb;

/// `sockrpc health` flags.
#[derive(Debug, Args)]
pub(crate) struct HealthArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// The service to ask about [default: the server as a whole, ""].
    #[arg(value_name = "SERVICE", default_value = "")]
    service: String,
}

/// Runs `sockrpc health`.
pub(crate) fn run(args: HealthArgs) -> std::process::ExitCode {
    finish(check(args))
}

async fn check(args: HealthArgs) -> Result<(), Failure> {
    let metadata = args.conn.metadata()?;
    let channel = args.conn.connect().await?;
    let request = Request::from_parts(
        metadata,
        HealthCheckRequest {
            service: args.service.clone(),
        },
        args.conn.timeout,
    );
    let answer = HealthClient::new(channel)
        .check(request)
        .await?
        .into_inner();
    let status = ServingStatus::try_from(answer.status).unwrap_or(ServingStatus::Unknown);
    crate::out::outln!("{}", status.as_str_name());
    if status == ServingStatus::Serving {
        Ok(())
    } else {
        Err(Failure::Status(Status::unavailable(format!(
            "{:?} is {}",
            args.service,
            status.as_str_name()
        ))))
    }
}

/// Mounts reflection for the bench service and grpc.health.v1 (which `sockrpc serve` serves
/// with `sockrpc-health`): what lets `sockrpc list tcp://IP:PORT` work against it.
pub(crate) fn with_reflection<L>(
    builder: sockrpc::server::ServerBuilder<L>,
) -> sockrpc::server::ServerBuilder<L> {
    use sockrpc_reflection::ReflectionExt;
    builder.add_reflection(&[
        crate::proto::bench::FILE_DESCRIPTOR_SET,
        pb::FILE_DESCRIPTOR_SET,
    ])
}
