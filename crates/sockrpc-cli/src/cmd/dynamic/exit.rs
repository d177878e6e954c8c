//! How `call`, `list`, `describe` and `health` end: the exit code is the gRPC status code of
//! the call (0 for OK, 1–16 as gRPC numbers them: 5 NOT_FOUND, 14 UNAVAILABLE, ...), and 64
//! (`EX_USAGE`) when the command never got to make its call: bad JSON, an unknown service,
//! method, symbol or field, an unreadable file. Usage errors clap finds exit with clap's 2. The
//! error is one line on stderr.

use sockrpc::Status;
use std::fmt;

/// The exit code of an error found before any call was made.
pub(crate) const BAD_INPUT: u8 = 64;

/// Why a command failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The call ended with a non-OK status (or could not connect: `UNAVAILABLE`).
    Status(Status),
    /// The input was wrong; no call was made (or the request stream was cut).
    Input(String),
}

impl Failure {
    /// The process exit code.
    pub(crate) fn code(&self) -> u8 {
        match self {
            Failure::Status(status) => u8::try_from(status.code() as u32).unwrap_or(2),
            Failure::Input(_) => BAD_INPUT,
        }
    }
}

/// One line, whatever `text` holds: control characters (a server's multi-line status message,
/// a terminal escape) are written escaped, `\n` as `\\n` ([`crate::out::one_line`]).
fn one_line(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    f.write_str(&crate::out::one_line(text))
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Status(status) => {
                write!(f, "status {:?} ({}): ", status.code(), status.code() as u32)?;
                one_line(f, status.message())
            }
            Failure::Input(message) => one_line(f, message),
        }
    }
}

impl From<Status> for Failure {
    fn from(status: Status) -> Failure {
        Failure::Status(status)
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::Input(message)
    }
}

/// Runs `body` on a current-thread runtime and turns its failure into the exit code, printing
/// the status (or the error) on stderr.
pub(crate) fn finish(
    body: impl std::future::Future<Output = Result<(), Failure>>,
) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            crate::out::errln!("sockrpc: cannot start the runtime: {err}");
            return std::process::ExitCode::from(BAD_INPUT);
        }
    };
    match runtime.block_on(body) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(failure) => {
            crate::out::errln!("sockrpc: {failure}");
            std::process::ExitCode::from(failure.code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_prints_as_one_line() {
        let status = Failure::Status(Status::internal("first\nsecond\u{1b}[31m"));
        assert_eq!(
            status.to_string(),
            "status Internal (13): first\\nsecond\\u{1b}[31m"
        );
        let input = Failure::Input("bad\r\ninput: ünïcode kept".to_owned());
        assert_eq!(input.to_string(), "bad\\r\\ninput: ünïcode kept");
        assert_eq!(input.code(), BAD_INPUT);
    }
}
