//! The subcommands.

pub(crate) mod bench;
pub(crate) mod interop;
pub(crate) mod serve;
